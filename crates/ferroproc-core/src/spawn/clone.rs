//! The clone path: a vfork-style `clone(CLONE_VM | CLONE_VFORK)` child on a
//! private stack, running [`child_steps`] on data prepared in the parent.
//!
//! Where the kernel has `CLOSE_RANGE_UNSHARE` the child also shares our fd
//! table (`CLONE_FILES`) and takes a private one holding only what it needs,
//! its fds sent over the spawn [`channel`]: no copy of the parent's table,
//! so the cost does not grow with the fds the parent holds. Elsewhere the
//! child gets the usual copy, with every source prepared in the parent.

use std::ffi::{c_char, c_int, c_void};
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;
use std::sync::Mutex;

use super::{channel, Request, Session, SpawnError, Spawned, Stage, Stdio};
use crate::exec::ptr_array;
use crate::fdplan::{received_numbers, received_plan, Action};
use crate::sys::{caps, errno, open_file_limit};

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

/// What the vfork-style child reads (and, on failure, writes back).
///
/// The child shares the parent's memory (`CLONE_VM`) while the parent is
/// suspended (`CLONE_VFORK`) until the child execs or exits, so the parent
/// reads `err_*` only after `clone` has returned.
#[repr(C)]
struct ChildCtx {
    /// Shares our fd table (`CLONE_FILES`): first take a private one.
    share_files: bool,
    /// With `share_files` and fds to receive: the channel's receiving end,
    /// and a buffer for the control message.
    chan: c_int,
    chan_control: *mut u8,
    chan_control_len: usize,
    candidates: *const *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    actions: *const Action,
    n_actions: usize,
    pty_path: *const c_char,
    cwd: *const c_char,
    session: Session,
    groups: *const libc::gid_t,
    n_groups: usize,
    set_ids: bool,
    gid: libc::gid_t,
    uid: i64,
    max_fd: c_int,
    err_stage: Stage,
    err_errno: c_int,
    err_candidate: usize,
}

/// A private stack for the child, with a guard page below it.
struct Stack {
    base: *mut c_void,
    len: usize,
}

const STACK_SIZE: usize = 128 * 1024;
const GUARD: usize = 4096;

impl Stack {
    fn new() -> Result<Self, SpawnError> {
        let len = STACK_SIZE + GUARD;
        // SAFETY: anonymous private mapping; checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(SpawnError::at(Stage::Spawn, errno()));
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of our own mapping becomes inaccessible, so a
        // stack overflow in the child faults instead of scribbling on the heap.
        unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) };
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of our mapping, 16-byte aligned (page aligned).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

// SAFETY: a Stack is a private anonymous mapping owned by this value alone;
// it is not tied to the thread that made it, and is only used while the
// spawning thread holds it (taken from and returned to the pool below).
unsafe impl Send for Stack {}

/// Spare stacks, so a spawn does not map, protect and unmap a fresh one
/// each time (a few idle ones at most).
static SPARE_STACKS: Mutex<Vec<Stack>> = Mutex::new(Vec::new());
const MAX_SPARE_STACKS: usize = 4;

impl Stack {
    fn take() -> Result<Self, SpawnError> {
        let spare = SPARE_STACKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match spare {
            Some(s) => Ok(s),
            None => Stack::new(),
        }
    }

