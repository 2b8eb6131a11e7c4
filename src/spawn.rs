//! `Engine.spawn`: a `SpawnArgs` record (prepared and validated by
//! `ferroproc._spawnargs`) turned into a core spawn request, a started
//! child taken into the loop, and the transport handed to the protocol.
//!
//! Every check that can fail runs before the child exists. From the spawn
//! on, the child is held by the core's guard, which kills and reaps it if
//! anything fails before the loop has taken it over; a caller's terminal is
//! taken over only then.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use ferroproc_core::child::{Group, GroupPolicy, Role, TimeLimits, INPUT_FD};
use ferroproc_core::creds::{self, Creds, CredsError};
use ferroproc_core::exec::{ExecError, ExecSpec};
use ferroproc_core::spawn::{self, Method, Request, Session, Setup, Signals, Stdio};
use ferroproc_core::timers::now;
use ferroproc_core::{pty, sys};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;

use crate::dispatch::Callbacks;
use crate::errors::{os_error, os_error_file, spawn_error, SpawnWhat, Words};
use crate::handle::{lock, Shared};
use crate::host::{Cell, PyChild};
use crate::transport::Process;

/// `ferroproc._spawnargs.SpawnArgs`, read by attribute name (the jobs
/// runner also builds them, one per job, from a template).
#[derive(FromPyObject, Clone)]
pub(crate) struct SpawnArgs {
    pub(crate) executable: Vec<u8>,
    pub(crate) argv: Vec<Vec<u8>>,
    pub(crate) envp: Vec<Vec<u8>>,
    pub(crate) parent_path: Option<Vec<u8>>,
    pub(crate) cwd: Option<Vec<u8>>,
    /// `(child fd, 'r' | 'w' | 'fd' | 'same', n)`: a new pipe read or
    /// written by the parent, the parent's fd `n`, or the same pipe as child
    /// fd `n` (Popen's `stderr=STDOUT`).
    pub(crate) fds: Vec<(i32, String, i32)>,
    pub(crate) pty: bool,
    /// A caller's `(master, slave)` terminal, for `usePTY=(m, s, name)`.
    pub(crate) pty_fds: Option<(i64, i64)>,
    pub(crate) window_size: Option<(u16, u16)>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    /// `"inherit"`, `"session"` (a new session) or `"group"` (a new process group).
    pub(crate) session: String,
    /// An existing process group to join.
    pub(crate) process_group: Option<i32>,
    /// `"posix_spawn"` or `"clone"` to force a mechanism.
    pub(crate) method: Option<String>,
    /// With `uid`/`gid`: set exactly those ids and `groups` (each `None`
    /// left as ours), as `subprocess.Popen` does; otherwise ferroproc's rule
    /// (the user's primary group and own groups).
    pub(crate) exact_ids: bool,
    /// Supplementary groups (with `exact_ids`).
    pub(crate) groups: Option<Vec<u32>>,
    /// `"default"` (every signal at its default), `"restore"` or `"inherit"`
    /// (Popen's `restore_signals` True/False: ignored signals stay ignored,
    /// but for SIGPIPE/SIGXFSZ with "restore").
    pub(crate) signals: String,
    /// Keep the fds no entry names (Popen's `close_fds=False`).
    pub(crate) keep_fds: bool,
    pub(crate) umask: Option<u32>,
    /// `(resource, soft, hard)`.
    pub(crate) rlimits: Vec<(i32, u64, u64)>,
    pub(crate) nice: Option<i32>,
    pub(crate) affinity: Option<Vec<usize>>,
    pub(crate) death_signal: Option<i32>,
    pub(crate) no_new_privs: bool,
    /// A cgroup v2 directory to start the child in.
    pub(crate) cgroup: Option<Vec<u8>>,
    /// `F_SETPIPE_SZ` for the pipes made for the child.
    pub(crate) pipe_size: Option<i32>,
    /// SIGKILL the child's own group when it exits / when the parent
    /// loses the connection.
    pub(crate) kill_group_on_exit: bool,
    pub(crate) kill_group_on_lost: bool,
    /// Time limits in seconds (wall clock, no output), and the grace
    /// between SIGTERM and SIGKILL.
    pub(crate) timeout: Option<f64>,
    pub(crate) idle_timeout: Option<f64>,
    pub(crate) kill_grace: f64,
    /// The asyncio function a Popen-style call came through (messages then
    /// use Popen's words); None for `spawnProcess`.
    pub(crate) caller: Option<String>,
}

