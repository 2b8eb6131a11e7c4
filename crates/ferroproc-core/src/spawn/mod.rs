//! Starting a child: a vfork-style `clone(CLONE_VM | CLONE_VFORK)` child
//! running one small, allocation-free routine (where the kernel has
//! `CLOSE_RANGE_UNSHARE`, Linux 5.9, it shares our fd table and takes its fds
//! over a socket, so its cost does not grow with our fds), or `posix_spawn`
//! when forced or on older kernels for the requests it can do ([`method_for`]).
//! Neither copies the parent's page tables, so the cost of a spawn stays flat
//! however large the parent grows.
//!
//! Everything the child needs (argv, envp, executable candidates, fd actions,
//! terminal path, groups) is built before either path starts; the child only
//! makes async-signal-safe calls on that data. A started child comes back as
//! a [`Spawned`] guard, which kills and reaps it unless the caller takes it
//! over: a spawn either fully succeeds or leaves nothing behind.

pub mod channel;
mod child;
mod clone;
mod clone3;
mod dumpable;
mod pool;
mod posix;
#[cfg(test)]
mod sharing_tests;
mod spawner;
mod stack;
#[cfg(test)]
pub(crate) mod tests;
mod thread_state;

use std::ffi::{c_int, CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::creds::Creds;
use super::exec::ExecSpec;
use super::fdplan::PreparedFds;
use super::sys::{self, caps};

/// How the child gets its fds.
#[derive(Debug, Clone, Copy)]
pub enum Stdio<'a> {
    /// A childFDs mapping: `(child fd, parent fd)` per entry (every child fd
    /// once). The parent fds must be open; every other fd is closed in the child.
    Fds(&'a [(RawFd, RawFd)]),
    /// A terminal: the child starts a new session, opens this slave path (so
    /// it becomes the controlling terminal) and gets it as fds 0, 1 and 2.
    Pty(&'a CStr),
}

/// The child's session and process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Session {
    /// The parent's session and process group.
    #[default]
    Inherit,
    /// A new session (and process group) led by the child.
    New,
    /// A new process group led by the child, in the parent's session.
    NewGroup,
    /// Join the existing process group with this id.
    JoinGroup(libc::pid_t),
}

/// The signal dispositions the child starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signals {
    /// Every signal at its default (ferroproc's and Twisted's hosts: CPython
    /// ignores SIGPIPE, and an ignored signal would survive exec).
    #[default]
    Default,
    /// As `subprocess.Popen`: ignored signals stay ignored, except SIGPIPE and
    /// SIGXFSZ when `restore` (`restore_signals=True`); handled ones reset.
    KeepIgnored { restore: bool },
}

/// What else the child sets up before exec. posix_spawn can do only the
/// defaults (and the signal rules); anything more takes the clone path.
#[derive(Debug, Default, Clone, Copy)]
pub struct Setup<'a> {
    pub signals: Signals,
    /// Keep the fds no entry names (Popen's `close_fds=False`; only
    /// close-on-exec ones then close, at exec).
    pub keep_fds: bool,
    pub umask: Option<libc::mode_t>,
    /// `(resource, soft, hard)`, as `setrlimit` takes them.
    pub rlimits: &'a [(c_int, u64, u64)],
    /// The nice value (an absolute one: -20 to 19).
    pub nice: Option<c_int>,
    /// The CPUs the child may run on.
    pub affinity: Option<&'a [usize]>,
    /// Sent to the child when the thread that started it dies (with the
    /// check for a parent already gone before it was set).
    pub parent_death_signal: Option<c_int>,
    /// `PR_SET_NO_NEW_PRIVS`: exec never grants privileges (setuid bits,
    /// file capabilities).
    pub no_new_privs: bool,
    /// A cgroup v2 directory (an open fd) to start the child in (`clone3`
    /// with `CLONE_INTO_CGROUP`).
    pub cgroup: Option<RawFd>,
}

impl Setup<'_> {
    /// Whether only the clone path can do it.
    fn needs_clone(&self) -> bool {
        self.keep_fds
            || self.umask.is_some()
            || !self.rlimits.is_empty()
            || self.nice.is_some()
            || self.affinity.is_some()
            || self.parent_death_signal.is_some()
            || self.no_new_privs
            || self.cgroup.is_some()
    }
}

/// Which mechanism starts the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    PosixSpawn,
    CloneVfork,
}

/// Everything needed to start one child.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub exec: &'a ExecSpec,
    pub cwd: Option<&'a CStr>,
    pub stdio: Stdio<'a>,
    pub creds: Option<&'a Creds>,
    pub session: Session,
    pub setup: &'a Setup<'a>,
    /// Force a mechanism (tests run both paths); `None` picks the fastest that fits.
    pub method: Option<Method>,
}

impl Request<'_> {
    /// The session the child really gets: a terminal needs its own session
    /// (to make it the controlling terminal).
    pub fn effective_session(&self) -> Session {
        if matches!(self.stdio, Stdio::Pty(_)) {
            Session::New
        } else {
            self.session
        }
    }
}

/// The step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub enum Stage {
    None = 0,
    Spawn,
    Fds,
    Session,
    /// `setrlimit` of `Setup::rlimits[entry]`.
    Rlimit,
    Nice,
    Affinity,
    DeathSignal,
    NoNewPrivs,
    Cgroup,
    Terminal,
    Chdir,
    Groups,
    Gid,
    Uid,
    Exec,
}

