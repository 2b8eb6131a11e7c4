//! Exit status (and what the child cost) through a pidfd:
//! `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`. No SIGCHLD handler and no
//! `waitpid(-1)`, so other code's children are never touched. Where pidfds
//! are unavailable, a waiter thread per child waits for that child alone
//! *without reaping it* ([`wait_exited_nowait`]); the loop then reaps it
//! ([`try_wait_pid`]) under the child's lock, so its pid is never signalled
//! after it could have been reused.
//!
//! The raw `waitid` syscall is used (not glibc's wrapper) because only the
//! syscall hands over the child's resource usage.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// What the kernel reports a child used, at reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU time in user mode.
    pub user: Duration,
    /// CPU time in the kernel.
    pub system: Duration,
    /// Peak resident set size, in KiB.
    pub max_rss_kib: u64,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The raw wait status, as `waitpid` would give (`256` for exit 1, `9`
    /// for SIGKILL); `None` when someone else reaped the child (ECHILD), so
    /// its status is lost.
    pub status: Option<i32>,
    /// What it used (`None` when the status is lost).
    pub usage: Option<Usage>,
}

impl Exit {
    /// An exit whose status someone else took.
    pub const UNKNOWN: Exit = Exit { status: None, usage: None };

    /// An exit with this raw status and no usage figures.
    pub fn status(status: i32) -> Exit {
        Exit { status: Some(status), usage: None }
    }
}

fn raw_status(code: i32, status: i32) -> i32 {
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status,
    }
}

fn duration(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// `waitid(idtype, id, options)` with the child's rusage. `None`: nothing
/// to report yet (WNOHANG).
fn wait_id(idtype: libc::idtype_t, id: libc::id_t, options: i32) -> io::Result<Option<Exit>> {
    // SAFETY: siginfo_t and rusage are plain data the syscall fills.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: the raw waitid syscall writes into `info` and `ru`.
        let r = unsafe {
            libc::syscall(libc::SYS_waitid, idtype, id, &mut info as *mut libc::siginfo_t, options, &mut ru as *mut _)
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(Some(Exit::UNKNOWN)),
            _ => return Err(e),
        }
    }
    // SAFETY: after a successful waitid the pid/status union members are valid.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    // With WNOWAIT too: the kernel reports a zombie's usage as it will at its reap.
    let usage =
        Usage { user: duration(ru.ru_utime), system: duration(ru.ru_stime), max_rss_kib: ru.ru_maxrss.max(0) as u64 };
    Ok(Some(Exit { status: Some(raw_status(info.si_code, status)), usage: Some(usage) }))
}

/// Reap the child behind `pidfd` if it has exited; `None` if it still runs.
///
/// # Errors
/// Unexpected waitid errors (EBADF, EINVAL).
pub fn try_wait_pidfd(pidfd: RawFd) -> io::Result<Option<Exit>> {
    wait_id(libc::P_PIDFD, pidfd as libc::id_t, libc::WEXITED | libc::WNOHANG)
}