/// How the parent's side of the child's stdio is laid out.
enum Plan {
    Pipes { entries: Vec<(RawFd, RawFd)>, parent_ends: Vec<(i32, OwnedFd, Role)>, _child_ends: Vec<(i32, OwnedFd)> },
    Terminal { master: Master, slave_path: CString, caller_slave: Option<RawFd> },
}

/// A terminal's master: one opened for this spawn (closed if it fails), or
/// the caller's (`usePTY=(m, s, name)`), which stays the caller's, never
/// closed here, until the loop owns it ([`Master::into_owned`]): whatever
/// fails before that, the caller still has it.
enum Master {
    Ours(OwnedFd),
    Callers(RawFd),
}

impl Master {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Master::Ours(fd) => fd.as_fd(),
            // SAFETY: checked open (a PTY master) in `caller_terminal`; the
            // caller lends it for the length of the spawn.
            Master::Callers(fd) => unsafe { BorrowedFd::borrow_raw(*fd) },
        }
    }

    /// For the loop, which owns it from now on (as Twisted's transport
    /// owns a caller's master).
    fn into_owned(self) -> OwnedFd {
        match self {
            Master::Ours(fd) => fd,
            // SAFETY: the caller handed it over for the child's transport;
            // nobody else closes it from here.
            Master::Callers(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }
}

/// Whether `proto` uses `ferroproc.protocol.ProcessProtocol`'s own
/// `childDataReceived` (not overridden in its class or on the instance).
/// Never fails: anything unusual (a protocol whose methods come through
/// `__getattr__`) means "call childDataReceived".
fn keeps_default_dispatch(proto: &Bound<'_, PyAny>) -> bool {
    static BASE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let py = proto.py();
    let Ok(base) = BASE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ferroproc.protocol")?.getattr("ProcessProtocol")?.getattr("childDataReceived")?.unbind())
    }) else {
        return false;
    };
    let name = intern!(py, "childDataReceived");
    // Looked up as the loop would call it, rather than in `proto.__dict__`:
    // reading that would make the instance's dict, 64 bytes or more for
    // every live child. What the instance holds comes first in the lookup,
    // so the class's own function, bound to `proto`, means nothing overrides it.
    let bound_base = proto.getattr(name).is_ok_and(|m| {
        m.getattr(intern!(py, "__func__")).is_ok_and(|f| f.is(base.bind(py)))
            && m.getattr(intern!(py, "__self__")).is_ok_and(|s| s.is(proto))
    });
    bound_base && proto.get_type().getattr(name).is_ok_and(|m| m.is(base.bind(py)))
}

/// The session asked for. A child switched to other credentials that asked
/// for no group of its own gets a session of its own (both hosts, Popen's
/// rules too), so that it keeps no way back to the privileged parent's
/// terminal (`/dev/tty`, TIOCSTI), as `su --pty` and sudo's `use_pty` do.
fn session(args: &SpawnArgs) -> PyResult<Session> {
    let switches = args.uid.is_some() || args.gid.is_some() || args.groups.is_some();
    if let (true, Some(pgid)) = (args.pty || args.pty_fds.is_some(), args.process_group) {
        // A PTY child leads a session of its own (see `effective_session`).
        return Err(PyValueError::new_err(format!("spawnProcess: usePTY and processGroup={pgid} exclude each other")));
    }
    Ok(match (args.session.as_str(), args.process_group) {
        (_, Some(pgid)) => Session::JoinGroup(pgid),
        ("inherit", None) if switches => Session::New,
        ("inherit", None) => Session::Inherit,
        ("session", None) => Session::New,
        ("group", None) => Session::NewGroup,
        (other, None) => return Err(PyValueError::new_err(format!("unknown session kind {other:?}"))),
    })
}

