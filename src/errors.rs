//! The one place where OS errors, spawn failures and signal names become
//! Python exceptions.

use std::io;

use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

use ferroproc_core::child::SignalError;
use ferroproc_core::spawn::{SpawnError, Stage};

/// `OSError(errno, "<what>: <strerror>")`; Python picks the subclass
/// (`FileNotFoundError`, `PermissionError` ...) from the errno.
pub(crate) fn os_error(e: io::Error, what: &str) -> PyErr {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    PyOSError::new_err((errno, format!("{what}: {}", strerror(errno))))
}

/// `OSError(errno, message, filename)`.
pub(crate) fn os_error_file(errno: i32, message: String, filename: &str) -> PyErr {
    PyOSError::new_err((errno, message, filename.to_string()))
}

pub(crate) fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    // "No such file or directory (os error 2)" → "No such file or directory"
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The words of the call that asked for a spawn, for messages:
/// `spawnProcess`'s parameters (Twisted's names), or, for an asyncio call
/// (`SpawnArgs.caller`, the function the program called), Popen's keywords
/// and ferroproc's snake_case ones, so that nobody is told about a
/// parameter they never wrote.
#[derive(Clone, Copy)]
pub(crate) struct Words<'a> {
    caller: Option<&'a str>,
}

impl<'a> Words<'a> {
    pub(crate) fn new(caller: Option<&'a str>) -> Self {
        Words { caller }
    }

    /// The function named at the start of a message.
    pub(crate) fn function(&self) -> &'a str {
        self.caller.unwrap_or("spawnProcess")
    }

    /// A `spawnProcess` parameter or option, as the caller named it.
    pub(crate) fn name(&self, twisted: &'static str) -> &'static str {
        if self.caller.is_none() {
            return twisted;
        }
        match twisted {
            "path" => "cwd",
            "executable" => "program",
            "cpuAffinity" => "cpu_affinity",
            "parentDeathSignal" => "parent_death_signal",
            "noNewPrivileges" => "no_new_privileges",
            other => other,
        }
    }

    /// The argument that put child fd `child` in place: `childFDs[n]`, or
    /// Popen's `stdin`/`stdout`/`stderr`/`pass_fds`.
    pub(crate) fn fd(&self, child: i32) -> String {
        match (self.caller, child) {
            (None, _) => format!("childFDs[{child}]"),
            (Some(_), 0) => "stdin".into(),
            (Some(_), 1) => "stdout".into(),
            (Some(_), 2) => "stderr".into(),
            (Some(_), n) => format!("pass_fds entry {n}"),
        }
    }

    /// The arguments that lay out the child's fds.
    fn fds(&self) -> &'static str {
        if self.caller.is_some() {
            "stdin, stdout, stderr and pass_fds"
        } else {
            "childFDs"
        }
    }

    /// The ids a child was to switch to.
    fn ids(&self, uid: Option<u32>, gid: Option<u32>) -> String {
        let (u, g) = if self.caller.is_some() { ("user", "group") } else { ("uid", "gid") };
        let show = |v: Option<u32>| v.map_or("unchanged".into(), |v| v.to_string());
        format!("{u}={} {g}={}", show(uid), show(gid))
    }

    /// What sets the child's session and group.
    fn session(&self) -> &'static str {
        if self.caller.is_some() {
            "the session or process group (start_new_session, process_group)"
        } else {
            "the session or process group"
        }
    }
}

/// Who was being started, for messages.
pub(crate) struct SpawnWhat<'a> {
    /// The words of the call.
    pub words: Words<'a>,
    pub executable: &'a str,
    pub cwd: Option<&'a str>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The childFDs entry `(child fd, parent fd)` an fd failure concerns.
    pub entry: Option<(i32, i32)>,
    /// The rlimits entry `(resource, soft, hard)` a limit failure concerns.
    pub rlimit: Option<(i32, u64, u64)>,
    /// The cgroup directory asked for.
    pub cgroup: Option<&'a str>,
}

