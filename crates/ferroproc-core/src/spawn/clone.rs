//! The clone path: a vfork-style `clone(CLONE_VM | CLONE_VFORK)` child on a
//! private stack, running `child::child_steps` on data prepared here.
//!
//! Where the kernel has `CLOSE_RANGE_UNSHARE` the child also shares our fd
//! table (`CLONE_FILES`) and takes a private one holding only what it needs,
//! its fds sent over a spawn [`channel`]: no copy of the parent's table,
//! so the cost does not grow with the fds the parent holds. Elsewhere (and
//! when the child must keep the parent's other fds) the child gets the usual
//! copy, with every source prepared here. A cgroup to start in takes `clone3`.
//!
//! Everything that can fail is done before the child's fds are sent: after
//! the send only the clone itself can fail, and the channel's lease drains
//! it however the spawn ends. A child that switches user where sharing our
//! memory across the switch is unsafe (`dumpable`) gets a copy of it
//! instead (no `CLONE_VM`), and reports a failed step on an error pipe.

#[cfg(test)]
use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

use super::channel::{self, Header, Lease};
use super::child::{child_main, ChildCtx, ErrRecord, SignalReset};
use super::clone3::{clone3, CloneArgs, CLONE_INTO_CGROUP, SUPPORTED as CLONE3_SUPPORTED};
use super::dumpable::{enter_cred_window, leave_cred_window, shared_memory_is_safe};
use super::stack::Stack;
use super::{spawner, Request, Signals, SpawnError, Spawned, Stage, Stdio};
use crate::exec::ptr_array;
use crate::fdplan::{gaps, received_numbers, received_plan, Action};
use crate::sys::{caps, cvt, errno, open_file_limit};

#[cfg(test)]
pub(crate) use super::child::TestHook;

#[cfg(test)]
thread_local! {
    /// What the next children spawned from this thread do (tests only).
    pub(crate) static HOOK: Cell<TestHook> = const { Cell::new(TestHook::None) };
}

/// How the child gets its fd table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Files {
    /// It shares ours (`CLONE_FILES`), then takes a private one holding
    /// only its fds, which it receives over a channel.
    Shared,
    /// It gets a copy of ours, every source placed here off the targets.
    Copied,
}

/// The child's steps when every fd it receives lands on its own target
/// number (the usual `{0, 1, 2}`, with the channel above them): received
/// fds are not close-on-exec, so none has to move (the general plan would
/// move each one away and back, six `dup2` for three fds); only the other
/// numbers are closed, as that plan does.
fn plan_for_received(targets: &[c_int], received: &[c_int]) -> Vec<Action> {
    if targets != received {
        return received_plan(targets, received);
    }
    let wanted: BTreeSet<c_int> = targets.iter().copied().collect();
    let mut actions: Vec<Action> =
        gaps(&wanted).into_iter().map(|(first, last)| Action::CloseRange { first, last }).collect();
    actions.push(Action::CloseFrom(wanted.last().map_or(0, |t| t + 1)));
    actions
}

/// The CPU set for `affinity` (a plain bitmap; building it allocates nothing
/// in the child).
fn cpu_set(cpus: &[usize]) -> Result<Box<libc::cpu_set_t>, SpawnError> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: Box<libc::cpu_set_t> = Box::new(unsafe { std::mem::zeroed() });
    for &cpu in cpus {
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(SpawnError::at(Stage::Affinity, libc::EINVAL));
        }
        // SAFETY: `cpu` is within the set (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

