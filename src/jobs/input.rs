//! The usual job, read without Python: a `Job` (or a plain list or tuple of
//! arguments) whose fields are of the plain types (`str`/`bytes` argv, a
//! `dict` env of `str`/`bytes`, a `str`/`bytes` path, `bytes` input, numbers
//! for the limits, no options). Anything else, or anything wrong, is left
//! to Python's checks (`ferroproc.jobs._runner`), which raise the messages
//! that name the problem: this only ever accepts what they would accept,
//! in the same form.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A job read on the fast path.
pub(super) struct Plain {
    pub(super) job: Py<PyAny>,
    pub(super) argv: Vec<Vec<u8>>,
    pub(super) envp: Option<Vec<Vec<u8>>>,
    pub(super) cwd: Option<Vec<u8>>,
    pub(super) stdin: Option<Py<PyBytes>>,
    pub(super) timeout: Option<f64>,
    pub(super) idle: Option<f64>,
}

/// The classes and rules the fast path checks against.
pub(super) struct Classes {
    /// `ferroproc.jobs.Job`.
    pub(super) job: Py<PyAny>,
    /// Whether `str` is encoded as UTF-8 with `surrogateescape` (the
    /// filesystem encoding): otherwise every `str` takes Python's path.
    pub(super) utf8: bool,
}

/// `s` as the filesystem encoding would give it (UTF-8 only: a lone
/// surrogate, which `surrogateescape` maps back to a byte, takes the slow path).
fn text(value: &Bound<'_, PyAny>, classes: &Classes) -> Option<Vec<u8>> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        if !classes.utf8 {
            return None;
        }
        return s.to_str().ok().map(|t| t.as_bytes().to_vec());
    }
    value.cast_exact::<PyBytes>().ok().map(|b| b.as_bytes().to_vec())
}

fn argv(value: &Bound<'_, PyAny>, classes: &Classes) -> Option<Vec<Vec<u8>>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(t) = value.cast_exact::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = value.cast_exact::<PyList>() {
        l.iter().collect()
    } else {
        return None;
    };
    if items.is_empty() {
        return None;
    }
    items.iter().map(|a| text(a, classes).filter(|b| !b.contains(&0))).collect()
}

fn env(value: &Bound<'_, PyAny>, classes: &Classes) -> Option<Option<Vec<Vec<u8>>>> {
    if value.is_none() {
        return Some(None);
    }
    let d = value.cast_exact::<PyDict>().ok()?;
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let mut entry = text(&k, classes)?;
        let v = text(&v, classes)?;
        if entry.is_empty() || entry.contains(&b'=') || entry.contains(&0) || v.contains(&0) {
            return None;
        }
        entry.push(b'=');
        entry.extend_from_slice(&v);
        out.push(entry);
    }
    Some(Some(out))
}

/// A limit: None, or a positive finite number (not a bool).
fn seconds(value: &Bound<'_, PyAny>) -> Option<Option<f64>> {
    if value.is_none() {
        return Some(None);
    }
    let v = if let Ok(f) = value.cast_exact::<PyFloat>() {
        f.value()
    } else if let Ok(i) = value.cast_exact::<PyInt>() {
        i.extract::<f64>().ok()?
    } else {
        return None;
    };
    (v.is_finite() && v > 0.0).then_some(Some(v))
}

/// `item` read on the fast path, or None for Python's.
pub(super) fn read(py: Python<'_>, item: &Bound<'_, PyAny>, classes: &Classes) -> PyResult<Option<Plain>> {
    let job_class = classes.job.bind(py);
    if !item.get_type().is(job_class) {
        // A plain sequence of arguments: Job(tuple(item)).
        let Some(argv) = argv(item, classes) else { return Ok(None) };
        let tuple = match item.cast_exact::<PyTuple>() {
            Ok(t) => t.clone(),
            Err(_) => PyTuple::new(py, item.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        };
        let job = job_class.call1((tuple,))?;
        return Ok(Some(Plain {
            job: job.unbind(),
            argv,
            envp: None,
            cwd: None,
            stdin: None,
            timeout: None,
            idle: None,
        }));
    }
    let fields = item.cast::<PyTuple>()?;
    if fields.len() != 7 {
        return Ok(None);
    }
    let field = |i: usize| fields.get_item(i);
    let Some(argv) = argv(&field(0)?, classes) else { return Ok(None) };
    let Some(envp) = env(&field(1)?, classes) else { return Ok(None) };
    let path = field(2)?;
    let cwd = if path.is_none() {
        None
    } else {
        match text(&path, classes) {
            Some(p) if !p.is_empty() && !p.contains(&0) => Some(p),
            _ => return Ok(None),
        }
    };
    let stdin_value = field(3)?;
    let stdin = if stdin_value.is_none() {
        None
    } else {
        match stdin_value.cast_exact::<PyBytes>() {
            Ok(b) => Some(b.clone().unbind()),
            Err(_) => return Ok(None),
        }
    };
    let (Some(timeout), Some(idle)) = (seconds(&field(4)?), seconds(&field(5)?)) else { return Ok(None) };
    if field(6)?.len().map_or(true, |n| n != 0) {
        return Ok(None);
    }
    Ok(Some(Plain { job: item.clone().unbind(), argv, envp, cwd, stdin, timeout, idle }))
}