/// A resource limit as a reader knows it: `RLIMIT_NOFILE (1024, 4096)`.
fn rlimit_text((resource, soft, hard): (i32, u64, u64)) -> String {
    let name = match resource as u32 {
        libc::RLIMIT_CPU => "RLIMIT_CPU",
        libc::RLIMIT_FSIZE => "RLIMIT_FSIZE",
        libc::RLIMIT_DATA => "RLIMIT_DATA",
        libc::RLIMIT_STACK => "RLIMIT_STACK",
        libc::RLIMIT_CORE => "RLIMIT_CORE",
        libc::RLIMIT_RSS => "RLIMIT_RSS",
        libc::RLIMIT_NPROC => "RLIMIT_NPROC",
        libc::RLIMIT_NOFILE => "RLIMIT_NOFILE",
        libc::RLIMIT_MEMLOCK => "RLIMIT_MEMLOCK",
        libc::RLIMIT_AS => "RLIMIT_AS",
        _ => return format!("resource {resource} ({soft}, {hard})"),
    };
    let n = |v: u64| if v == u64::MAX { "RLIM_INFINITY".to_string() } else { v.to_string() };
    format!("{name} ({}, {})", n(soft), n(hard))
}

/// A failed spawn as the `OSError` subclass its errno calls for, naming the
/// executable (or directory, or ids) and the step that failed.
pub(crate) fn spawn_error(e: SpawnError, what: &SpawnWhat<'_>) -> PyErr {
    let errno = e.errno;
    let why = strerror(errno);
    let exe = match &e.path {
        Some(p) => p.to_string_lossy().into_owned(),
        None => what.executable.to_string(),
    };
    let w = what.words;
    let f = w.function();
    match e.stage {
        Stage::Exec => {
            let msg = match errno {
                libc::ENOENT => match missing_interpreter(&exe) {
                    Some(interp) => {
                        format!("{f}: {exe:?} exists, but its interpreter {interp:?} (its #! line) was not found")
                    }
                    None if std::path::Path::new(&exe).is_file() => {
                        format!("{f}: {exe:?} exists, but its program loader (ELF interpreter) was not found")
                    }
                    None => format!("{f}: executable {exe:?} not found"),
                },
                libc::EACCES => format!("{f}: executable {exe:?} is not executable ({why})"),
                libc::ENOEXEC => format!("{f}: {exe:?} is not a program the kernel can run ({why})"),
                _ => format!("{f}: cannot execute {exe:?}: {why}"),
            };
            os_error_file(errno, msg, &exe)
        }
        Stage::Chdir => {
            let dir = what.cwd.unwrap_or("?");
            let cwd = w.name("path");
            os_error_file(errno, format!("{f}: {cwd}: cannot change to directory {dir:?}: {why}"), dir)
        }
        Stage::Groups | Stage::Gid | Stage::Uid => {
            PyOSError::new_err((errno, format!("{f}: cannot switch to {}: {why}", w.ids(what.uid, what.gid))))
        }
        Stage::Rlimit => {
            let limit = what.rlimit.map_or_else(|| "a resource limit".to_string(), rlimit_text);
            PyOSError::new_err((errno, format!("{f}: rlimits: cannot set {limit} in the child: {why}")))
        }
        Stage::Nice => PyOSError::new_err((errno, format!("{f}: cannot set the child's nice value: {why}"))),
        Stage::Affinity => PyOSError::new_err((
            errno,
            format!(
                "{f}: cannot set the child's {} (CPUs this machine or cgroup lacks?): {why}",
                w.name("cpuAffinity")
            ),
        )),
        Stage::DeathSignal => {
            PyOSError::new_err((errno, format!("{f}: cannot set the child's {}: {why}", w.name("parentDeathSignal"))))
        }
        Stage::NoNewPrivs => {
            PyOSError::new_err((errno, format!("{f}: cannot set {} in the child: {why}", w.name("noNewPrivileges"))))
        }
        Stage::Cgroup => {
            let dir = what.cgroup.unwrap_or("?");
            os_error_file(errno, format!("{f}: cannot start the child in cgroup {dir:?}: {why}"), dir)
        }
        Stage::Session => PyOSError::new_err((errno, format!("{f}: cannot set {}: {why}", w.session()))),
        Stage::Terminal => PyOSError::new_err((errno, format!("{f}: cannot set up the terminal: {why}"))),
        Stage::Fds => match what.entry {
            Some((child, parent)) if errno == libc::EBADF => {
                PyOSError::new_err((errno, format!("{f}: {}: parent fd {parent} is not open", w.fd(child))))
            }
            Some((child, _)) => PyOSError::new_err((errno, format!("{f}: {}: {why}", w.fd(child)))),
            None => PyOSError::new_err((errno, format!("{f}: cannot set up {}: {why}", w.fds()))),
        },
        Stage::Spawn | Stage::None => PyOSError::new_err((errno, format!("{f}: cannot start {exe:?}: {why}"))),
    }
}