/// The cgroup v2 directory `path`, open and close-on-exec. Anything else
/// (a plain directory, a cgroup v1 one) is refused by name here: the kernel
/// would only say EBADF when the child is started into it.
fn open_cgroup(path: &[u8], words: Words<'_>) -> PyResult<OwnedFd> {
    let f = words.function();
    let shown = String::from_utf8_lossy(path);
    let c_path = CString::new(path).map_err(|_| PyValueError::new_err(format!("{f}: cgroup contains a NUL byte")))?;
    // SAFETY: a NUL-terminated path; the new fd is ours alone.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    let fd = sys::cvt(fd).map_err(|e| os_error(e, &format!("{f}: cgroup '{shown}'")))?;
    // SAFETY: as above.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: statfs is plain data that fstatfs fills, on an fd we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    sys::cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })
        .map_err(|e| os_error(e, &format!("{f}: cgroup '{shown}'")))?;
    #[allow(clippy::unnecessary_cast)] // the two types differ between targets
    let cgroup2 = st.f_type as i64 == libc::CGROUP2_SUPER_MAGIC as i64;
    if !cgroup2 {
        return Err(PyValueError::new_err(format!(
            "{f}: cgroup '{shown}' is not a cgroup v2 directory (not on a cgroup2 filesystem)"
        )));
    }
    Ok(fd)
}

/// A caller's `(master, slave)` pair, checked: the master must be a PTY
/// master and the slave its own terminal. Nothing is ever substituted.
fn caller_terminal(master: i64, slave: i64) -> PyResult<(RawFd, RawFd, CString)> {
    let fd = |n: i64, what: &str| {
        RawFd::try_from(n)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| PyValueError::new_err(format!("usePTY: {what} fd {n} is not a valid fd number")))
    };
    let (m, s) = (fd(master, "master")?, fd(slave, "slave")?);
    if m == s {
        return Err(PyValueError::new_err(format!("usePTY: master and slave are the same fd ({m})")));
    }
    let path = pty::tty_path(s).map_err(|e| os_error(e, &format!("usePTY: slave fd {s} is not a terminal")))?;
    let number = pty::master_number(m).map_err(|e| {
        let hint = if pty::master_number(s).is_ok() { " (master and slave swapped?)" } else { "" };
        os_error(e, &format!("usePTY: fd {m} is not a PTY master{hint}"))
    })?;
    if path.as_bytes() != format!("/dev/pts/{number}").as_bytes() {
        return Err(PyValueError::new_err(format!(
            "usePTY: slave fd {s} ({}) is not the terminal of master fd {m} (/dev/pts/{number})",
            path.to_string_lossy()
        )));
    }
    Ok((m, s, path))
}

fn stdio_plan(args: &SpawnArgs, words: Words<'_>) -> PyResult<Plan> {
    let f = words.function();
    if let Some((m, s)) = args.pty_fds {
        let (m, s, slave_path) = caller_terminal(m, s)?;
        if let Some((rows, cols)) = args.window_size {
            pty::set_window_size(Master::Callers(m).as_fd(), rows, cols).map_err(|e| os_error(e, "windowSize"))?;
        }
        return Ok(Plan::Terminal { master: Master::Callers(m), slave_path, caller_slave: Some(s) });
    }
    if args.pty {
        let t = pty::open(args.window_size).map_err(|e| os_error(e, "usePTY: cannot open a terminal"))?;
        return Ok(Plan::Terminal { master: Master::Ours(t.master), slave_path: t.slave_path, caller_slave: None });
    }
    // Every parent fd named must be open *before* the pipes below are made: a
    // closed one could otherwise be taken by a new pipe and be silently
    // passed on in its place.
    for (child, kind, parent) in &args.fds {
        if kind == "fd" && !sys::fd_is_open(*parent) {
            return Err(PyOSError::new_err((
                libc::EBADF,
                format!("{f}: {}: parent fd {parent} is not open", words.fd(*child)),
            )));
        }
    }
    let mut parent_ends = Vec::new();
    let mut child_ends: Vec<(i32, OwnedFd)> = Vec::new();
    let mut entries = Vec::new();
    for (child, kind, parent) in &args.fds {
        let role = match kind.as_str() {
            "r" => Role::Read,
            "w" => Role::Write,
            "fd" => {
                entries.push((*child, *parent));
                continue;
            }
            "same" => {
                let Some((_, end)) = child_ends.iter().find(|(c, _)| c == parent) else {
                    return Err(PyValueError::new_err(format!(
                        "childFDs[{child}]: child fd {parent} has no pipe to share"
                    )));
                };
                entries.push((*child, end.as_raw_fd()));
                continue;
            }
            other => return Err(PyValueError::new_err(format!("childFDs kind {other:?} is not 'r', 'w' or 'fd'"))),
        };
        let (r, w) = sys::pipe_cloexec()
            .map_err(|e| os_error(e, &format!("{f}: {}: cannot create a pipe", words.fd(*child))))?;
        if let Some(size) = args.pipe_size {
            sys::set_pipe_size(r.as_raw_fd(), size).map_err(|e| os_error(e, &format!("{f}: pipesize {size}")))?;
        }
        let (mine, theirs) = if role == Role::Read { (r, w) } else { (w, r) };
        sys::set_nonblocking_fresh(mine.as_fd()).map_err(|e| os_error(e, f))?;
        entries.push((*child, theirs.as_raw_fd()));
        child_ends.push((*child, theirs));
        parent_ends.push((*child, mine, role));
    }
    Ok(Plan::Pipes { entries, parent_ends, _child_ends: child_ends })
}

