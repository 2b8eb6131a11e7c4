//! What the vfork-style child runs between `clone` and `execve`: one
//! routine, [`child_steps`], over data the parent prepared ([`ChildCtx`]).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use super::channel::{self, Header};
use super::{Session, Stage};
use crate::fdplan::Action;

// The raw credential syscalls: on 32-bit x86 and ARM the plain numbers are
// the legacy 16-bit calls (a uid above 65535 would be truncated and the child
// would run as the wrong user); the 32-bit ones are named with a suffix.
#[cfg(any(target_arch = "x86", target_arch = "arm"))]
mod ids {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups32;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid32;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid32;
}
#[cfg(all(target_pointer_width = "32", not(any(target_arch = "x86", target_arch = "arm"))))]
compile_error!("ferroproc: on this 32-bit target the width of the set*id syscalls is unknown; it is not supported");
#[cfg(target_pointer_width = "64")]
mod ids {
    pub const SETGROUPS: libc::c_long = libc::SYS_setgroups;
    pub const SETRESGID: libc::c_long = libc::SYS_setresgid;
    pub const SETRESUID: libc::c_long = libc::SYS_setresuid;
}

/// How the child's signal dispositions are set (see [`super::Signals`]).
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) enum SignalReset {
    /// Every signal to its default.
    All,
    /// Handled ones to default (no handler of ours may run in the child),
    /// ignored ones left ignored, except SIGPIPE and SIGXFSZ when `restore`.
    Handled { restore: bool },
}

/// What the vfork-style child reads (and, on failure, writes back).
///
/// The child shares the parent's memory (`CLONE_VM`) while the parent is
/// suspended (`CLONE_VFORK`) until the child execs or exits, so the parent
/// reads `err_*` only after `clone` has returned. (A child with a copy of
/// our memory reads its copy, and reports through `err_fd`.)
#[repr(C)]
pub(super) struct ChildCtx {
    /// Shares our fd table (`CLONE_FILES`): first take a private one.
    pub share_files: bool,
    /// With `share_files` and fds to receive: the channel's receiving end,
    /// a buffer for the control message, and the header the message must
    /// carry (anything else fails the spawn).
    pub chan: c_int,
    pub chan_control: *mut u8,
    pub chan_control_len: usize,
    pub chan_expect: Header,
    pub candidates: *const *const c_char,
    pub argv: *const *const c_char,
    pub envp: *const *const c_char,
    pub actions: *const Action,
    pub n_actions: usize,
    /// Close the fds no entry names (Popen's `close_fds=False`: no).
    pub close_others: bool,
    pub pty_path: *const c_char,
    pub cwd: *const c_char,
    pub session: Session,
    pub signals: SignalReset,
    pub umask: c_int,
    pub rlimits: *const (c_int, libc::rlimit64),
    pub n_rlimits: usize,
    pub nice: c_int,
    pub set_nice: bool,
    pub affinity: *const libc::cpu_set_t,
    pub groups: *const libc::gid_t,
    /// -1: leave the supplementary groups alone.
    pub n_groups: isize,
    pub gid: i64,
    pub uid: i64,
    pub death_signal: c_int,
    pub parent_pid: libc::pid_t,
    pub no_new_privs: bool,
    pub max_fd: c_int,
    /// A child with its own copy of our memory (no `CLONE_VM`) reports a
    /// failed step here, an [`ErrRecord`] on a close-on-exec pipe (kept
    /// through the fd steps), since what it writes to `err_*` stays in its
    /// copy. -1 for a child that shares our memory.
    pub err_fd: c_int,
    pub err_stage: Stage,
    pub err_errno: c_int,
    /// The exec candidate tried last, or the rlimit entry that failed.
    pub err_index: usize,
    /// What a test asks the child to do at a given point.
    #[cfg(test)]
    pub hook: TestHook,
}

/// What a child with its own memory writes on its error pipe.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(super) struct ErrRecord {
    pub stage: u32,
    pub errno: c_int,
    pub index: u64,
}

/// Test-only child behaviour, to reach states a real child gets into only
/// by bad luck (killed by a cgroup or the OOM killer at birth, stopped
/// before its exec).
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TestHook {
    #[default]
    None,
    /// SIGKILL itself before it receives its fds.
    KillBeforeReceive,
    /// SIGSTOP itself before exec: after every other step, before it
    /// unblocks signals.
    StopBeforeExec,
    /// Store 1 at this address of the parent's (if it shares our memory,
    /// the parent sees it).
    Poke(usize),
}

