//! The clone path: a vfork-style `clone(CLONE_VM | CLONE_VFORK)` child on a
//! private stack, running `child::child_steps` on data prepared here.
//!
//! Where the kernel has `CLOSE_RANGE_UNSHARE` the child also shares our fd
//! table (`CLONE_FILES`) and takes a private one holding only what it needs,
//! its fds sent over the spawn [`channel`]: no copy of the parent's table,
//! so the cost does not grow with the fds the parent holds. Elsewhere (and
//! when the child must keep the parent's other fds) the child gets the usual
//! copy, with every source prepared here. A cgroup to start in takes `clone3`.

use std::collections::BTreeSet;
use std::ffi::{c_int, c_void};
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;

use super::child::{child_main, ChildCtx, SignalReset};
use super::clone3::{clone3, CloneArgs, CLONE_INTO_CGROUP, SUPPORTED as CLONE3_SUPPORTED};
use super::dumpable::{enter_cred_window, leave_cred_window};
use super::stack::Stack;
use super::{channel, Request, Signals, SpawnError, Spawned, Stage, Stdio};
use crate::exec::ptr_array;
use crate::fdplan::{gaps, received_numbers, received_plan, Action};
use crate::sys::{caps, errno, open_file_limit};

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
fn cpu_set(cpus: &[usize]) -> Result<libc::cpu_set_t, SpawnError> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(SpawnError::at(Stage::Affinity, libc::EINVAL));
        }
        // SAFETY: `cpu` is within the set (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

pub(super) fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let setup = req.setup;
    if setup.cgroup.is_some() && !CLONE3_SUPPORTED {
        return Err(SpawnError::at(Stage::Cgroup, libc::ENOSYS));
    }
    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let cands = ptr_array(&req.exec.candidates);
    let entries: &[(c_int, c_int)] = match req.stdio {
        Stdio::Fds(entries) => entries,
        Stdio::Pty(_) => &[],
    };
    let share_files = caps().close_range_unshare && entries.len() <= channel::MAX_FDS && !setup.keep_fds;
    // Shared table: the sources travel over the channel, which stays locked
    // (one spawn at a time through it) until the clone has returned.
    // Classic: every source placed here, off the target numbers.
    let mut chan_guard = None;
    let mut prepared = None;
    let mut chan = -1;
    let mut control = Vec::new();
    let actions = if share_files {
        if !entries.is_empty() {
            let guard = channel::lock().map_err(|e| SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(0)))?;
            let ch = guard.as_ref().expect("made by lock");
            let sources: Vec<c_int> = entries.iter().map(|e| e.1).collect();
            ch.send(&sources).map_err(|e| {
                let entry = entries.iter().position(|e| !crate::sys::fd_is_open(e.1));
                SpawnError { stage: Stage::Fds, errno: e.raw_os_error().unwrap_or(libc::EBADF), path: None, entry }
            })?;
            chan = ch.recv_fd();
            control = vec![0u64; channel::control_len(entries.len()).div_ceil(8)];
            chan_guard = Some(guard);
        }
        let targets: Vec<c_int> = entries.iter().map(|e| e.0).collect();
        plan_for_received(&targets, &received_numbers(entries.len(), chan))
    } else {
        match req.stdio {
            Stdio::Fds(entries) => prepared.insert(super::prepare_fds(entries)?).actions(),
            Stdio::Pty(_) => Vec::new(),
        }
    };
    let pty_path = match &req.stdio {
        Stdio::Pty(path) => path.as_ptr(),
        Stdio::Fds(_) => ptr::null(),
    };
    let rlimits: Vec<(c_int, libc::rlimit64)> = setup
        .rlimits
        .iter()
        .map(|&(res, soft, hard)| (res, libc::rlimit64 { rlim_cur: soft, rlim_max: hard }))
        .collect();
    let affinity = setup.affinity.map(cpu_set).transpose()?;
    let creds = req.creds;
    let groups = creds.and_then(|c| c.groups.as_deref());
    let set_ids = creds.is_some();
    let mut ctx = ChildCtx {
        share_files,
        chan,
        chan_control: control.as_mut_ptr().cast(),
        chan_control_len: control.len() * 8,
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
        affinity: affinity.as_ref().map_or(ptr::null(), |s| s as *const libc::cpu_set_t),
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
        err_stage: Stage::None,
        err_errno: 0,
        err_index: 0,
    };
    let stack = Stack::take()?;

    let use_pidfd = caps().pidfd;
    let mut pidfd: c_int = -1;
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK;
    if use_pidfd {
        flags |= libc::CLONE_PIDFD;
    }
    if share_files {
        flags |= libc::CLONE_FILES;
    }
    // SAFETY: sigset_t is plain data, filled by sigfillset; blocking every
    // signal keeps handlers out of the child until it has reset them.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    if set_ids {
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
    if set_ids {
        leave_cred_window();
    }
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    stack.give_back();
    drop(prepared);
    let drain = || {
        if let Some(ch) = chan_guard.as_ref().and_then(|g| g.as_ref()) {
            ch.drain();
        }
    };
    if pid < 0 {
        drain();
        let stage = if setup.cgroup.is_some() { Stage::Cgroup } else { Stage::Spawn };
        return Err(SpawnError::at(stage, clone_errno));
    }
    // SAFETY: the child wrote these (if at all) before exec/_exit, which
    // happened-before clone returned here.
    let (stage, err, cand) = unsafe {
        (ptr::read_volatile(&ctx.err_stage), ptr::read_volatile(&ctx.err_errno), ptr::read_volatile(&ctx.err_index))
    };
    // SAFETY: CLONE_PIDFD stored a new fd here, owned by us alone.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let spawned = Spawned::new(pid, pidfd);
    if stage != Stage::None {
        // A child that failed before receiving its fds left them in the
        // channel: nobody else may get them.
        drain();
        // The child has already called _exit: dropping the guard reaps it
        // (retrying on EINTR), so no zombie is left.
        drop(spawned);
        let path = (stage == Stage::Exec).then(|| req.exec.candidates.get(cand).cloned()).flatten();
        let entry = (stage == Stage::Rlimit).then_some(cand);
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