/// Start a child and connect `protocol` to it; see `Engine.spawn`.
pub(crate) fn spawn(
    py: Python<'_>,
    shared: &Arc<Shared>,
    callbacks: &Callbacks,
    protocol: Option<Py<PyAny>>,
    args: SpawnArgs,
) -> PyResult<Py<Process>> {
    let direct_data = protocol.as_ref().is_some_and(|p| keeps_default_dispatch(p.bind(py)));
    let ext = PyChild {
        proto: protocol.as_ref().map(|p| Arc::new(p.clone_ref(py))),
        producer: None,
        direct_data,
        terminal_attrs: None,
        removed: false,
        sink: None,
    };
    let cell = start(py, shared, &args, ext)?;
    crate::debuglog::drain(py);
    let key = Shared::key(&cell);
    let transport = Py::new(py, Process::new(cell, Arc::downgrade(shared)))?;
    lock(&shared.transports).insert(key, transport.clone_ref(py).into_any());
    if let Some(proto) = protocol {
        // `connectionMade` writes as a callback in a turn does: together,
        // in one writev at its end (or the enclosing turn's, when spawned
        // from a callback).
        let turn = (!shared.lp.in_turn()).then(|| shared.lp.enter_turn());
        let r = proto.call_method1(py, intern!(py, "makeConnection"), (transport.clone_ref(py),));
        if turn.is_some() {
            shared.lp.flush();
        }
        drop(turn);
        if let Err(e) = r {
            callbacks.report(py, "makeConnection", e)?;
        }
    }
    Ok(transport)
}

/// How a spawn gets out of the way of other Python threads while it may
/// block (NSS look-ups, the spawn itself): a thread holding the GIL
/// releases it; a thread that does not hold it just runs them.
pub(crate) trait Unblock {
    fn unblocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T;
}

impl Unblock for Python<'_> {
    fn unblocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.detach(f)
    }
}

/// A thread that does not hold the GIL (the jobs runner's spawners).
pub(crate) struct WithoutGil;

impl Unblock for WithoutGil {
    fn unblocked<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        f()
    }
}

/// Start a child from `args` and take it into the loop with `ext` (its
/// terminal's attributes filled in), its group and time limits set: all of
/// a spawn but the transport (the jobs runner's children have none).
pub(crate) fn start(py: Python<'_>, shared: &Arc<Shared>, args: &SpawnArgs, ext: PyChild) -> PyResult<Arc<Cell>> {
    let f = Words::new(args.caller.as_deref()).function();
    if !shared.on_driver_thread() {
        return Err(PyRuntimeError::new_err(match args.caller {
            None => "spawnProcess must be called from the reactor's thread, not while it runs in another one \
                     (use reactor.callFromThread(reactor.spawnProcess, ...))"
                .to_string(),
            Some(_) => format!("{f} must be called from the thread of the loop that runs the child's engine"),
        }));
    }
    crate::debuglog::refresh(py);
    start_on(&py, shared, args, ext)
}

/// [`start`] on the loop's thread, for callers that checked who may start
/// children (the jobs runner).
pub(crate) fn start_on(
    gil: &impl Unblock,
    shared: &Arc<Shared>,
    args: &SpawnArgs,
    ext: PyChild,
) -> PyResult<Arc<Cell>> {
    spawn_child(gil, shared, args, ext)?.adopt(shared)
}