/// `close(fd)` as the raw syscall: glibc's `close` is a cancellation point,
/// which in a child sharing the parent thread's TLS would act on that
/// thread's pending cancellation.
///
/// # Safety
/// Async-signal-safe; only closes an fd number.
unsafe fn close(fd: c_int) {
    // SAFETY: integer-only syscall; EBADF is harmless.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Close every fd from `first` to `last` but `keep`: `close_range` where
/// the kernel has it (5.9), otherwise one `close` per possible fd (below
/// `max_fd`).
///
/// # Safety
/// Async-signal-safe; only closes fd numbers.
unsafe fn close_range(first: c_int, last: c_int, max_fd: c_int, keep: c_int) {
    if keep >= first && keep <= last {
        // SAFETY: the two ranges around `keep`, by the same rules.
        unsafe {
            if keep > first {
                close_range(first, keep - 1, max_fd, -1);
            }
            if keep < last {
                close_range(keep + 1, last, max_fd, -1);
            }
        }
        return;
    }
    // SAFETY: integer-only syscall.
    if unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, last as libc::c_uint, 0) } == 0 {
        return;
    }
    let mut fd = first;
    while fd <= last && fd < max_fd {
        // SAFETY: closing an fd number; EBADF is harmless.
        unsafe { close(fd) };
        fd += 1;
    }
}

/// The kernel's `struct sigaction` on the architectures where the handler
/// comes first. Only the handler is read; zeroes elsewhere mean no flags and
/// an empty mask (where the kernel's struct has no `sa_restorer`, the mask
/// it reads is that zeroed field).
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "x86",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
))]
mod sig {
    use std::ptr;

    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }

    /// The disposition of `sig` (`SIG_DFL`, `SIG_IGN` or a handler).
    ///
    /// # Safety
    /// Async-signal-safe: one raw `rt_sigaction`.
    pub(super) unsafe fn get(sig: libc::c_int) -> Option<usize> {
        let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
        // SAFETY: the kernel writes at most its struct's size (ours is as large or larger).
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                ptr::null::<KernelSigaction>(),
                &mut old as *mut KernelSigaction,
                8,
            )
        };
        (r == 0).then_some(old.handler)
    }

    /// `sig` back to its default. The raw call, unlike glibc's `sigaction`,
    /// also reaches glibc's internal signals (32, 33), whose handlers must
    /// not run in a child that shares the parent's memory.
    ///
    /// # Safety
    /// Async-signal-safe: one raw `rt_sigaction`.
    pub(super) unsafe fn set_default(sig: libc::c_int) {
        let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
        // SAFETY: the kernel reads at most its struct's size.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                ptr::null_mut::<KernelSigaction>(),
                8,
            )
        };
    }
}

/// Elsewhere glibc's `sigaction` (which leaves its internal signals alone).
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "x86",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
mod sig {
    use std::ptr;

    /// See the raw version.
    ///
    /// # Safety
    /// Async-signal-safe.
    pub(super) unsafe fn get(sig: libc::c_int) -> Option<usize> {
        // SAFETY: sigaction on stack values.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(sig, ptr::null(), &mut old) == 0).then_some(old.sa_sigaction)
        }
    }

    /// See the raw version.
    ///
    /// # Safety
    /// Async-signal-safe.
    pub(super) unsafe fn set_default(sig: libc::c_int) {
        // SAFETY: sigaction on stack values.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, ptr::null_mut());
        }
    }
}

/// Reset the signal dispositions as `how` says. All signals are blocked
/// while this runs (the parent blocked them around `clone`).
///
/// # Safety
/// Async-signal-safe; runs in the child.
unsafe fn reset_signals(how: SignalReset) {
    let mut signo = 1;
    while signo < 65 {
        if signo != libc::SIGKILL && signo != libc::SIGSTOP {
            let reset = match how {
                SignalReset::All => true,
                // SAFETY: one query of a disposition.
                SignalReset::Handled { restore } => match unsafe { sig::get(signo) } {
                    None => false,
                    Some(libc::SIG_IGN) => restore && (signo == libc::SIGPIPE || signo == libc::SIGXFSZ),
                    Some(h) => h != libc::SIG_DFL,
                },
            };
            if reset {
                // SAFETY: setting one disposition to default.
                unsafe { sig::set_default(signo) };
            }
        }
        signo += 1;
    }
}

