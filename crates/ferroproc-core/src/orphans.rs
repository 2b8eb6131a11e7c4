//! Children of a loop that no host will turn again, while their transports
//! live on (an asyncio loop that closed while the program keeps its
//! `Process` objects): see [`settle`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::child::cell::{ChildCell, Host};
use crate::reap;

/// Settle the children of an abandoned loop: every pipe is closed now (the
/// children see end-of-file), a child that has exited is reaped now, and
/// the others on a thread of their own as each exits. Each is reaped
/// through its own state, under its lock, so a transport the program kept
/// can still signal its child (through the pidfd) until it is reaped, and
/// never a pid reused after. No events follow for them.
pub fn settle<H: Host>(cells: &[Arc<ChildCell<H>>]) {
    let mut watched = Vec::new();
    let mut blind = Vec::new();
    for cell in cells {
        let running = cell.with(|c, _| {
            c.detach_pipes();
            let _ = c.try_reap(false);
            // The thread polls a copy: the child's own pidfd closes when it
            // is reaped, and its number could then be reused.
            c.pid().map(|_| c.pidfd().map(dup_cloexec))
        });
        match running {
            None => {}
            Some(Some(Ok(fd))) => watched.push((cell.clone(), fd)),
            // No pidfd (its waiter thread reaps it) or no fd to spare for a
            // copy: waited for by pid, which stays ours until it is reaped.
            Some(_) => blind.push(cell.clone()),
        }
    }
    if watched.is_empty() && blind.is_empty() {
        return;
    }
    // Without a thread they are reaped when this process exits, which beats
    // blocking the caller.
    let _ =
        std::thread::Builder::new().name("ferroproc-orphans".into()).spawn(move || reap_as_they_exit(watched, blind));
}

/// A close-on-exec copy of `fd` (a child's pidfd, open under its lock).
fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd` and returns a new fd.
    let copy = crate::sys::cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: the new fd is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Reap the child if it has exited; whether it is gone (reaped, by us or
/// by its waiter thread).
fn reaped<H: Host>(cell: &ChildCell<H>, by_pid: bool) -> bool {
    cell.with(|c, _| {
        let _ = c.try_reap(by_pid);
        c.pid().is_none()
    })
}

fn reap_as_they_exit<H: Host>(mut watched: Vec<(Arc<ChildCell<H>>, OwnedFd)>, mut blind: Vec<Arc<ChildCell<H>>>) {
    while !watched.is_empty() {
        let mut fds: Vec<libc::pollfd> = watched
            .iter()
            .map(|(_, fd)| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: poll reads and writes exactly fds.len() pollfd entries.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let mut i = 0;
        watched.retain(|(cell, _)| {
            let ready = fds[i].revents != 0;
            i += 1;
            if ready && !reaped(cell, false) {
                // Readable yet not reaped (an unexpected waitid error): by
                // pid below, rather than spinning here.
                blind.push(cell.clone());
            }
            !ready
        });
    }
    for cell in blind.into_iter().chain(watched.into_iter().map(|(cell, _)| cell)) {
        let pid = cell.with(|c, _| c.pid());
        if let Some(pid) = pid {
            // Waits without reaping: the pid stays ours until the reap below.
            let _ = reap::wait_exited_nowait(pid);
            reaped(&cell, true);
        }
    }
}