/// The interpreter named by `path`'s `#!` line, if it has one (exec gives
/// ENOENT for a script whose interpreter is missing, though the script exists).
fn missing_interpreter(path: &str) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let interp = String::from_utf8_lossy(line).split_whitespace().next()?.to_string();
    Some(interp)
}

/// The name of `ob`'s type, for messages.
pub(crate) fn type_name(ob: &Bound<'_, PyAny>) -> String {
    ob.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// `ProcessExitedAlready()`: the host's class when it gave one, else
/// `ferroproc.error.ProcessExitedAlready`.
pub(crate) fn process_exited_already(py: Python<'_>, host_class: Option<&Py<PyAny>>) -> PyErr {
    let cls = match host_class {
        Some(c) => Ok(c.bind(py).clone()),
        None => py.import("ferroproc.error").and_then(|m| m.getattr("ProcessExitedAlready")),
    };
    match cls.and_then(|c| Ok(c.cast_into::<pyo3::types::PyType>()?)) {
        Ok(cls) => PyErr::from_type(cls, ()),
        Err(e) => e,
    }
}

/// Why a signal could not be sent, as `what` (`signalProcess`,
/// `signalGroup`) raises it; `exited_already` is the host's class.
pub(crate) fn signal_error(py: Python<'_>, what: &str, e: SignalError, exited_already: Option<&Py<PyAny>>) -> PyErr {
    match e {
        SignalError::Gone => process_exited_already(py, exited_already),
        SignalError::NoGroup => PyValueError::new_err(format!(
            "{what}: the child has no process group of its own (spawn it with processGroup=True or newSession=True)"
        )),
        SignalError::NotLeader(pgid) => PyValueError::new_err(format!(
            "{what}: the child joined process group {pgid}, which it does not lead; only a group the child \
             leads is signalled (signal the child, or the group yourself with os.killpg)"
        )),
        SignalError::Os(e) => os_error(e, what),
    }
}

/// A signal given as a number or a name ("TERM", "SIGTERM", "term", "RTMIN+3"):
/// the one parser of signals, for every place that takes one.
pub(crate) fn parse_signal(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<i32> {
    if ob.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!("{what}: signal must be a name or an int, not bool")));
    }
    if ob.is_instance_of::<pyo3::types::PyInt>() {
        // 0 is allowed: it only checks that the process exists. An int past
        // i32 is named as the program wrote it, not as a clamped number.
        return match ob.extract::<i32>() {
            Ok(n) if (0..=libc::SIGRTMAX()).contains(&n) => Ok(n),
            _ => Err(PyValueError::new_err(format!("{what}: {ob} is not a signal number"))),
        };
    }
    let Ok(name) = ob.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!("{what}: signal must be a name or an int, not {}", type_name(ob))));
    };
    ferroproc_core::signals::signal_number(name.to_str()?).ok_or_else(|| {
        PyValueError::new_err(format!("{what}: unknown signal name {}", name.repr().unwrap_or(name.clone())))
    })
}

/// `parseSignal(signal, what)`: [`parse_signal`] for the Python layer, so
/// that every option taking a signal (`parentDeathSignal`...) accepts what
/// `signalProcess` accepts, with the same messages.
#[pyfunction]
#[pyo3(name = "parseSignal")]
pub(crate) fn parse_signal_py(signal: &Bound<'_, PyAny>, what: &str) -> PyResult<i32> {
    parse_signal(signal, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_is_bare() {
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
    }

    #[test]
    fn words_are_the_callers() {
        let twisted = Words::new(None);
        assert_eq!(twisted.function(), "spawnProcess");
        assert_eq!((twisted.name("path"), twisted.name("cpuAffinity")), ("path", "cpuAffinity"));
        assert_eq!((twisted.fd(0).as_str(), twisted.fd(5).as_str()), ("childFDs[0]", "childFDs[5]"));
        assert_eq!(twisted.ids(Some(65534), None), "uid=65534 gid=unchanged");
        let popen = Words::new(Some("create_subprocess_exec"));
        assert_eq!(popen.function(), "create_subprocess_exec");
        assert_eq!((popen.name("path"), popen.name("cpuAffinity")), ("cwd", "cpu_affinity"));
        assert_eq!(
            (popen.name("parentDeathSignal"), popen.name("noNewPrivileges")),
            ("parent_death_signal", "no_new_privileges")
        );
        let fds: Vec<String> = (0..4).map(|fd| popen.fd(fd)).collect();
        assert_eq!(fds, ["stdin", "stdout", "stderr", "pass_fds entry 3"]);
        assert_eq!(popen.ids(Some(65534), None), "user=65534 group=unchanged");
    }
}