    /// Back to the pool; only after the child has exec'd or exited
    /// (CLONE_VFORK), when nothing runs on it any more.
    fn give_back(self) {
        let mut spare = SPARE_STACKS.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < MAX_SPARE_STACKS {
            spare.push(self);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, after the child has
        // exec'd or exited (CLONE_VFORK), so nothing runs on it any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Credential changes in a child that shares our memory, and the process's
/// "dumpable" flag.
///
/// When the child switches to another user, the kernel clears the dumpable
/// flag of its memory, which is ours (`CLONE_VM`). That is what makes the
/// window safe: between its `setresuid` and its `execve`, a process of the
/// target user could otherwise `ptrace`-attach to the child (now of its own
/// uid) or open its `/proc/<pid>/mem`, and through the shared memory take
/// over this privileged process; a non-dumpable memory refuses both to
/// anyone without CAP_SYS_PTRACE. (This, and glibc's set*id wrappers
/// signalling the parent's threads, are why CPython will not vfork for
/// uid/gid changes, bpo-35823; we call the raw syscalls, which act on the
/// calling task alone.) Once every such child has exec'd or exited — with
/// CLONE_VFORK, when its `clone` has returned — nothing running as another
/// user shares our memory, and the flag is put back as it was, so the parent
/// comes out of the spawn as it went in (`/proc/self` owned by us, core dumps
/// as configured). A count of the children inside the window makes sure the
/// last one out restores it, never an earlier one while another is still in.
struct CredWindow {
    inside: usize,
    dumpable_before: bool,
}

static CRED_WINDOW: Mutex<CredWindow> = Mutex::new(CredWindow { inside: 0, dumpable_before: false });

fn enter_cred_window() {
    let mut w = CRED_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    if w.inside == 0 {
        // SAFETY: PR_GET_DUMPABLE only reads the flag.
        w.dumpable_before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } == 1;
    }
    w.inside += 1;
}

fn leave_cred_window() {
    let mut w = CRED_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    w.inside -= 1;
    if w.inside == 0 && w.dumpable_before {
        // SAFETY: sets this process's flag back to the value it had before
        // the first child entered the window; no such child is running now.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    }
}

/// Close every fd from `first` to `last`: `close_range` where the kernel has
/// it (5.9), otherwise one `close` per possible fd (below `max_fd`).
///
/// # Safety
/// Async-signal-safe; only closes fd numbers.
unsafe fn close_range(first: c_int, last: c_int, max_fd: c_int) {
    // SAFETY: integer-only syscall.
    if unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, last as libc::c_uint, 0) } == 0 {
        return;
    }
    let mut fd = first;
    while fd <= last && fd < max_fd {
        // SAFETY: closing an fd number; EBADF is harmless.
        unsafe { libc::close(fd) };
        fd += 1;
    }
}

/// The steps the child takes before exec. Returns only on failure, having
/// recorded the stage and errno in `ctx`.
///
/// # Safety
/// Runs in a `CLONE_VM | CLONE_VFORK` child on its own stack. Why this is sound:
/// - the parent thread is suspended until exec or `_exit`, and every other
///   parent thread may run, so the child must not take locks, allocate, free,
///   unwind or touch anything the parent owns except `ctx.err_*`; it only
///   reads pre-built data and makes syscalls (glibc's posix_spawn child does
///   the same);
/// - credentials are changed with raw `set*id` syscalls, which act on this
///   task alone; glibc's wrappers would broadcast the change to the parent's
///   other threads through signals (the "setxid" machinery); see
///   [`CredWindow`] for why sharing memory across the switch is safe;
/// - all signals are blocked by the parent around `clone`; the child resets
///   every disposition to default before unblocking, so no Python or Rust
///   signal handler ever runs in it;
/// - errno is the parent thread's TLS slot (no CLONE_SETTLS); the parent does
///   not read it after `clone` returns, so clobbering it is harmless.
unsafe fn child_steps(ctx: &mut ChildCtx) {
    macro_rules! fail {
        ($stage:expr) => {{
            ctx.err_stage = $stage;
            // SAFETY: reading this thread's errno slot.
            ctx.err_errno = *libc::__errno_location();
            return;
        }};
    }
    // SAFETY: (this block) only async-signal-safe libc calls and raw syscalls on pre-built data.
    unsafe {
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
                if !channel::child_receive(ctx.chan, ctx.chan_control, ctx.chan_control_len) {
                    fail!(Stage::Fds);
                }
                libc::close(ctx.chan);
            }
        }

        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        let mut sig = 1;
        while sig < 65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &sa, ptr::null_mut());
            }
            sig += 1;
        }

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
            let fd = libc::open(ctx.pty_path, libc::O_RDWR);
            if fd < 0 {
                fail!(Stage::Terminal);
            }
            libc::ioctl(fd, libc::TIOCSCTTY, 0);
            let mut t = 0;
            while t < 3 {
                if fd != t && libc::dup2(fd, t) < 0 {
                    fail!(Stage::Terminal);
                }
                t += 1;
            }
            if fd > 2 {
                libc::close(fd);
            }
            close_range(3, c_int::MAX, ctx.max_fd);
        } else {
            let mut i = 0;
            while i < ctx.n_actions {
                match *ctx.actions.add(i) {
                    Action::Dup2 { src, dst } => {
                        if libc::dup2(src, dst) < 0 {
                            fail!(Stage::Fds);
                        }
                    }
                    Action::CloseRange { first, last } => close_range(first, last, ctx.max_fd),
                    Action::CloseFrom(n) => close_range(n, c_int::MAX, ctx.max_fd),
                }
                i += 1;
            }
        }

        if !ctx.cwd.is_null() && libc::chdir(ctx.cwd) < 0 {
            fail!(Stage::Chdir);
        }

        if ctx.set_ids {
            if libc::syscall(ids::SETGROUPS, ctx.n_groups, ctx.groups) < 0 {
                fail!(Stage::Groups);
            }
            if libc::syscall(ids::SETRESGID, ctx.gid, ctx.gid, ctx.gid) < 0 {
                fail!(Stage::Gid);
            }
            if ctx.uid >= 0 {
                let uid = ctx.uid as libc::uid_t;
                if libc::syscall(ids::SETRESUID, uid, uid, uid) < 0 {
                    fail!(Stage::Uid);
                }
            }
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
                    ctx.err_candidate = i;
                }
                denied = true;
            } else if e != libc::ENOENT && e != libc::ENOTDIR {
                ctx.err_candidate = i;
                fail!(Stage::Exec);
            } else if !denied {
                ctx.err_candidate = i;
            }
            i += 1;
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail!(Stage::Exec);
    }
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's ChildCtx, alive while the parent is
    // suspended in clone (CLONE_VFORK); see `child_steps` for the argument.
    unsafe {
        child_steps(&mut *(arg as *mut ChildCtx));
        libc::_exit(127)
    }
}