/// How the child behind `pidfd` ended, if it has, without reaping it: it
/// stays a zombie, so its pid (and the id of a group it leads) cannot be
/// reused until it is reaped.
///
/// # Errors
/// Unexpected waitid errors.
pub fn peek_pidfd(pidfd: RawFd) -> io::Result<Option<Exit>> {
    wait_id(libc::P_PIDFD, pidfd as libc::id_t, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
}

/// [`peek_pidfd`] for an unreaped child known by its pid (no pidfds).
///
/// # Errors
/// Unexpected waitid errors; ECHILD (someone else reaped it) is `Exit::UNKNOWN`.
pub fn peek_pid(pid: libc::pid_t) -> io::Result<Option<Exit>> {
    wait_id(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
}

/// Reap child `pid` if it has exited; `None` if it still runs.
///
/// # Errors
/// Unexpected waitid errors.
pub fn try_wait_pid(pid: libc::pid_t) -> io::Result<Option<Exit>> {
    wait_id(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOHANG)
}

/// Block until child `pid` has exited, leaving it unreaped (its pid stays
/// ours until [`try_wait_pid`] reaps it). For the no-pidfd waiter threads.
///
/// # Errors
/// Unexpected waitid errors; ECHILD becomes `Exit::UNKNOWN`.
pub fn wait_exited_nowait(pid: libc::pid_t) -> io::Result<Exit> {
    Ok(wait_id(libc::P_PID, pid as libc::id_t, libc::WEXITED | libc::WNOWAIT)?.unwrap_or(Exit::UNKNOWN))
}

/// Block until the child behind `pidfd` has exited and reap it.
///
/// # Errors
/// Unexpected waitid errors (EBADF); ECHILD becomes `Exit::UNKNOWN`.
pub fn wait_blocking_pidfd(pidfd: RawFd) -> io::Result<Exit> {
    Ok(wait_id(libc::P_PIDFD, pidfd as libc::id_t, libc::WEXITED)?.unwrap_or(Exit::UNKNOWN))
}

/// Block until child `pid` has exited and reap it.
///
/// # Errors
/// Unexpected waitid errors; ECHILD becomes `Exit::UNKNOWN`.
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<Exit> {
    Ok(wait_id(libc::P_PID, pid as libc::id_t, libc::WEXITED)?.unwrap_or(Exit::UNKNOWN))
}

/// Reap `children` (pid, pidfd) on a thread of their own as each exits:
/// for an engine that goes away while they still run, so none is left a
/// zombie. The thread ends when the last one has been reaped.
pub fn reap_in_background(children: Vec<(libc::pid_t, Option<OwnedFd>)>) {
    if children.is_empty() {
        return;
    }
    // Without a thread nothing else could wait for them; they are then
    // reaped when this process exits, which beats blocking the caller.
    let _ = std::thread::Builder::new().name("ferroproc-reaper".into()).spawn(move || reap_all(children));
}

fn reap_all(children: Vec<(libc::pid_t, Option<OwnedFd>)>) {
    let (mut watched, blind): (Vec<_>, Vec<_>) = children.into_iter().partition(|(_, fd)| fd.is_some());
    while !watched.is_empty() {
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: fd.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll reads and writes exactly fds.len() pollfd entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let mut i = 0;
        watched.retain(|(_, fd)| {
            let ready = fds[i].revents != 0;
            i += 1;
            // A pidfd kept open until its child is reaped pins the pid.
            !(ready && fd.as_ref().is_some_and(|fd| try_wait_pidfd(fd.as_raw_fd()).map_or(true, |e| e.is_some())))
        });
    }
    for (pid, _) in blind.into_iter().chain(watched) {
        let _ = wait_blocking(pid);
    }
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

    #[test]
    fn a_reaped_child_reports_its_cpu_time_and_peak_rss() {
        // SAFETY: fork in a test; the child burns CPU and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // 60 ms of its own CPU time, however busy the machine (wall
            // time would leave it less CPU on a loaded one).
            let cpu = || {
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: writes the process's CPU clock into `t`.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
                Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
            };
            let mut x = 0u64;
            let start = cpu();
            while cpu() - start < Duration::from_millis(60) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            std::hint::black_box(x);
            // SAFETY: child side of the fork.
            unsafe { libc::_exit(3) };
        }
        let exit = wait_blocking(pid).unwrap();
        assert_eq!(exit.status, Some(3 << 8));
        let usage = exit.usage.unwrap();
        assert!(usage.user + usage.system >= Duration::from_millis(30), "{usage:?}");
        assert!(usage.max_rss_kib > 0, "{usage:?}");
    }

    #[test]
    fn nowait_leaves_the_child_to_be_reaped_later() {
        // SAFETY: fork in a test; the child exits at once.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: child side of the fork.
            unsafe { libc::_exit(5) };
        }
        assert_eq!(wait_exited_nowait(pid).unwrap().status, Some(5 << 8));
        // Still a zombie of ours, so its pid cannot have been reused.
        assert_eq!(try_wait_pid(pid).unwrap().unwrap().status, Some(5 << 8));
        assert_eq!(try_wait_pid(pid).unwrap(), Some(Exit::UNKNOWN));
    }
}