/// A child started and not yet taken into the loop ([`Spawning::adopt`]).
/// Dropped instead, it is killed and reaped (the core's guard), and a
/// caller's terminal stays the caller's.
pub(crate) struct Spawning {
    spawned: spawn::Spawned,
    plan: Plan,
    ext: PyChild,
    session: Session,
    caller_slave: Option<RawFd>,
    kill_on_exit: bool,
    kill_on_lost: bool,
    limits: Option<TimeLimits>,
    /// The function named in the messages of [`Spawning::adopt`].
    function: String,
}

/// The first half of [`start_on`], which may run on any thread (with or
/// without the GIL, as `gil` says): every check, the child's stdio, and the
/// spawn itself (the thread waits for the child's exec). The jobs runner's
/// spawner threads do this; the loop's thread then adopts the child.
pub(crate) fn spawn_child(
    gil: &impl Unblock,
    shared: &Arc<Shared>,
    args: &SpawnArgs,
    mut ext: PyChild,
) -> PyResult<Spawning> {
    let words = Words::new(args.caller.as_deref());
    let f = words.function();
    if shared.lp.is_forked() {
        return Err(PyRuntimeError::new_err(format!(
            "{f}: this engine belongs to the process this one was forked from"
        )));
    }
    let exe_display = String::from_utf8_lossy(&args.executable).into_owned();
    let exec =
        ExecSpec::new(&args.executable, &args.argv, &args.envp, args.parent_path.as_deref(), args.cwd.as_deref())
            .map_err(|e| match e {
                ExecError::Nul { what } => PyValueError::new_err(format!("{f}: {what} contains a NUL byte")),
                ExecError::NotFound { name, path } => os_error_file(
                    libc::ENOENT,
                    format!(
                        "{f}: executable {:?} not found on PATH {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(&path)
                    ),
                    &exe_display,
                ),
            })?;
    let (uid, gid) = (args.uid, args.gid);
    let creds = if args.exact_ids {
        (uid.is_some() || gid.is_some() || args.groups.is_some()).then(|| Creds {
            uid,
            gid,
            groups: args.groups.clone(),
        })
    } else {
        gil.unblocked(|| creds::resolve(uid, gid)).map_err(|e| match e {
            CredsError::UnknownUser { uid } => PyValueError::new_err(format!(
                "{f}: uid {uid} has no passwd entry, so its group is unknown; pass gid as well"
            )),
            CredsError::Lookup { what, error } => os_error(error, &format!("{f}: looking up {what}")),
        })?
    };
    let cwd = args
        .cwd
        .clone()
        .map(CString::new)
        .transpose()
        .map_err(|_| PyValueError::new_err(format!("{f}: {} contains a NUL byte", words.name("path"))))?;
    let method = match args.method.as_deref() {
        None => None,
        Some("posix_spawn") => Some(Method::PosixSpawn),
        Some("clone") => Some(Method::CloneVfork),
        Some(m) => return Err(PyValueError::new_err(format!("unknown spawn method {m:?}"))),
    };
    let session = session(args)?;
    let cgroup = args.cgroup.as_deref().map(|c| open_cgroup(c, words)).transpose()?;
    let signals = match args.signals.as_str() {
        "default" => Signals::Default,
        "restore" => Signals::KeepIgnored { restore: true },
        "inherit" => Signals::KeepIgnored { restore: false },
        other => return Err(PyValueError::new_err(format!("unknown signal rule {other:?}"))),
    };
    let setup = Setup {
        signals,
        keep_fds: args.keep_fds,
        umask: args.umask,
        rlimits: &args.rlimits,
        nice: args.nice,
        affinity: args.affinity.as_deref(),
        parent_death_signal: args.death_signal,
        no_new_privs: args.no_new_privs,
        cgroup: cgroup.as_ref().map(AsRawFd::as_raw_fd),
    };
    let plan = stdio_plan(args, words)?;
    let stdio = match &plan {
        Plan::Pipes { entries, .. } => Stdio::Fds(entries),
        Plan::Terminal { slave_path, .. } => {
            if let Some(c) = &creds {
                // A child switched to another user gets its terminal too.
                pty::give_slave_to(slave_path, c.uid, c.gid)
                    .map_err(|e| os_error(e, "usePTY: cannot hand the terminal to the new user"))?;
            }
            Stdio::Pty(slave_path)
        }
    };
    let terminal_attrs = match &plan {
        Plan::Terminal { master, .. } => pty::get_attrs(master.as_fd()).ok(),
        Plan::Pipes { .. } => None,
    };
    let req =
        Request { exec: &exec, cwd: cwd.as_deref(), stdio, creds: creds.as_ref(), session, setup: &setup, method };
    let req_session = req.effective_session();
    let caller_slave = match &plan {
        Plan::Terminal { caller_slave, .. } => *caller_slave,
        Plan::Pipes { .. } => None,
    };
    let spawned = match gil.unblocked(|| spawn::spawn(&req)) {
        Ok(s) => s,
        Err(e) => {
            let cwd_s = args.cwd.as_ref().map(|c| String::from_utf8_lossy(c).into_owned());
            let entry = match &plan {
                Plan::Pipes { entries, .. } if e.stage == spawn::Stage::Fds => {
                    e.entry.and_then(|i| entries.get(i).copied())
                }
                _ => None,
            };
            let rlimit = match e.stage {
                spawn::Stage::Rlimit => e.entry.and_then(|i| args.rlimits.get(i).copied()),
                _ => None,
            };
            let cgroup_s = args.cgroup.as_ref().map(|c| String::from_utf8_lossy(c).into_owned());
            let what = SpawnWhat {
                words,
                executable: &exe_display,
                cwd: cwd_s.as_deref(),
                uid,
                gid,
                entry,
                rlimit,
                cgroup: cgroup_s.as_deref(),
            };
            return Err(spawn_error(e, &what));
        }
    };
    ext.terminal_attrs = terminal_attrs.map(Box::new);
    let limits = (args.timeout.is_some() || args.idle_timeout.is_some()).then_some(TimeLimits {
        wall: args.timeout,
        idle: args.idle_timeout,
        grace: args.kill_grace,
    });
    Ok(Spawning {
        spawned,
        plan,
        ext,
        session: req_session,
        caller_slave,
        kill_on_exit: args.kill_group_on_exit,
        kill_on_lost: args.kill_group_on_lost,
        limits,
        function: f.to_string(),
    })
}