impl Stage {
    const ALL: [Stage; 16] = [
        Stage::None,
        Stage::Spawn,
        Stage::Fds,
        Stage::Session,
        Stage::Rlimit,
        Stage::Nice,
        Stage::Affinity,
        Stage::DeathSignal,
        Stage::NoNewPrivs,
        Stage::Cgroup,
        Stage::Terminal,
        Stage::Chdir,
        Stage::Groups,
        Stage::Gid,
        Stage::Uid,
        Stage::Exec,
    ];

    /// The stage with this number (`stage as u32`), if there is one.
    fn from_raw(n: u32) -> Option<Stage> {
        Self::ALL.get(n as usize).copied().filter(|s| *s as u32 == n)
    }
}

/// A spawn failure: the step, the errno, for exec the candidate path, and
/// for an fd the index of its `Stdio::Fds` entry when known (for an rlimit,
/// the index of its `Setup::rlimits` entry).
#[derive(Debug)]
pub struct SpawnError {
    pub stage: Stage,
    pub errno: c_int,
    pub path: Option<CString>,
    pub entry: Option<usize>,
}

impl SpawnError {
    fn at(stage: Stage, errno: c_int) -> Self {
        SpawnError { stage, errno, path: None, entry: None }
    }
}

/// A childFDs mapping made ready in the parent (the posix_spawn and classic
/// clone paths): every source off the target numbers.
fn prepare_fds(entries: &[(RawFd, RawFd)]) -> Result<PreparedFds, SpawnError> {
    PreparedFds::new(entries).map_err(|(i, e)| SpawnError {
        stage: Stage::Fds,
        errno: e.raw_os_error().unwrap_or(libc::EBADF),
        path: None,
        entry: Some(i),
    })
}

/// A started child, guarded: dropped before [`Spawned::disarm`], it is
/// killed (SIGKILL) and reaped, so an error between the spawn and the
/// caller taking the child over leaves no process and no zombie behind.
#[derive(Debug)]
pub struct Spawned {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    armed: bool,
}

impl Spawned {
    fn new(pid: libc::pid_t, pidfd: Option<OwnedFd>) -> Self {
        let pidfd = pidfd.or_else(|| if caps().pidfd { sys::pidfd_open(pid).ok() } else { None });
        Spawned { pid, pidfd, armed: true }
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The pidfd's number, where the kernel offers pidfds.
    pub fn pidfd_raw(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Take the pidfd (the guard then kills and reaps by pid, which stays
    /// ours until reaped).
    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    /// The caller has taken the child over: the guard lets go.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // By pidfd where we have one: it names this child alone, whatever
        // happens to its pid.
        match &self.pidfd {
            Some(fd) => {
                let _ = sys::pidfd_send_signal(fd.as_raw_fd(), libc::SIGKILL);
                let _ = super::reap::wait_blocking_pidfd(fd.as_raw_fd());
            }
            None => {
                let _ = sys::kill(self.pid, libc::SIGKILL);
                let _ = super::reap::wait_blocking(self.pid);
            }
        }
    }
}

/// Above this many fds to close one by one, posix_spawn's file actions cost
/// more than the clone path's `close_range`.
const MAX_POSIX_CLOSES: usize = 64;

/// The mechanism `req` will use.
pub fn method_for(req: &Request<'_>) -> Method {
    method_with(req, caps())
}

/// The mechanism `req` will use where libc and the kernel offer `c`.
fn method_with(req: &Request<'_>, c: &sys::Caps) -> Method {
    // posix_spawn cannot change credentials (or limits, a cgroup...): such a
    // request always takes the clone path, whatever was forced, or the child
    // would keep our ids (or run unlimited).
    // So does joining a group: posix_spawn reports a failed setpgid with the
    // same errno as exec, and the clone path names the step.
    if req.creds.is_some() || req.setup.needs_clone() || matches!(req.session, Session::JoinGroup(_)) {
        return Method::CloneVfork;
    }
    // What this libc's posix_spawn cannot do at all (glibc before 2.34 has
    // no closefrom action, before 2.29 no chdir one): even when forced.
    if c.addclosefrom.is_none() || (req.cwd.is_some() && c.addchdir.is_none()) {
        return Method::CloneVfork;
    }
    if let Some(m) = req.method {
        return m;
    }
    // The clone path sharing our fd table costs the same whatever number of
    // fds this process holds; posix_spawn copies the whole table.
    if c.close_range_unshare {
        return Method::CloneVfork;
    }
    let sparse = matches!(req.stdio, Stdio::Fds(entries) if gap_count(entries) > MAX_POSIX_CLOSES);
    if sparse {
        Method::CloneVfork
    } else {
        Method::PosixSpawn
    }
}

/// How many single fds posix_spawn would close between the targets.
fn gap_count(entries: &[(RawFd, RawFd)]) -> usize {
    let targets = entries.iter().map(|e| e.0).collect();
    super::fdplan::gaps(&targets).iter().map(|&(a, b)| (b - a + 1) as usize).sum()
}

/// Start the child described by `req`.
///
/// # Errors
/// A [`SpawnError`] naming the failed step; nothing is left running (a child
/// that failed before exec has been reaped).
pub fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    match method_for(req) {
        Method::PosixSpawn => posix::spawn(req),
        Method::CloneVfork => clone::spawn(req),
    }
}