/// The pipe on which a child with its own copy of our memory reports a
/// failed step: our read end, and the write end the child keeps through
/// its fd steps (at or above `min`, so no target or closed gap is on it).
struct ErrPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl ErrPipe {
    fn new(min: c_int) -> Result<Self, SpawnError> {
        let fail = |e: std::io::Error| SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(libc::EIO));
        let (read, write) = crate::sys::pipe_cloexec().map_err(fail)?;
        crate::sys::set_nonblocking_fresh(&read).map_err(fail)?;
        // SAFETY: F_DUPFD_CLOEXEC on our own fd; the new fd is ours alone.
        let high = cvt(unsafe { libc::fcntl(write.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) }).map_err(fail)?;
        // SAFETY: as above.
        Ok(ErrPipe { read, write: unsafe { OwnedFd::from_raw_fd(high) } })
    }

    /// What the child reported, once it has exec'd or exited: nothing, or
    /// a record (checked: the child may have been running as another user,
    /// under whoever could ptrace it).
    fn report(self) -> Option<(Stage, c_int, usize)> {
        drop(self.write);
        let mut rec = ErrRecord::default();
        let size = std::mem::size_of::<ErrRecord>();
        // SAFETY: reads at most `size` bytes into the record.
        let n = unsafe { libc::read(self.read.as_raw_fd(), (&mut rec as *mut ErrRecord).cast(), size) };
        if n <= 0 {
            return None;
        }
        match Stage::from_raw(rec.stage) {
            Some(stage) if n as usize == size && stage != Stage::None => {
                Some((stage, rec.errno, usize::try_from(rec.index).unwrap_or(usize::MAX)))
            }
            _ => Some((Stage::Spawn, libc::EIO, 0)),
        }
    }
}

/// Block every signal in this thread, glibc's internal ones too (its
/// `pthread_sigmask` leaves 32 and 33 out, whose handlers must not run in
/// a child sharing our memory); the old mask.
fn block_all_signals() -> u64 {
    let all: u64 = !0;
    let mut old: u64 = 0;
    // SAFETY: the raw syscall with 8-byte sets (the kernel's sigset size).
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all as *const u64, &mut old as *mut u64, 8) };
    old
}

fn restore_signals(old: u64) {
    // SAFETY: as in `block_all_signals`.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &old as *const u64, ptr::null_mut::<u64>(), 8)
    };
}

/// Start the child described by `req` on the clone path.
pub(super) fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let entries = match req.stdio {
        Stdio::Fds(entries) => entries,
        Stdio::Pty(_) => &[],
    };
    // A user switch where the kernel leaves our memory dumpable: the child
    // must not share it (`dumpable`).
    let separate_memory = req.creds.is_some() && !shared_memory_is_safe();
    let shared_files =
        caps().close_range_unshare && entries.len() <= channel::MAX_FDS && !req.setup.keep_fds && !separate_memory;
    if !shared_files {
        return run(req, Files::Copied, separate_memory, None);
    }
    if entries.is_empty() {
        // Nothing to send: the child keeps no fd of ours at all.
        return run(req, Files::Shared, separate_memory, None);
    }
    let lease = channel::take().map_err(|e| SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(0)))?;
    if lease.recv_fd() > spawner::SPAWNER_ABOVE && spawner::suits(req) {
        // The child would copy every fd below the channel: cheaper to have
        // a spawner thread, with a table of a few fds, start it.
        drop(lease);
        if let Some(result) = spawner::spawn(req) {
            return result;
        }
        let lease = channel::take().map_err(|e| SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(0)))?;
        return run(req, Files::Shared, separate_memory, Some(lease));
    }
    run(req, Files::Shared, separate_memory, Some(lease))
}

/// Start the child with a copy of our fd table (on a spawner thread, whose
/// table holds a few fds).
pub(super) fn run_copied(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let separate_memory = req.creds.is_some() && !shared_memory_is_safe();
    run(req, Files::Copied, separate_memory, None)
}

