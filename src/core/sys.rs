//! Small system helpers: run-time capabilities (resolved with `dlsym`, so a
//! manylinux wheel still loads on an older glibc) and raw syscalls that libc
//! wrappers would tie to a newer glibc.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

pub type AddChdirFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const c_char) -> c_int;
pub type AddClosefromFn = unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, c_int) -> c_int;

/// What this machine's libc and kernel offer, probed once per process.
pub struct Caps {
    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29).
    pub addchdir: Option<AddChdirFn>,
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34).
    pub addclosefrom: Option<AddClosefromFn>,
    /// `pidfd_open` works (Linux 5.3, not refused by a seccomp filter).
    pub pidfd: bool,
}

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The capabilities, probed on first use.
pub fn caps() -> &'static Caps {
    static CAPS: OnceLock<Caps> = OnceLock::new();
    CAPS.get_or_init(|| {
        let chdir = lookup(c"posix_spawn_file_actions_addchdir_np");
        let closefrom = lookup(c"posix_spawn_file_actions_addclosefrom_np");
        // Only a missing or refused syscall means "no pidfds"; running out of
        // fds (EMFILE/ENFILE) or memory at the first spawn must not disable
        // them for the life of the process.
        let pidfd = match pidfd_open(std::process::id() as libc::pid_t) {
            Ok(_fd) => true,
            Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EACCES | libc::EINVAL)),
        };
        Caps {
            // SAFETY: the symbols, when present, have exactly these C signatures.
            addchdir: (!chdir.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, AddChdirFn>(chdir) }),
            // SAFETY: as above.
            addclosefrom: (!closefrom.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut c_void, AddClosefromFn>(closefrom) }),
            pidfd,
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

/// A pipe whose both ends are close-on-exec and blocking: `(read end, write end)`.
/// The caller makes its own end non-blocking; the child's end must stay blocking.
///
/// # Errors
/// EMFILE/ENFILE when out of descriptors.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Set or clear O_NONBLOCK on `fd`.
///
/// # Errors
/// EBADF for a closed fd.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; failure is reported through errno.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) })?;
    }
    Ok(())
}

/// Make a fresh pipe end non-blocking in one syscall: its status flags are
/// known to be empty, so no `F_GETFL` is needed (access mode bits are ignored
/// by `F_SETFL`).
///
/// # Errors
/// EBADF for a closed fd.
pub fn set_nonblocking_fresh(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; failure is reported through errno.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) })?;
    Ok(())
}

/// Whether `fd` is open in this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Whether SIGPIPE is ignored in this process right now (CPython ignores it at
/// start-up; a program may restore the default).
pub fn sigpipe_ignored() -> bool {
    // SAFETY: sigaction with a NULL new action only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Run a write-like call so that writing to a pipe whose reader is gone gives
/// EPIPE and never a SIGPIPE that would kill a host which restored SIGPIPE's
/// default: when `ignored` is false, SIGPIPE is blocked in this thread around
/// the call and a SIGPIPE the call raised is consumed before unblocking.
pub fn without_sigpipe(ignored: bool, f: impl FnOnce() -> isize) -> isize {
    if ignored {
        return f();
    }
    // SAFETY: signal-set manipulation on stack values and thread-directed
    // signal calls; the original mask is restored before returning.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let r = f();
        let err = errno();
        if r < 0 && err == libc::EPIPE && !was_pending {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        *libc::__errno_location() = err;
        r
    }
}