impl Spawning {
    /// The second half of [`start_on`], on the loop's thread: the child and
    /// its pipes into the loop, its group and time limits set before the
    /// loop can see it end.
    pub(crate) fn adopt(self, shared: &Arc<Shared>) -> PyResult<Arc<Cell>> {
        let Spawning { spawned, plan, ext, session, caller_slave, kill_on_exit, kill_on_lost, limits, function } = self;
        // A caller's master is the caller's until the child has been taken over.
        let give_back = |pipes: Vec<(i32, OwnedFd, Role)>| {
            if caller_slave.is_some() {
                pipes.into_iter().for_each(|(_, fd, _)| {
                    let _ = fd.into_raw_fd();
                });
            }
        };
        let pipes = match plan {
            Plan::Pipes { parent_ends, .. } => parent_ends,
            Plan::Terminal { master, .. } => vec![(INPUT_FD, master.into_owned(), Role::Terminal)],
        };
        let pid = spawned.pid();
        let cell = match shared.lp.add_child(spawned, pipes, ext) {
            Ok(cell) => cell,
            Err(e) => {
                give_back(e.pipes);
                return Err(os_error(e.error, &format!("{function}: cannot watch the child")));
            }
        };
        let group = match session {
            Session::New | Session::NewGroup => Group::Leads(pid),
            Session::JoinGroup(g) => Group::Joined(g),
            Session::Inherit => Group::Parents,
        };
        let group = GroupPolicy { group, kill_on_exit, kill_on_lost };
        let first_deadline = cell.with(move |c, _| {
            c.set_group(group);
            limits.and_then(|l| c.set_time_limits(l, now()))
        });
        if let Some(at) = first_deadline {
            crate::timers::watch_deadline(shared, &cell, at);
        }
        if let Some(s) = caller_slave {
            // As in Twisted, the caller's slave is closed once the child runs (its
            // master now belongs to the transport).
            // SAFETY: an fd the caller handed over; nobody else owns it from here.
            unsafe { libc::close(s) };
        }
        if let Some(fd) = cell.with(|c, _| c.terminal_fd()) {
            let _ = sys::set_nonblocking(fd, true);
        }
        Ok(cell)
    }
}
