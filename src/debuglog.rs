//! The debug log: spawns, exits and the signals ferroproc sends, at `DEBUG`
//! on the `ferroproc` logger (the core makes the records,
//! `ferroproc_core::debuglog`; `ferroproc._debuglog.emit` words them).
//!
//! How the engine learns that `DEBUG` is on: it asks `logging` itself, with
//! `logging`'s own rule (`isEnabledFor(DEBUG)`: the logger's level, else its
//! nearest ancestor's, and `logging.disable`; a handler's level plays no
//! part), at the start of every loop turn and of every `spawnProcess` and
//! signal call, and stores the answer in the core's flag, which every spawn
//! (the core's own too), exit and signal reads. Asking costs one dictionary
//! look-up: the answer comes from the logger's own cache of it (`_cache`),
//! which `logging` empties whenever a level or `logging.disable` changes
//! (`setLevel`, `basicConfig`, `dictConfig` ...); only then is
//! `isEnabledFor` called. So a level set at any time takes effect from the
//! next turn or spawn; and until `logging` has been imported nobody can have
//! turned it on, which a look-up in `sys.modules` says.
//!
//! Records are taken and logged where Python may run and no lock is held:
//! after a turn's I/O (so an exit is logged before the protocol hears of
//! it), at the end of the turn, after a spawn, and after a signal sent for
//! the program.

use ferroproc_core::child::TimeoutKind;
use ferroproc_core::debuglog::{self, Record, Target, Why};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyTuple};

use crate::dispatch::usage_object;

/// `logging.DEBUG`.
const DEBUG: i32 = 10;

/// The `ferroproc` logger and its cache of `isEnabledFor` answers.
struct Probe {
    logger: Py<PyAny>,
    /// `Logger._cache` (CPython's, since 3.7); None if it is not a dict.
    cache: Option<Py<PyDict>>,
    /// `DEBUG` as a Python int, made once (this runs every turn).
    key: Py<PyAny>,
}

impl Probe {
    fn enabled(&self, py: Python<'_>) -> bool {
        if let Some(cache) = &self.cache {
            // The cached answer is a bool: compared, not converted.
            if let Ok(Some(answer)) = cache.bind(py).get_item(self.key.bind(py)) {
                return answer.is(&*PyBool::new(py, true));
            }
        }
        // Not cached (a level changed since): logging works it out, and caches it.
        self.logger
            .bind(py)
            .call_method1(intern!(py, "isEnabledFor"), (DEBUG,))
            .and_then(|r| r.is_truthy())
            .unwrap_or(false)
    }
}

static PROBE: PyOnceLock<Probe> = PyOnceLock::new();
static MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The probe, once `logging` has been imported (by anyone).
fn probe(py: Python<'_>) -> Option<&'static Probe> {
    if let Some(p) = PROBE.get(py) {
        return Some(p);
    }
    let modules = MODULES
        .get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            Ok(py.import("sys")?.getattr("modules")?.cast_into::<PyDict>()?.unbind())
        })
        .ok()?;
    let logging = modules.bind(py).get_item(intern!(py, "logging")).ok()??;
    PROBE
        .get_or_try_init(py, || -> PyResult<Probe> {
            let logger = logging.call_method1("getLogger", ("ferroproc",))?;
            let cache = logger.getattr("_cache").ok().and_then(|c| c.cast_into::<PyDict>().ok()).map(Bound::unbind);
            Ok(Probe { logger: logger.unbind(), cache, key: DEBUG.into_pyobject(py)?.into_any().unbind() })
        })
        .ok()
}

/// Set the core's flag from the `ferroproc` logger (see the module documentation).
pub(crate) fn refresh(py: Python<'_>) {
    let on = probe(py).is_some_and(|p| p.enabled(py));
    debuglog::set_enabled(on);
}

