//! Starting a child: `posix_spawn` when the request fits it, otherwise a
//! vfork-style `clone(CLONE_VM | CLONE_VFORK)` child running one small,
//! allocation-free routine. Neither copies the parent's page tables, so the
//! cost of a spawn stays flat however large the parent grows.
//!
//! Everything the child needs (argv, envp, executable candidates, fd actions,
//! terminal path, groups) is built before either path starts; the child only
//! makes async-signal-safe calls on that data.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr;

use super::creds::Creds;
use super::exec::{ptr_array, ExecSpec};
use super::fdplan::{Action, PreparedFds};
use super::sys::{caps, errno, pidfd_open};

/// How the child gets its fds.
#[derive(Debug)]
pub enum Stdio<'a> {
    /// A childFDs mapping, prepared in the parent.
    Fds(&'a PreparedFds),
    /// A terminal: the child starts a new session, opens this slave path (so
    /// it becomes the controlling terminal) and gets it as fds 0, 1 and 2.
    Pty(&'a CStr),
}

/// Which mechanism starts the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    PosixSpawn,
    CloneVfork,
}

/// Everything needed to start one child.
#[derive(Debug)]
pub struct Request<'a> {
    pub exec: &'a ExecSpec,
    pub cwd: Option<&'a CStr>,
    pub stdio: Stdio<'a>,
    pub creds: Option<&'a Creds>,
    /// Force a mechanism (tests run both paths); `None` picks the fastest that fits.
    pub method: Option<Method>,
}

/// The step that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub enum Stage {
    None = 0,
    Spawn,
    Fds,
    Terminal,
    Chdir,
    Groups,
    Gid,
    Uid,
    Exec,
}

/// A spawn failure: the step, the errno, and for exec the candidate path.
#[derive(Debug)]
pub struct SpawnError {
    pub stage: Stage,
    pub errno: c_int,
    pub path: Option<CString>,
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    pub pid: libc::pid_t,
    /// A pidfd for the child when the kernel offers them.
    pub pidfd: Option<OwnedFd>,
}

/// The mechanism `req` will use.
pub fn method_for(req: &Request<'_>) -> Method {
    // posix_spawn cannot change credentials: a request with them always takes
    // the clone path, whatever was forced, or the child would keep our ids.
    if req.creds.is_some() {
        return Method::CloneVfork;
    }
    if let Some(m) = req.method {
        return m;
    }
    let c = caps();
    if c.addclosefrom.is_none() || (req.cwd.is_some() && c.addchdir.is_none()) {
        Method::CloneVfork
    } else {
        Method::PosixSpawn
    }
}

/// Start the child described by `req`.
///
/// # Errors
/// A [`SpawnError`] naming the failed step; nothing is left running (a child
/// that failed before exec has been reaped).
pub fn spawn(req: &Request<'_>) -> Result<Child, SpawnError> {
    match method_for(req) {
        Method::PosixSpawn => posix_spawn_child(req),
        Method::CloneVfork => clone_child(req),
    }
}

fn with_pidfd(pid: libc::pid_t) -> Child {
    let pidfd = if caps().pidfd { pidfd_open(pid).ok() } else { None };
    Child { pid, pidfd }
}

// ---------------------------------------------------------------- posix_spawn

struct FileActions(libc::posix_spawn_file_actions_t);

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `posix_spawn_child` before this value exists.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

struct Attr(libc::posix_spawnattr_t);

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised in `posix_spawn_child` before this value exists.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

fn check(r: c_int) -> Result<(), SpawnError> {
    if r == 0 {
        Ok(())
    } else {
        Err(SpawnError { stage: Stage::Spawn, errno: r, path: None })
    }
}