pub(super) fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let cands = ptr_array(&req.exec.candidates);
    let entries: &[(c_int, c_int)] = match req.stdio {
        Stdio::Fds(entries) => entries,
        Stdio::Pty(_) => &[],
    };
    let share_files = caps().close_range_unshare && entries.len() <= channel::MAX_FDS;
    // Shared table: the sources travel over the channel, which stays locked
    // (one spawn at a time through it) until the clone has returned.
    // Classic: every source placed in the parent, off the target numbers.
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
        received_plan(&targets, &received_numbers(entries.len(), chan))
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
    let empty_groups: [libc::gid_t; 0] = [];
    let (set_ids, gid, uid, groups): (bool, libc::gid_t, i64, &[libc::gid_t]) = match req.creds {
        Some(c) => (true, c.gid, c.uid.map_or(-1, i64::from), &c.groups),
        None => (false, 0, -1, &empty_groups),
    };
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
        pty_path,
        cwd: req.cwd.map_or(ptr::null(), |c| c.as_ptr()),
        session: req.effective_session(),
        groups: groups.as_ptr(),
        n_groups: groups.len(),
        set_ids,
        gid,
        uid,
        max_fd: open_file_limit(),
        err_stage: Stage::None,
        err_errno: 0,
        err_candidate: 0,
    };
    let stack = Stack::take()?;

    let use_pidfd = caps().pidfd;
    let mut pidfd: c_int = -1;
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
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
    // SAFETY: the child runs `child_main` on its own stack with `ctx`, which
    // lives until clone returns (the parent is suspended until exec or exit).
    let pid = unsafe {
        libc::clone(child_main, stack.top(), flags, (&mut ctx as *mut ChildCtx).cast(), &mut pidfd as *mut c_int)
    };
    let clone_errno = errno();
    if set_ids {
        leave_cred_window();
    }
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    stack.give_back();
    drop(prepared);
    if pid < 0 {
        if let Some(ch) = chan_guard.as_ref().and_then(|g| g.as_ref()) {
            ch.drain();
        }
        return Err(SpawnError::at(Stage::Spawn, clone_errno));
    }
    // SAFETY: the child wrote these (if at all) before exec/_exit, which
    // happened-before clone returned here.
    let (stage, err, cand) = unsafe {
        (ptr::read_volatile(&ctx.err_stage), ptr::read_volatile(&ctx.err_errno), ptr::read_volatile(&ctx.err_candidate))
    };
    // SAFETY: CLONE_PIDFD stored a new fd here, owned by us alone.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    let spawned = Spawned::new(pid, pidfd);
    if stage != Stage::None {
        // A child that failed before receiving its fds left them in the
        // channel: nobody else may get them.
        if let Some(ch) = chan_guard.as_ref().and_then(|g| g.as_ref()) {
            ch.drain();
        }
        // The child has already called _exit: dropping the guard reaps it
        // (retrying on EINTR), so no zombie is left.
        drop(spawned);
        let path = (stage == Stage::Exec).then(|| req.exec.candidates.get(cand).cloned()).flatten();
        return Err(SpawnError { stage, errno: err, path, entry: None });
    }
    Ok(spawned)
}
