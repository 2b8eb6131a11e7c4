//! Small system helpers: run-time capabilities (resolved with `dlsym`, so a
//! manylinux wheel still loads on an older glibc), raw syscalls that libc
//! wrappers would tie to a newer glibc, and fd and signal helpers. nix's safe
//! wrappers are used where they fit; every remaining `unsafe` says why it is
//! sound.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

pub type AddChdirFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const c_char) -> c_int;
pub type AddClosefromFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, c_int) -> c_int;

/// What this machine's libc and kernel offer, probed once per process.
pub struct Caps {
    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29).
    pub addchdir: Option<AddChdirFn>,
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34).
    pub addclosefrom: Option<AddClosefromFn>,
    /// Reaping through pidfds works: `pidfd_open` (Linux 5.3) *and*
    /// `waitid(P_PIDFD)` (5.4), not refused by a seccomp filter. Setting
    /// `FERROPROC_NO_PIDFD=1` in the environment turns them off (to test the
    /// fallback).
    pub pidfd: bool,
    /// `close_range(..., CLOSE_RANGE_UNSHARE)` (Linux 5.9): a child that
    /// shares our fd table can get a private one without copying it all.
    /// Setting `FERROPROC_NO_CLONE_FILES=1` turns it off (to test the
    /// classic clone path).
    pub close_range_unshare: bool,
}

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Whether pidfds can be used to reap: open one for ourselves, then ask
/// `waitid(P_PIDFD)` about it. A kernel that knows `P_PIDFD` says ECHILD (we
/// are not our own child); Linux 5.3 says EINVAL.
fn probe_pidfd() -> bool {
    if env_flag("FERROPROC_NO_PIDFD") {
        return false;
    }
    let fd = match pidfd_open(std::process::id() as libc::pid_t) {
        Ok(fd) => fd,
        // Only a missing or refused syscall means "no pidfds"; running out of
        // fds (EMFILE/ENFILE) or memory at the first spawn must not disable
        // them for the life of the process.
        Err(e) => return !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL)),
    };
    // SAFETY: siginfo_t is plain data; waitid only writes it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own pidfd, writing into `info`.
    let r = unsafe { libc::waitid(libc::P_PIDFD, fd_raw(&fd) as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG) };
    r == 0 || errno() != libc::EINVAL
}

/// Whether `CLOSE_RANGE_UNSHARE` can be used: `close_range` (Linux 5.9),
/// then the flag itself, which a seccomp policy may refuse alone (every
/// spawn sharing our fd table would then fail). The flag gives the calling
/// thread an fd table of its own, so it is tried on a thread made for it,
/// over every fd: the kernel then copies none, and the empty table goes
/// with the thread. (Signals are blocked there, so no handler runs where
/// our fds are not.)
fn probe_close_range_unshare() -> bool {
    if env_flag("FERROPROC_NO_CLONE_FILES") {
        return false;
    }
    // SAFETY: integer-only syscall; the range holds no open fd.
    let r = unsafe { libc::syscall(libc::SYS_close_range, c_int::MAX as libc::c_uint, c_int::MAX as libc::c_uint, 0) };
    if r != 0 {
        return false;
    }
    let probe = spawn_thread_without_signals("ferroproc-probe", || {
        let unshare = libc::CLOSE_RANGE_UNSHARE as libc::c_uint;
        // SAFETY: integer-only syscall on this thread's own (new, empty) table.
        unsafe { libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, libc::c_uint::MAX, unshare) == 0 }
    });
    // No thread to try it on (out of threads for a moment): what close_range
    // alone says, rather than no fast path for the life of the process.
    probe.map_or(true, |t| t.join().unwrap_or(false))
}

/// A thread running `f` with every signal blocked (glibc's internal ones
/// aside, which its `set*id` machinery needs answered), so that no signal
/// handler of the process ever runs on it.
///
/// # Errors
/// The thread cannot be created.
pub fn spawn_thread_without_signals<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<T>> {
    let mut old = SigSet::empty();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old));
    // The new thread starts with this thread's mask.
    let t = std::thread::Builder::new().name(name.into()).spawn(f);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    t
}

/// Whether an environment variable is set to something other than "" or "0".
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

fn fd_raw(fd: &impl std::os::fd::AsRawFd) -> RawFd {
    fd.as_raw_fd()
}

/// The capabilities, probed on first use.
pub fn caps() -> &'static Caps {
    static CAPS: OnceLock<Caps> = OnceLock::new();
    CAPS.get_or_init(|| {
        let chdir = lookup(c"posix_spawn_file_actions_addchdir_np");
        let closefrom = lookup(c"posix_spawn_file_actions_addclosefrom_np");
        Caps {
            // SAFETY: the symbols, when present, have exactly these C signatures.
            addchdir: (!chdir.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, AddChdirFn>(chdir) }),
            // SAFETY: as above.
            addclosefrom: (!closefrom.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut c_void, AddClosefromFn>(closefrom) }),
            pidfd: probe_pidfd(),
            close_range_unshare: probe_close_range_unshare(),
        }
    })
}