fn posix_spawn_child(req: &Request<'_>) -> Result<Child, SpawnError> {
    let c = caps();
    let closefrom = c.addclosefrom.expect("method_for checked addclosefrom");
    // SAFETY: zeroed storage is immediately initialised by the *_init calls,
    // and the wrappers destroy it exactly once.
    let mut fa = FileActions(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    check(unsafe { libc::posix_spawn_file_actions_init(&mut fa.0) })?;
    // SAFETY: as above.
    let mut attr = Attr(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    check(unsafe { libc::posix_spawnattr_init(&mut attr.0) })?;

    // SAFETY: (this block) file actions and attributes are initialised; every
    // pointer passed is a NUL-terminated string or sigset that outlives the call.
    unsafe {
        if let Some(cwd) = req.cwd {
            let chdir = c.addchdir.expect("method_for checked addchdir");
            check(chdir(&mut fa.0, cwd.as_ptr()))?;
        }
        match &req.stdio {
            Stdio::Fds(plan) => {
                for a in plan.actions() {
                    check(match a {
                        Action::Dup2 { src, dst } => libc::posix_spawn_file_actions_adddup2(&mut fa.0, src, dst),
                        Action::Close(fd) => libc::posix_spawn_file_actions_addclose(&mut fa.0, fd),
                        Action::CloseFrom(n) => closefrom(&mut fa.0, n),
                    })?;
                }
            }
            Stdio::Pty(path) => {
                check(libc::posix_spawn_file_actions_addopen(&mut fa.0, 0, path.as_ptr(), libc::O_RDWR, 0))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut fa.0, 0, 1))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut fa.0, 0, 2))?;
                check(closefrom(&mut fa.0, 3))?;
            }
        }
        let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        if matches!(req.stdio, Stdio::Pty(_)) {
            flags |= libc::POSIX_SPAWN_SETSID as libc::c_int;
        }
        check(libc::posix_spawnattr_setflags(&mut attr.0, flags as libc::c_short))?;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(libc::posix_spawnattr_setsigmask(&mut attr.0, &empty))?;
        // Every signal back to its default disposition: CPython ignores SIGPIPE
        // and SIGXFSZ, and SIG_IGN would otherwise survive exec.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigdelset(&mut all, libc::SIGKILL);
        libc::sigdelset(&mut all, libc::SIGSTOP);
        check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &all))?;
    }

    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let mut denied: Option<&CString> = None;
    let mut last = (libc::ENOENT, None::<&CString>);
    for cand in &req.exec.candidates {
        let mut pid: libc::pid_t = 0;
        // SAFETY: all pointers are valid for the call; argv/envp are NULL-terminated.
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                cand.as_ptr(),
                &fa.0,
                &attr.0,
                argv.as_ptr() as *const *mut c_char,
                envp.as_ptr() as *const *mut c_char,
            )
        };
        match r {
            0 => return Ok(with_pidfd(pid)),
            libc::ENOENT | libc::ENOTDIR => last = (r, Some(cand)),
            libc::EACCES => denied = Some(cand),
            _ => return Err(SpawnError { stage: Stage::Exec, errno: r, path: Some(cand.clone()) }),
        }
    }
    let (errno, path) = match denied {
        Some(p) => (libc::EACCES, Some(p)),
        None => last,
    };
    Err(SpawnError { stage: Stage::Exec, errno, path: path.cloned() })
}

// ------------------------------------------------------------- clone (vfork)

