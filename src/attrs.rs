//! Attributes a program hangs on ferroproc's transport under names that
//! ferroproc itself defines.
//!
//! Twisted's transports are plain objects that programs hang their own
//! attributes on (a widely used CI worker sets `self.transport.pgid =
//! self.transport.pid` for its PTY children), so no name ferroproc adds to
//! Twisted's (`pgid`, `resourceUsage`) may refuse an assignment. What a
//! program stores is its own bookkeeping: it is kept in the instance's
//! `__dict__` and read back as stored until `del`, and ferroproc never uses
//! it (the group it signals comes from the child's state, not from `pgid`).

use pyo3::exceptions::PyAttributeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::IntoPyObjectExt;

fn instance_dict<'py>(ob: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    Ok(ob.getattr(intern!(ob.py(), "__dict__"))?.cast_into::<PyDict>()?)
}

/// What the program stored under `name` on `ob`, or else `ours`.
pub(crate) fn program_value_or<'py>(
    ob: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    ours: impl IntoPyObject<'py>,
) -> PyResult<Py<PyAny>> {
    match instance_dict(ob)?.get_item(name)? {
        Some(v) => Ok(v.unbind()),
        None => ours.into_py_any(ob.py()),
    }
}

/// Store the program's `value` under `name` on `ob`; `None` (a `del`)
/// forgets it, so `name` reads ferroproc's own value again.
pub(crate) fn set_program_value(
    ob: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let d = instance_dict(ob)?;
    match value {
        Some(v) => d.set_item(name, v),
        None if d.contains(name)? => d.del_item(name),
        None => Err(PyAttributeError::new_err(format!("{name}: the program set no value of its own to delete"))),
    }
}