/// The steps the child takes before exec. Returns only on failure, having
/// recorded the stage and errno in `ctx`.
///
/// # Safety
/// Runs in a `CLONE_VFORK` child on its own stack, with `CLONE_VM` (sharing
/// our memory) or, for a credential switch where that is unsafe, with a
/// copy of it (then failures go to `ctx.err_fd`). Why this is sound:
/// - the parent thread is suspended until exec or `_exit`, and every other
///   parent thread may run, so the child must not take locks, allocate, free,
///   unwind or touch anything the parent owns except `ctx.err_*`; it only
///   reads pre-built data and makes syscalls (glibc's posix_spawn child does
///   the same);
/// - no cancellation point: the child shares the parent thread's TLS, so
///   glibc's `open`, `close`, `recvmsg`, `write` would act on a cancellation
///   pending for that thread; those are made as raw syscalls;
/// - credentials, limits and priorities are changed with raw syscalls, which
///   act on this task alone; glibc's `set*id` wrappers would broadcast the
///   change to the parent's other threads through signals (the "setxid"
///   machinery); see `dumpable` for why sharing memory across the switch is
///   safe where it is, and when it is not;
/// - every signal (glibc's internal 32 and 33 included) is blocked by the
///   parent around `clone` with the raw syscall; the child resets every
///   handled disposition to default (again with the raw syscall, which
///   glibc's internal signals do not refuse) before unblocking, so no
///   Python, Rust or glibc signal handler ever runs in it;
/// - errno is the parent thread's TLS slot (no CLONE_SETTLS); the parent does
///   not read it after `clone` returns, so clobbering it is harmless.
pub(super) unsafe fn child_steps(ctx: &mut ChildCtx) {
    macro_rules! fail {
        ($stage:expr) => {{
            ctx.err_stage = $stage;
            // SAFETY: reading this thread's errno slot.
            ctx.err_errno = *libc::__errno_location();
            if ctx.err_fd >= 0 {
                let rec = ErrRecord { stage: $stage as u32, errno: ctx.err_errno, index: ctx.err_index as u64 };
                let len = std::mem::size_of::<ErrRecord>();
                libc::syscall(libc::SYS_write, ctx.err_fd, &rec as *const ErrRecord, len);
            }
            return;
        }};
    }
    // SAFETY: (this block) only async-signal-safe libc calls and raw syscalls on pre-built data.
    unsafe {
        #[cfg(test)]
        if let TestHook::Poke(addr) = ctx.hook {
            ptr::write_volatile(addr as *mut u32, 1);
        }
        if ctx.share_files {
            // A private fd table holding only the channel (or nothing), then
            // the fds sent for us, at known numbers (`received_numbers`).
            let unshare = libc::CLOSE_RANGE_UNSHARE as libc::c_uint;
            let keep = if ctx.chan >= 0 { ctx.chan + 1 } else { 0 };
            if libc::syscall(libc::SYS_close_range, keep as libc::c_uint, libc::c_uint::MAX, unshare) < 0 {
                fail!(Stage::Fds);
            }
            if ctx.chan >= 0 {
                if ctx.chan > 0 {
                    libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, (ctx.chan - 1) as libc::c_uint, 0);
                }
                #[cfg(test)]
                if ctx.hook == TestHook::KillBeforeReceive {
                    libc::syscall(libc::SYS_kill, libc::syscall(libc::SYS_getpid), libc::SIGKILL);
                }
                if !channel::child_receive(ctx.chan, ctx.chan_control, ctx.chan_control_len, &ctx.chan_expect) {
                    fail!(Stage::Fds);
                }
                close(ctx.chan);
            }
        }

        reset_signals(ctx.signals);

        match ctx.session {
            Session::Inherit => {}
            Session::New => {
                if libc::setsid() < 0 {
                    fail!(Stage::Session);
                }
            }
            Session::NewGroup => {
                if libc::setpgid(0, 0) < 0 {
                    fail!(Stage::Session);
                }
            }
            Session::JoinGroup(pgid) => {
                if libc::setpgid(0, pgid) < 0 {
                    fail!(Stage::Session);
                }
            }
        }

        if !ctx.pty_path.is_null() {
            // No O_NOCTTY: a session leader opening a terminal acquires it.
            let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, ctx.pty_path, libc::O_RDWR) as c_int;
            if fd < 0 {
                fail!(Stage::Terminal);
            }
            libc::syscall(libc::SYS_ioctl, fd, libc::TIOCSCTTY, 0);
            let mut t = 0;
            while t < 3 {
                if fd != t && libc::dup2(fd, t) < 0 {
                    fail!(Stage::Terminal);
                }
                t += 1;
            }
            if fd > 2 {
                close(fd);
            }
            close_range(3, c_int::MAX, ctx.max_fd, ctx.err_fd);
        } else {
            let mut i = 0;
            while i < ctx.n_actions {
                match *ctx.actions.add(i) {
                    Action::Dup2 { src, dst } => {
                        if libc::dup2(src, dst) < 0 {
                            fail!(Stage::Fds);
                        }
                    }
                    Action::CloseRange { first, last } if ctx.close_others => {
                        close_range(first, last, ctx.max_fd, ctx.err_fd);
                    }
                    Action::CloseFrom(n) if ctx.close_others => close_range(n, c_int::MAX, ctx.max_fd, ctx.err_fd),
                    Action::CloseRange { .. } | Action::CloseFrom(_) => {}
                }
                i += 1;
            }
        }

        if !ctx.cwd.is_null() && libc::chdir(ctx.cwd) < 0 {
            fail!(Stage::Chdir);
        }
        if ctx.umask >= 0 {
            libc::umask(ctx.umask as libc::mode_t);
        }
        // Limits and priority before the credentials: raising a hard limit or
        // a priority needs the privileges the switch gives up.
        let mut i = 0;
        while i < ctx.n_rlimits {
            let (resource, limit) = *ctx.rlimits.add(i);
            if libc::syscall(libc::SYS_prlimit64, 0, resource, &limit as *const libc::rlimit64, ptr::null_mut::<u8>())
                < 0
            {
                ctx.err_index = i;
                fail!(Stage::Rlimit);
            }
            i += 1;
        }
        if ctx.set_nice && libc::syscall(libc::SYS_setpriority, libc::PRIO_PROCESS, 0, ctx.nice) < 0 {
            fail!(Stage::Nice);
        }
        if !ctx.affinity.is_null()
            && libc::syscall(libc::SYS_sched_setaffinity, 0, std::mem::size_of::<libc::cpu_set_t>(), ctx.affinity) < 0
        {
            fail!(Stage::Affinity);
        }

        if ctx.n_groups >= 0 && libc::syscall(ids::SETGROUPS, ctx.n_groups as usize, ctx.groups) < 0 {
            fail!(Stage::Groups);
        }
        if ctx.gid >= 0 {
            let gid = ctx.gid as libc::gid_t;
            if libc::syscall(ids::SETRESGID, gid, gid, gid) < 0 {
                fail!(Stage::Gid);
            }
        }
        if ctx.uid >= 0 {
            let uid = ctx.uid as libc::uid_t;
            if libc::syscall(ids::SETRESUID, uid, uid, uid) < 0 {
                fail!(Stage::Uid);
            }
        }
        if ctx.err_fd >= 0 && (ctx.uid >= 0 || ctx.gid >= 0) {
            // Our own copy of the parent's memory, left dumpable by the
            // switch (fs.suid_dumpable=1): not readable by the target user
            // from here to the exec (which sets the flag for the new program).
            libc::syscall(libc::SYS_prctl, libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }

        // After the credentials (a switch clears it). Then the classic race:
        // the parent may have died before it was set; if so, act now.
        if ctx.death_signal > 0 {
            if libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, ctx.death_signal as libc::c_ulong, 0, 0, 0) < 0 {
                fail!(Stage::DeathSignal);
            }
            if libc::syscall(libc::SYS_getppid) as libc::pid_t != ctx.parent_pid {
                libc::syscall(libc::SYS_kill, libc::syscall(libc::SYS_getpid), ctx.death_signal);
            }
        }
        if ctx.no_new_privs && libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail!(Stage::NoNewPrivs);
        }

        #[cfg(test)]
        if ctx.hook == TestHook::StopBeforeExec {
            libc::syscall(libc::SYS_kill, libc::syscall(libc::SYS_getpid), libc::SIGSTOP);
        }

        // An empty signal mask for the new program (8 bytes: the kernel's sigset size).
        let empty: u64 = 0;
        if libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &empty as *const u64, ptr::null_mut::<u64>(), 8)
            < 0
        {
            fail!(Stage::Spawn);
        }

        let mut i = 0;
        let mut denied = false;
        while !(*ctx.candidates.add(i)).is_null() {
            libc::execve(*ctx.candidates.add(i), ctx.argv, ctx.envp);
            let e = *libc::__errno_location();
            if e == libc::EACCES {
                if !denied {
                    ctx.err_index = i;
                }
                denied = true;
            } else if e != libc::ENOENT && e != libc::ENOTDIR {
                ctx.err_index = i;
                fail!(Stage::Exec);
            } else if !denied {
                ctx.err_index = i;
            }
            i += 1;
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail!(Stage::Exec);
    }
}

/// The child's entry point (for `clone`, and for `clone3`'s trampoline).
pub(super) extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildCtx, alive while the parent is
    // suspended in clone (CLONE_VFORK); see `child_steps` for the argument.
    unsafe {
        child_steps(&mut *(arg as *mut ChildCtx));
        libc::_exit(127)
    }
}