/// The calling thread's errno.
pub fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Turn a `-1`-on-error libc result into an `io::Result`.
pub fn cvt(ret: c_int) -> io::Result<c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `pidfd_open(pid, 0)` through the raw syscall.
///
/// # Errors
/// ESRCH when no such process exists; ENOSYS/EPERM where pidfds are unavailable.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd (close-on-exec by default) and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
///
/// # Errors
/// ESRCH once the process has been reaped; EINVAL for a bad signal.
pub fn pidfd_send_signal(pidfd: RawFd, sig: c_int) -> io::Result<()> {
    // SAFETY: integer arguments and a NULL siginfo pointer, as the syscall allows.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, std::ptr::null::<c_void>(), 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `kill(pid, sig)` for any signal number (nix's `Signal` has no real-time signals).
///
/// # Errors
/// ESRCH when there is no such process; EINVAL for a bad signal.
pub fn kill(pid: libc::pid_t, sig: c_int) -> io::Result<()> {
    // SAFETY: integer-only call.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// A pipe whose both ends are close-on-exec and blocking: `(read end, write end)`.
/// The caller makes its own end non-blocking; the child's end must stay blocking.
///
/// # Errors
/// EMFILE/ENFILE when out of descriptors.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(nix_err)
}

/// `fd` borrowed for one call: EBADF for a negative number, which
/// `BorrowedFd` must never hold (-1 is its niche).
fn borrow(fd: RawFd) -> io::Result<BorrowedFd<'static>> {
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: not -1 (checked); the callers use it only for calls that give
    // EBADF if the number is not open, and drop it before they return.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Set or clear O_NONBLOCK on `fd`.
///
/// # Errors
/// EBADF for a closed or negative fd.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    let fd = borrow(fd)?;
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL).map_err(nix_err)?);
    let new = if on { flags | OFlag::O_NONBLOCK } else { flags & !OFlag::O_NONBLOCK };
    if new != flags {
        fcntl(fd, FcntlArg::F_SETFL(new)).map_err(nix_err)?;
    }
    Ok(())
}

/// Make a fresh pipe end non-blocking in one syscall: its status flags are
/// known to be empty, so no `F_GETFL` is needed.
///
/// # Errors
/// EBADF for a closed fd.
pub fn set_nonblocking_fresh(fd: impl AsFd) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map(drop).map_err(nix_err)
}

/// Grow a pipe's buffer (`F_SETPIPE_SZ`).
///
/// # Errors
/// EPERM past the user's pipe quota (harmless: the pipe keeps its size);
/// EBADF for a closed or negative fd.
pub fn set_pipe_size(fd: RawFd, size: c_int) -> io::Result<()> {
    let fd = borrow(fd)?;
    fcntl(fd, FcntlArg::F_SETPIPE_SZ(size)).map(drop).map_err(nix_err)
}

/// What an open fd refers to: its device and inode (two fds with the same
/// id are the same file, socket or pipe).
pub type FileId = (u64, u64);