/// Log the records waiting, if any (one load when there are none). Call
/// with no lock held.
pub(crate) fn drain(py: Python<'_>) {
    if !debuglog::pending() {
        return;
    }
    let records = debuglog::take();
    if let Err(e) = emit(py, records) {
        e.write_unraisable(py, None);
    }
}

fn emit(py: Python<'_>, records: Vec<Record>) -> PyResult<()> {
    static EMIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let emit = EMIT.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ferroproc._debuglog")?.getattr("emit")?.unbind())
    })?;
    let list = PyList::empty(py);
    for r in records {
        list.append(record(py, r)?)?;
    }
    emit.call1(py, (list,))?;
    Ok(())
}

fn argv_list<'py>(py: Python<'py>, argv: &[std::ffi::CString]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, argv.iter().map(|a| PyBytes::new(py, a.as_bytes())))
}

/// A record as `ferroproc._debuglog.emit` takes it.
fn record<'py>(py: Python<'py>, r: Record) -> PyResult<Bound<'py, PyTuple>> {
    let none = || py.None().into_bound(py);
    match r {
        Record::Spawned { pid, argv, executable, pgid } => {
            let argv = argv_list(py, &argv)?.into_any();
            let exe = PyBytes::new(py, executable.as_bytes()).into_any();
            ("spawn", pid, argv, exe, pgid).into_pyobject(py)
        }
        Record::Exited { pid, exit, timed_out, ran, argv } => {
            let timed_out = timed_out.map(|t| (kind_name(t.kind), t.limit, t.killed));
            let usage = exit.usage.map(|u| usage_object(py, &u)).transpose()?;
            let argv = argv.map(|a| argv_list(py, &a)).transpose()?.map_or_else(none, Bound::into_any);
            ("exit", pid, exit.status, timed_out, usage, ran.map(|d| d.as_secs_f64()), argv).into_pyobject(py)
        }
        Record::Signalled { pid, target, signal, why, error, argv } => {
            let target = match target {
                Target::Pid(_) => "pid",
                Target::Group(_) => "group",
            };
            let (code, text) = words(why);
            let argv = argv.map(|a| argv_list(py, &a)).transpose()?.map_or_else(none, Bound::into_any);
            ("signal", pid, target, signal, code, text, error, argv).into_pyobject(py)
        }
    }
}

fn kind_name(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Wall => "wall",
        TimeoutKind::Idle => "idle",
    }
}

/// Why a signal was sent: a code to filter on, and the words for the line.
fn words(why: Why) -> (String, String) {
    let limit = |kind| match kind {
        TimeoutKind::Wall => "time limit",
        TimeoutKind::Idle => "idle limit",
    };
    match why {
        Why::TimeLimit { kind: TimeoutKind::Wall, limit: l } => {
            ("timeout".into(), format!("its time limit of {l}s ran out"))
        }
        Why::TimeLimit { kind: TimeoutKind::Idle, limit: l } => {
            ("idle-timeout".into(), format!("no output for its idle limit of {l}s"))
        }
        Why::Grace { kind, grace, .. } => {
            ("kill-grace".into(), format!("still running {grace}s after the SIGTERM of its {}", limit(kind)))
        }
        Why::KillOnExit => ("kill-group-on-exit".into(), "its leader exited, and the group is killed on exit".into()),
        Why::KillOnLost => {
            ("kill-group-on-lost".into(), "the connection to it was lost, and the group is killed then".into())
        }
        Why::SpawnFailed => ("spawn-failed".into(), "its spawn failed after it started".into()),
        Why::Host { code, text } => (code, text),
    }
}

/// Why a signal the program asked for (`signalProcess`, `signalGroup`) was sent.
pub(crate) fn by_program(what: &'static str) -> Why {
    Why::Host { code: "program".into(), text: format!("{what} called by the program") }
}

/// How many debug records the engine has made since the process started
/// (for tests: none is made while the log is off).
#[pyfunction]
#[pyo3(name = "_debugRecords")]
pub(crate) fn records_made() -> u64 {
    debuglog::made()
}