/// What the vfork-style child reads (and, on failure, writes back).
///
/// The child shares the parent's memory (`CLONE_VM`) while the parent is
/// suspended (`CLONE_VFORK`) until the child execs or exits, so the parent
/// reads `err_*` only after `clone` has returned.
#[repr(C)]
struct ChildCtx {
    candidates: *const *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    actions: *const Action,
    n_actions: usize,
    pty_path: *const c_char,
    cwd: *const c_char,
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
            return Err(SpawnError { stage: Stage::Spawn, errno: errno(), path: None });
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

/// Spare stacks, so a spawn with credentials does not map, protect and unmap
/// a fresh one each time (a few idle ones at most).
static SPARE_STACKS: std::sync::Mutex<Vec<Stack>> = std::sync::Mutex::new(Vec::new());
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

/// Close every fd from `n` up: `close_range` where the kernel has it (5.9),
/// otherwise one `close` per possible fd.
///
/// # Safety
/// Async-signal-safe; only closes fd numbers.
unsafe fn close_from(n: c_int, max_fd: c_int) {
    // SAFETY: integer-only syscall.
    if unsafe { libc::syscall(libc::SYS_close_range, n as libc::c_uint, libc::c_uint::MAX, 0) } == 0 {
        return;
    }
    let mut fd = n;
    while fd < max_fd {
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
///   other threads through signals (the "setxid" machinery);
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
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        let mut sig = 1;
        while sig < 65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &sa, ptr::null_mut());
            }
            sig += 1;
        }

        if !ctx.pty_path.is_null() {
            if libc::setsid() < 0 {
                fail!(Stage::Terminal);
            }
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
            close_from(3, ctx.max_fd);
        } else {
            let mut i = 0;
            while i < ctx.n_actions {
                match *ctx.actions.add(i) {
                    Action::Dup2 { src, dst } => {
                        if libc::dup2(src, dst) < 0 {
                            fail!(Stage::Fds);
                        }
                    }
                    Action::Close(fd) => {
                        libc::close(fd);
                    }
                    Action::CloseFrom(n) => close_from(n, ctx.max_fd),
                }
                i += 1;
            }
        }

        if !ctx.cwd.is_null() && libc::chdir(ctx.cwd) < 0 {
            fail!(Stage::Chdir);
        }

        if ctx.set_ids {
            if libc::syscall(libc::SYS_setgroups, ctx.n_groups, ctx.groups) < 0 {
                fail!(Stage::Groups);
            }
            if libc::syscall(libc::SYS_setresgid, ctx.gid, ctx.gid, ctx.gid) < 0 {
                fail!(Stage::Gid);
            }
            if ctx.uid >= 0 {
                let uid = ctx.uid as libc::uid_t;
                if libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0 {
                    fail!(Stage::Uid);
                }
            }
        }

        // An empty signal mask for the new program (8 bytes: the kernel's sigset size).
        let empty: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &empty as *const u64, ptr::null_mut::<u64>(), 8);

        let mut i = 0;
        let mut denied = false;
        while !(*ctx.candidates.add(i)).is_null() {
            libc::execve(*ctx.candidates.add(i), ctx.argv, ctx.envp);
            let e = *libc::__errno_location();
            if e == libc::EACCES {
                denied = true;
                ctx.err_candidate = i;
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

fn clone_child(req: &Request<'_>) -> Result<Child, SpawnError> {
    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let cands = ptr_array(&req.exec.candidates);
    let (actions, pty_path) = match &req.stdio {
        Stdio::Fds(plan) => (plan.actions(), ptr::null()),
        Stdio::Pty(path) => (Vec::new(), path.as_ptr()),
    };
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    let empty_groups: [libc::gid_t; 0] = [];
    let (set_ids, gid, uid, groups): (bool, libc::gid_t, i64, &[libc::gid_t]) = match req.creds {
        Some(c) => (true, c.gid, c.uid.map_or(-1, i64::from), &c.groups),
        None => (false, 0, -1, &empty_groups),
    };
    let mut ctx = ChildCtx {
        candidates: cands.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        actions: actions.as_ptr(),
        n_actions: actions.len(),
        pty_path,
        cwd: req.cwd.map_or(ptr::null(), |c| c.as_ptr()),
        groups: groups.as_ptr(),
        n_groups: groups.len(),
        set_ids,
        gid,
        uid,
        max_fd: rl.rlim_cur.min(1 << 20) as c_int,
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
    // SAFETY: the child runs `child_main` on its own stack with `ctx`, which
    // lives until clone returns (the parent is suspended until exec or exit).
    let pid = unsafe {
        libc::clone(child_main, stack.top(), flags, (&mut ctx as *mut ChildCtx).cast(), &mut pidfd as *mut c_int)
    };
    let clone_errno = errno();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    stack.give_back();
    if pid < 0 {
        return Err(SpawnError { stage: Stage::Spawn, errno: clone_errno, path: None });
    }
    // SAFETY: the child wrote these (if at all) before exec/_exit, which
    // happened-before clone returned here.
    let (stage, err, cand) = unsafe {
        (ptr::read_volatile(&ctx.err_stage), ptr::read_volatile(&ctx.err_errno), ptr::read_volatile(&ctx.err_candidate))
    };
    // SAFETY: CLONE_PIDFD stored a new fd here, owned by us alone.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    if stage != Stage::None {
        let mut st = 0;
        // SAFETY: reaping our own child, which has already called _exit.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        let path = (stage == Stage::Exec).then(|| req.exec.candidates.get(cand).cloned()).flatten();
        return Err(SpawnError { stage, errno: err, path });
    }
    Ok(match pidfd {
        Some(fd) => Child { pid, pidfd: Some(fd) },
        None => with_pidfd(pid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reap::{try_wait_pidfd, Exit};
    use crate::core::sys::pipe_cloexec;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn run(method: Method, exe: &[u8], args: &[&[u8]], env: &[&[u8]], cwd: Option<&CStr>) -> (Exit, Vec<u8>) {
        let argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        let envp: Vec<Vec<u8>> = env.iter().map(|a| a.to_vec()).collect();
        let spec = ExecSpec::new(exe, &argv, &envp, Some(b"/usr/bin:/bin"), None).unwrap();
        let (r, w) = pipe_cloexec().unwrap();
        let plan = PreparedFds::new(&[(1, w.as_raw_fd()), (2, w.as_raw_fd())]).unwrap();
        let req = Request { exec: &spec, cwd, stdio: Stdio::Fds(&plan), creds: None, method: Some(method) };
        let child = spawn(&req).unwrap();
        drop(plan);
        drop(w);
        let mut out = Vec::new();
        std::fs::File::from(r).read_to_end(&mut out).unwrap();
        let pidfd = child.pidfd.expect("pidfd on this kernel");
        let exit = loop {
            if let Some(e) = try_wait_pidfd(pidfd.as_raw_fd()).unwrap() {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        (exit, out)
    }

    #[test]
    fn both_methods_run_a_program_with_args_env_and_cwd() {
        for m in [Method::PosixSpawn, Method::CloneVfork] {
            let (exit, out) = run(
                m,
                b"sh",
                &[b"sh", b"-c", b"echo \"$0 $FOO\" $(pwd); exit 3", b"zero"],
                &[b"FOO=bar"],
                Some(c"/tmp"),
            );
            assert_eq!(exit, Exit::Status(3 << 8), "{m:?}");
            assert_eq!(out, b"zero bar /tmp\n", "{m:?}");
        }
    }

    #[test]
    fn only_mapped_fds_and_default_signals_reach_the_child() {
        for m in [Method::PosixSpawn, Method::CloneVfork] {
            let (_, out) = run(
                m,
                b"/bin/sh",
                &[b"sh", b"-c", b"ls /proc/self/fd | tr '\\n' ' '; grep -E 'SigIgn|SigBlk' /proc/self/status"],
                &[b"PATH=/usr/bin:/bin"],
                None,
            );
            let text = String::from_utf8(out).unwrap();
            // fd 0 is closed in the child, so ls's own directory fd takes it.
            assert!(text.starts_with("0 1 2 SigBlk"), "{m:?}: {text}");
            // Signals 1-31 at default; glibc's posix_spawn leaves its two internal
            // signals (32, 33) ignored, which the new program's libc resets.
            let ign = text.split("SigIgn:\t").nth(1).unwrap().trim();
            let ign = u64::from_str_radix(ign, 16).unwrap();
            assert_eq!(ign & 0x7fff_ffff, 0, "{m:?}: {text}");
            assert!(text.contains("SigBlk:\t0000000000000000"), "{m:?}: {text}");
        }
    }

    #[test]
    fn exec_failures_are_reported_with_errno_and_path() {
        for m in [Method::PosixSpawn, Method::CloneVfork] {
            let spec = ExecSpec::new(b"/no/such/prog", &[b"x".to_vec()], &[], None, None).unwrap();
            let plan = PreparedFds::new(&[]).unwrap();
            let req = Request { exec: &spec, cwd: None, stdio: Stdio::Fds(&plan), creds: None, method: Some(m) };
            let e = spawn(&req).unwrap_err();
            assert_eq!((e.stage, e.errno), (Stage::Exec, libc::ENOENT), "{m:?}");
            assert_eq!(e.path.as_deref(), Some(c"/no/such/prog"));
            let spec = ExecSpec::new(b"/etc/passwd", &[b"x".to_vec()], &[], None, None).unwrap();
            let req = Request { exec: &spec, cwd: None, stdio: Stdio::Fds(&plan), creds: None, method: Some(m) };
            assert_eq!(spawn(&req).unwrap_err().errno, libc::EACCES, "{m:?}");
        }
    }

    #[test]
    fn credentials_always_take_the_clone_path() {
        let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
        let plan = PreparedFds::new(&[]).unwrap();
        let creds = Creds { uid: Some(65534), gid: 65534, groups: vec![65534] };
        for forced in [None, Some(Method::PosixSpawn), Some(Method::CloneVfork)] {
            let req = Request { exec: &spec, cwd: None, stdio: Stdio::Fds(&plan), creds: Some(&creds), method: forced };
            assert_eq!(method_for(&req), Method::CloneVfork, "{forced:?}");
        }
    }

    #[test]
    fn clone_path_reports_chdir_failure() {
        let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
        let plan = PreparedFds::new(&[]).unwrap();
        let req = Request {
            exec: &spec,
            cwd: Some(c"/no/such/dir"),
            stdio: Stdio::Fds(&plan),
            creds: None,
            method: Some(Method::CloneVfork),
        };
        let e = spawn(&req).unwrap_err();
        assert_eq!((e.stage, e.errno), (Stage::Chdir, libc::ENOENT));
    }
}