/// The [`FileId`] of `fd`.
///
/// # Errors
/// EBADF when `fd` is not open.
pub fn file_id(fd: RawFd) -> io::Result<FileId> {
    // SAFETY: stat is plain data; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd number writes into `st`; a closed fd gives EBADF.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok((st.st_dev as u64, st.st_ino as u64))
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries; a closed fd gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `read(2)`, retried on EINTR.
///
/// # Errors
/// EAGAIN on an empty non-blocking fd, EIO on a hung-up terminal master, ...
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: read writes at most buf.len() bytes into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// [`read`] into uninitialised storage; only the returned prefix is initialised.
///
/// # Errors
/// As [`read`].
pub fn read_uninit<const N: usize>(fd: RawFd, buf: &mut MaybeUninit<[u8; N]>) -> io::Result<usize> {
    loop {
        // SAFETY: read writes at most N bytes into the storage.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), N) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// How many bytes a pipe or terminal holds right now (`FIONREAD`); 0 if unknown.
pub fn bytes_available(fd: RawFd) -> usize {
    let mut avail: c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail) };
    if r < 0 {
        0
    } else {
        avail.max(0) as usize
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), capped at 2^20.
pub fn open_file_limit() -> c_int {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    soft.min(1 << 20) as c_int
}

/// Whether SIGPIPE is ignored in this process right now (CPython ignores it at
/// start-up; a program may restore the default at any time).
pub fn sigpipe_ignored() -> bool {
    // SAFETY: sigaction with a NULL new action only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Whether a SIGPIPE is pending for this thread (or the process).
fn sigpipe_pending() -> bool {
    // SAFETY: sigset_t is plain data; sigpending fills it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

thread_local! {
    /// A write under this thread's [`SigpipeShield`] failed with EPIPE (see
    /// [`SigpipeShield::note_write_error`]).
    static EPIPE_WRITTEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While this lives, writes from this thread to a pipe whose reader has gone
/// fail with EPIPE and never raise a SIGPIPE that could kill a host which
/// restored SIGPIPE's default. One syscall when SIGPIPE is ignored (the usual
/// case, looked at each time: a cached answer could be stale); otherwise
/// SIGPIPE is blocked in this thread, and the SIGPIPE our writes raised is
/// consumed before the old mask comes back, and nothing else: a SIGPIPE
/// someone sent the process meanwhile (`kill`) is delivered as it would
/// have been.
///
/// A write under the shield that fails tells it with
/// [`SigpipeShield::note_write_error`]; only after an EPIPE is a SIGPIPE
/// consumed.
pub struct SigpipeShield {
    /// The mask to restore, when we blocked SIGPIPE; and the EPIPE flag of
    /// an enclosing shield, put back when this one goes.
    blocked: Option<(SigSet, bool)>,
}

impl SigpipeShield {
    /// Raise the shield for the calling thread.
    pub fn raise() -> Self {
        if sigpipe_ignored() {
            return SigpipeShield { blocked: None };
        }
        let mut pipe = SigSet::empty();
        pipe.add(Signal::SIGPIPE);
        let mut old = SigSet::empty();
        if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old)).is_err() {
            return SigpipeShield { blocked: None };
        }
        SigpipeShield { blocked: Some((old, EPIPE_WRITTEN.replace(false))) }
    }

    /// A write from this thread failed with `e`. After EPIPE the kernel has
    /// raised a SIGPIPE for it (on this thread), which the shield consumes.
    pub fn note_write_error(e: &io::Error) {
        if e.raw_os_error() == Some(libc::EPIPE) {
            EPIPE_WRITTEN.set(true);
        }
    }
}

/// Take the SIGPIPE an EPIPE write of this thread raised. The kernel puts
/// it on the writing thread's own pending set, which `sigtimedwait` serves
/// before the process's, so a `kill` waiting there stays pending. If what
/// comes out was sent by someone (a `tgkill` merged with ours: standard
/// signals do not queue), it is raised again, so it is not lost. (Where
/// the kernel reports a `tgkill` as `SI_USER`, a SIGPIPE this process sent
/// to this very thread during the write cannot be told from ours.)
fn consume_written_sigpipe() {
    if !sigpipe_pending() {
        return;
    }
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: siginfo_t is plain data that sigtimedwait fills.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the set, info and timeout are valid for the call.
    if unsafe { libc::sigtimedwait(pipe.as_ref(), &mut info, &zero) } != libc::SIGPIPE {
        return;
    }
    // SAFETY: getpid only reads; si_pid is valid for SI_USER (the kernel's
    // own write SIGPIPE is SI_USER from the writer, or 0 when no siginfo
    // could be queued).
    let (me, sender) = unsafe { (libc::getpid(), info.si_pid()) };
    if info.si_code == libc::SI_USER && (sender == me || sender == 0) {
        return;
    }
    // SAFETY: signals this process (or thread) with SIGPIPE, still blocked
    // here: it is delivered when the shield puts the old mask back.
    unsafe {
        if info.si_code == libc::SI_TKILL {
            libc::syscall(libc::SYS_tgkill, me, libc::syscall(libc::SYS_gettid), libc::SIGPIPE);
        } else {
            libc::kill(me, libc::SIGPIPE);
        }
    }
}

impl Drop for SigpipeShield {
    fn drop(&mut self) {
        let Some((old, outer)) = self.blocked.take() else { return };
        if EPIPE_WRITTEN.replace(outer) {
            consume_written_sigpipe();
        }
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfds_are_probed_with_waitid() {
        // This kernel (5.4+) has both; the probe must say so unless turned off.
        if std::env::var_os("FERROPROC_NO_PIDFD").is_none() {
            assert!(caps().pidfd);
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_unshare_probe_tries_the_flag_itself() {
        assert!(probe_close_range_unshare() || env_flag("FERROPROC_NO_CLONE_FILES"));
        // In a child process under a seccomp filter that refuses
        // close_range with CLOSE_RANGE_UNSHARE, and only that.
        // SAFETY: fork in a test; the child makes syscalls, creates one
        // thread (the probe's) and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
            const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
            let stmt = |code: u16, k: u32| libc::sock_filter { code, jt: 0, jf: 0, k };
            let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
            let (ld, jeq, jset, ret) = (0x20, 0x15, 0x45, 0x06); // BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
            let prog = [
                stmt(ld, 0), // seccomp_data.nr
                jump(jeq, libc::SYS_close_range as u32, 0, 2),
                stmt(ld, 32), // args[2], low word
                jump(jset, libc::CLOSE_RANGE_UNSHARE, 1, 0),
                stmt(ret, SECCOMP_RET_ALLOW),
                stmt(ret, SECCOMP_RET_ERRNO | libc::EPERM as u32),
            ];
            let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
            // SAFETY: installing a filter on this (forked, single-threaded) process.
            let ok = unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                    && libc::syscall(libc::SYS_seccomp, 1, 0, &fprog as *const libc::sock_fprog) == 0
            };
            let code = if !ok {
                2
            } else if probe_close_range_unshare() {
                1
            } else {
                0
            };
            // SAFETY: leaving the forked test child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0, "exit status {} (1: the probe missed the filter)", status >> 8);
    }

    #[test]
    fn negative_fds_are_refused_not_borrowed() {
        assert_eq!(set_nonblocking(-1, true).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(set_pipe_size(-1, 65536).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn sigpipe_shield_turns_a_default_sigpipe_into_epipe() {
        // In a child process, so the test runner's dispositions are untouched.
        // SAFETY: fork in a test; the child only makes syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: child side: plain syscalls, then _exit.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                let (r, w) = pipe_cloexec().unwrap();
                drop(r);
                let shield = SigpipeShield::raise();
                let n = libc::write(fd_raw(&w), b"x".as_ptr().cast(), 1);
                let e = errno();
                SigpipeShield::note_write_error(&io::Error::from_raw_os_error(e));
                drop(shield);
                libc::_exit(if n < 0 && e == libc::EPIPE { 0 } else { 1 });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0, "raw wait status {status} (13 = killed by SIGPIPE)");
    }

    static SIGPIPES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    extern "C" fn count_sigpipe(_: c_int) {
        SIGPIPES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// One scenario in a forked child (so the runner's dispositions and mask
    /// are untouched): under a shield, `send` signals the process or thread,
    /// then a write to a pipe whose reader is gone (`epipe`) or to one still
    /// read. Returns how many SIGPIPEs the process got.
    fn sigpipes_delivered(send: fn(), epipe: bool) -> i32 {
        // SAFETY: fork in a test; the child makes syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: child side: a handler that only counts, plain syscalls, _exit.
            unsafe {
                libc::signal(libc::SIGPIPE, count_sigpipe as extern "C" fn(c_int) as libc::sighandler_t);
                let (r, w) = pipe_cloexec().unwrap();
                let r = if epipe {
                    drop(r);
                    None
                } else {
                    Some(r)
                };
                let shield = SigpipeShield::raise();
                send();
                if libc::write(fd_raw(&w), b"x".as_ptr().cast(), 1) < 0 {
                    SigpipeShield::note_write_error(&io::Error::last_os_error());
                }
                drop(shield);
                drop(r);
                libc::_exit(SIGPIPES.load(std::sync::atomic::Ordering::SeqCst) as c_int);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "raw wait status {status} (13 = killed by SIGPIPE)");
        libc::WEXITSTATUS(status)
    }

    fn kill_process() {
        // SAFETY: signals this (forked, test) process.
        unsafe { libc::kill(libc::getpid(), libc::SIGPIPE) };
    }

    fn kill_thread() {
        // SAFETY: signals this thread of this (forked, test) process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::syscall(libc::SYS_gettid), libc::SIGPIPE) };
    }

    fn send_nothing() {}

    #[test]
    fn sigpipe_shield_consumes_only_the_sigpipe_its_write_raised() {
        // Its own write's SIGPIPE is taken; nothing else happened.
        assert_eq!(sigpipes_delivered(send_nothing, true), 0);
        // A kill(SIGPIPE) while a write went through: not ours, delivered.
        assert_eq!(sigpipes_delivered(kill_process, false), 1);
        assert_eq!(sigpipes_delivered(kill_thread, false), 1);
        // A kill beside our own EPIPE: ours is taken, the kill delivered
        // (also when the two merged into one pending thread signal).
        assert_eq!(sigpipes_delivered(kill_process, true), 1);
        if tgkill_is_told_apart() {
            assert_eq!(sigpipes_delivered(kill_thread, true), 1);
        }
    }

    /// Whether this kernel marks a `tgkill` as such (`SI_TKILL`); some
    /// report it as `SI_USER` from this process, as its own write SIGPIPE is.
    fn tgkill_is_told_apart() -> bool {
        // SAFETY: fork in a test; the child makes syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: child side: plain syscalls, then _exit.
            unsafe {
                let mut set = SigSet::empty();
                set.add(Signal::SIGPIPE);
                let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
                kill_thread();
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                libc::sigtimedwait(set.as_ref(), &mut info, &zero);
                libc::_exit(c_int::from(info.si_code == libc::SI_TKILL));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1
    }
}