/// Start the child with `files`; with `separate_memory`, without `CLONE_VM`.
/// `lease`: the channel for a child that shares our table (taken here if
/// `None` and needed).
pub(super) fn run(
    req: &Request<'_>,
    files: Files,
    separate_memory: bool,
    lease: Option<Lease>,
) -> Result<Spawned, SpawnError> {
    let setup = req.setup;
    if setup.cgroup.is_some() && !CLONE3_SUPPORTED {
        return Err(SpawnError::at(Stage::Cgroup, libc::ENOSYS));
    }
    let entries: &[(c_int, c_int)] = match req.stdio {
        Stdio::Fds(entries) => entries,
        Stdio::Pty(_) => &[],
    };

    // Everything that can fail, before anything is sent.
    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let cands = ptr_array(&req.exec.candidates);
    let rlimits: Vec<(c_int, libc::rlimit64)> = setup
        .rlimits
        .iter()
        .map(|&(res, soft, hard)| (res, libc::rlimit64 { rlim_cur: soft, rlim_max: hard }))
        .collect();
    let affinity = setup.affinity.map(cpu_set).transpose()?;
    let stack = Stack::take()?;
    let mut given = lease;
    let mut lease: Option<Lease> = None;
    let mut prepared = None;
    let mut control = Vec::new();
    let actions = match (files, req.stdio) {
        (Files::Shared, _) if entries.is_empty() => plan_for_received(&[], &[]),
        (Files::Shared, _) => {
            let l = match given.take() {
                Some(l) => l,
                None => channel::take().map_err(|e| SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(0)))?,
            };
            control = vec![0u64; channel::control_len(entries.len()).div_ceil(8)];
            let targets: Vec<c_int> = entries.iter().map(|e| e.0).collect();
            let actions = plan_for_received(&targets, &received_numbers(entries.len(), l.recv_fd()));
            lease = Some(l);
            actions
        }
        (Files::Copied, Stdio::Fds(entries)) => prepared.insert(super::prepare_fds(entries)?).actions(),
        (Files::Copied, Stdio::Pty(_)) => Vec::new(),
    };
    let err_pipe = if separate_memory {
        let top = entries.iter().map(|e| e.0 + 1).max().unwrap_or(0);
        Some(ErrPipe::new(top.max(3))?)
    } else {
        None
    };
    // The last step that can fail: the send. From here on the lease drains
    // the channel whatever happens (the child dies before it receives, the
    // clone fails, anything unwinds).
    let chan_expect = match lease.as_mut() {
        Some(l) => {
            let sources: Vec<c_int> = entries.iter().map(|e| e.1).collect();
            l.send(&sources).map_err(|e| {
                let entry = entries.iter().position(|e| !crate::sys::fd_is_open(e.1));
                SpawnError { stage: Stage::Fds, errno: e.raw_os_error().unwrap_or(libc::EBADF), path: None, entry }
            })?
        }
        None => Header::default(),
    };

    let pty_path = match &req.stdio {
        Stdio::Pty(path) => path.as_ptr(),
        Stdio::Fds(_) => ptr::null(),
    };
    let creds = req.creds;
    let groups = creds.and_then(|c| c.groups.as_deref());
    let mut ctx = ChildCtx {
        share_files: files == Files::Shared,
        chan: lease.as_ref().map_or(-1, Lease::recv_fd),
        chan_control: control.as_mut_ptr().cast(),
        chan_control_len: control.len() * 8,
        chan_expect,
        candidates: cands.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        actions: actions.as_ptr(),
        n_actions: actions.len(),
        close_others: !setup.keep_fds,
        pty_path,
        cwd: req.cwd.map_or(ptr::null(), |c| c.as_ptr()),
        session: req.effective_session(),
        signals: match setup.signals {
            Signals::Default => SignalReset::All,
            Signals::KeepIgnored { restore } => SignalReset::Handled { restore },
        },
        umask: setup.umask.map_or(-1, |m| m as c_int),
        rlimits: rlimits.as_ptr(),
        n_rlimits: rlimits.len(),
        nice: setup.nice.unwrap_or(0),
        set_nice: setup.nice.is_some(),
        affinity: affinity.as_deref().map_or(ptr::null(), |s| s as *const libc::cpu_set_t),
        groups: groups.map_or(ptr::null(), <[libc::gid_t]>::as_ptr),
        n_groups: groups.map_or(-1, |g| g.len() as isize),
        gid: creds.and_then(|c| c.gid).map_or(-1, i64::from),
        uid: creds.and_then(|c| c.uid).map_or(-1, i64::from),
        death_signal: setup.parent_death_signal.unwrap_or(0),
        // Read by the child only with a death signal.
        // SAFETY: getpid only reads.
        parent_pid: if setup.parent_death_signal.is_some() { unsafe { libc::getpid() } } else { 0 },
        no_new_privs: setup.no_new_privs,
        // Only for closing fds one by one where close_range is missing: where
        // the kernel has CLOSE_RANGE_UNSHARE it has close_range, and the
        // limit (a syscall per spawn) is not needed.
        max_fd: if caps().close_range_unshare { 1 << 20 } else { open_file_limit() },
        err_fd: err_pipe.as_ref().map_or(-1, |p| p.write.as_raw_fd()),
        err_stage: Stage::None,
        err_errno: 0,
        err_index: 0,
        #[cfg(test)]
        hook: HOOK.with(Cell::get),
    };

    let mut pidfd: c_int = -1;
    let mut flags = libc::CLONE_VFORK;
    if !separate_memory {
        flags |= libc::CLONE_VM;
    }
    if caps().pidfd {
        flags |= libc::CLONE_PIDFD;
    }
    if files == Files::Shared {
        flags |= libc::CLONE_FILES;
    }
    // No handler may run in the child before it has reset them.
    let old_mask = block_all_signals();
    let cred_window = creds.is_some() && !separate_memory;
    if cred_window {
        enter_cred_window();
    }
    let ctx_ptr: *mut c_void = (&mut ctx as *mut ChildCtx).cast();
    let pid = match setup.cgroup {
        None => {
            // SAFETY: the child runs `child_main` on its own stack with `ctx`,
            // which lives until clone returns (the parent is suspended until
            // exec or exit).
            unsafe { libc::clone(child_main, stack.top(), flags | libc::SIGCHLD, ctx_ptr, &mut pidfd as *mut c_int) }
        }
        Some(cgroup) => {
            let (base, size) = stack.range();
            let mut args = CloneArgs {
                flags: flags as u64 | CLONE_INTO_CGROUP,
                pidfd: &mut pidfd as *mut c_int as u64,
                exit_signal: libc::SIGCHLD as u64,
                stack: base as u64,
                stack_size: size as u64,
                cgroup: cgroup as u64,
                ..CloneArgs::default()
            };
            // SAFETY: as for clone above; the stack range is our private mapping.
            let r = unsafe { clone3(&mut args, child_main, ctx_ptr) };
            if r < 0 {
                // SAFETY: reporting the syscall's error through errno, as clone does.
                unsafe { *libc::__errno_location() = -r as c_int };
                -1
            } else {
                r as libc::pid_t
            }
        }
    };
    let clone_errno = errno();
    if cred_window {
        leave_cred_window();
    }
    restore_signals(old_mask);
    // The child has exec'd or exited (CLONE_VFORK), or never was.
    stack.give_back();
    drop(prepared);
    drop(lease);
    if pid < 0 {
        let stage = if setup.cgroup.is_some() { Stage::Cgroup } else { Stage::Spawn };
        return Err(SpawnError::at(stage, clone_errno));
    }
    // SAFETY: CLONE_PIDFD stored a new fd here, owned by us alone.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let spawned = Spawned::new(pid, pidfd);
    let failed = match err_pipe {
        Some(pipe) => pipe.report(),
        // SAFETY: the child wrote these (if at all) before exec/_exit, which
        // happened-before clone returned here.
        None => unsafe {
            let stage = ptr::read_volatile(&ctx.err_stage);
            (stage != Stage::None)
                .then(|| (stage, ptr::read_volatile(&ctx.err_errno), ptr::read_volatile(&ctx.err_index)))
        },
    };
    if let Some((stage, err, index)) = failed {
        // The child has already called _exit: dropping the guard reaps it,
        // so no zombie is left.
        drop(spawned);
        let path = (stage == Stage::Exec).then(|| req.exec.candidates.get(index).cloned()).flatten();
        let entry = (stage == Stage::Rlimit).then_some(index);
        return Err(SpawnError { stage, errno: err, path, entry });
    }
    Ok(spawned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_received_at_their_targets_do_not_move() {
        assert_eq!(plan_for_received(&[0, 1, 2], &[0, 1, 2]), vec![Action::CloseFrom(3)]);
        // The channel at 1: fds land on 0, 2, 3, which are the targets here.
        assert_eq!(
            plan_for_received(&[0, 2, 3], &[0, 2, 3]),
            vec![Action::CloseRange { first: 1, last: 1 }, Action::CloseFrom(4)]
        );
        assert_eq!(plan_for_received(&[], &[]), vec![Action::CloseFrom(0)]);
    }

    #[test]
    fn other_mappings_take_the_general_plan() {
        for (targets, received) in [(&[0, 1, 2][..], &[0, 1, 3][..]), (&[1, 0], &[0, 1]), (&[5], &[0])] {
            assert_eq!(plan_for_received(targets, received), received_plan(targets, received));
        }
    }
}
