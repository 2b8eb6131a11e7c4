//! Exit status through a pidfd: `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`.
//! No SIGCHLD handler and no `waitpid(-1)`, so other code's children are never
//! touched. Without pidfds, [`wait_blocking`] is the one fallback (a waiter
//! thread per child, blocking on that child alone).

use std::io;
use std::os::fd::RawFd;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A raw wait status, as `waitpid` would give (`256` for exit 1, `9` for SIGKILL).
    Status(i32),
    /// Someone else reaped the child (ECHILD), so its status is lost.
    Unknown,
}

fn raw_status(code: i32, status: i32) -> i32 {
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status,
    }
}

fn wait_id(idtype: libc::idtype_t, id: libc::id_t, options: i32) -> io::Result<Option<Exit>> {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waitid writes into `info`.
        let r = unsafe { libc::waitid(idtype, id, &mut info, options) };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(Some(Exit::Unknown)),
            _ => return Err(e),
        }
    }
    // SAFETY: after a successful waitid the pid/status union members are valid.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(Exit::Status(raw_status(info.si_code, status))))
}

/// Reap the child behind `pidfd` if it has exited; `None` if it still runs.
///
/// # Errors
/// Unexpected waitid errors (EBADF, EINVAL).
pub fn try_wait_pidfd(pidfd: RawFd) -> io::Result<Option<Exit>> {
    wait_id(libc::P_PIDFD, pidfd as libc::id_t, libc::WEXITED | libc::WNOHANG)
}

/// Block until `pid` exits and reap it (the no-pidfd fallback, run on a waiter thread).
///
/// # Errors
/// Unexpected waitid errors.
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<Exit> {
    Ok(wait_id(libc::P_PID, pid as libc::id_t, libc::WEXITED)?.unwrap_or(Exit::Unknown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_status_matches_waitpid_encoding() {
        assert_eq!(raw_status(libc::CLD_EXITED, 1), 256);
        assert_eq!(raw_status(libc::CLD_EXITED, 0), 0);
        assert_eq!(raw_status(libc::CLD_KILLED, 9), 9);
        assert_eq!(raw_status(libc::CLD_DUMPED, 11), 11 | 0x80);
    }
}
