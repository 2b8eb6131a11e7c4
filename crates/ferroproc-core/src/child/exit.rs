//! The child's exit: seen, reported and reaped, and, for a child that leads
//! its process group, reaped late.
//!
//! A zombie's pid cannot be reused, and neither can the id of the group it
//! leads; once it is reaped, both can. So a group leader is looked at without
//! being reaped when it exits (`WNOWAIT`): `Exited` is emitted at once, with
//! its status and usage, but the zombie is held while any of its pipes is
//! open (grandchildren still holding them). Until then its group can be
//! signalled soundly: `signalGroup`, a time limit's SIGKILL at the end of the
//! grace, `kill_on_lost`. It is reaped just before `Ended`, which waits for
//! the pipes anyway, so no event comes later than it did; after that, its
//! group is never signalled again. A time limit's SIGKILL still due at that
//! point is sent just before the reap, while the group id is still ours.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Child, Event, Group};
use crate::debuglog::Why;
use crate::reap::{self, Exit};

/// An exited group leader not reaped yet.
#[derive(Debug)]
pub(super) struct Held {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
}

impl Held {
    /// Its pid and pidfd, for someone else to reap.
    pub(super) fn into_parts(self) -> (libc::pid_t, Option<OwnedFd>) {
        (self.pid, self.pidfd)
    }

    fn reap(self) {
        // A zombie: this does not wait. (ECHILD: someone else reaped it.)
        let _ = match &self.pidfd {
            Some(fd) => reap::try_wait_pidfd(fd.as_raw_fd()),
            None => reap::try_wait_pid(self.pid),
        };
    }
}

impl<C: AsRef<[u8]>> Child<C> {
    /// Reap the child if it has exited (its pidfd, or with `pid_fallback`
    /// its pid, which a waiter saw exit without reaping it); a group leader
    /// is only looked at, and held (see the module documentation). Returns
    /// whether its exit was seen now.
    ///
    /// # Errors
    /// Unexpected `waitid` errors (the host logs them).
    pub fn try_reap(&mut self, pid_fallback: bool) -> io::Result<bool> {
        if self.exit.is_some() {
            return Ok(false);
        }
        if !matches!(self.group.group, Group::Leads(_)) {
            let exit = match (&self.pidfd, self.pid) {
                (Some(fd), _) => reap::try_wait_pidfd(fd.as_raw_fd())?,
                (None, Some(pid)) if pid_fallback => reap::try_wait_pid(pid)?,
                _ => None,
            };
            let Some(exit) = exit else { return Ok(false) };
            self.on_exit(exit);
            return Ok(true);
        }
        let (Some(exit), Some(pid)) = (self.peek_exit(pid_fallback)?, self.pid) else { return Ok(false) };
        if exit.status.is_none() {
            // Someone else reaped it: there is no zombie to hold.
            self.on_exit(exit);
            return Ok(true);
        }
        if self.group.kill_on_exit {
            // The zombie keeps the group id ours.
            let _ = self.signal_group_because(libc::SIGKILL, || Why::KillOnExit);
        }
        self.held = Some(Box::new(Held { pid, pidfd: self.pidfd.take() }));
        self.on_exit(exit);
        Ok(true)
    }

    /// How the child ended, if it has, without reaping it (without pidfds
    /// only with `pid_fallback`, or from a child's own thread of control
    /// that knows the pid is still unreaped).
    pub(super) fn peek_exit(&self, pid_fallback: bool) -> io::Result<Option<Exit>> {
        match (&self.pidfd, self.pid) {
            (Some(fd), _) => reap::peek_pidfd(fd.as_raw_fd()),
            (None, Some(pid)) if pid_fallback => reap::peek_pid(pid),
            _ => Ok(None),
        }
    }

    /// Whether the child has exited though its exit has not been seen yet
    /// (the loop has not handled its pidfd, or its waiter, this turn).
    pub(super) fn exited_unseen(&self) -> bool {
        self.exit.is_none() && matches!(self.peek_exit(true), Ok(Some(_)))
    }

    /// Whether the child (running, or a zombie we hold) has not been reaped:
    /// only then is the id of a group it leads known to be its group's.
    pub(super) fn unreaped(&self) -> bool {
        self.pid.is_some() || self.held.is_some()
    }

    /// Record how the child ended: the pid is forgotten at once (it may be
    /// reused from now on, unless the child is held), `Exited` is emitted,
    /// and `Ended` if every pipe has closed.
    pub fn on_exit(&mut self, exit: Exit) {
        if self.exit.is_some() {
            return;
        }
        self.exit = Some(Box::new(exit));
        let pid = self.pid.or_else(|| self.held.as_ref().map(|h| h.pid));
        if let Some(pid) = pid {
            self.record_exit(pid);
        }
        self.pid = None;
        self.pidfd = None;
        self.held_master = None;
        self.exited_emitted = true;
        self.outbox.push_back(Event::Exited);
        self.maybe_end();
    }

    /// Reap a held group leader (its pipes have all closed, or it is being
    /// given up): a time limit's SIGKILL still due goes to its group first.
    pub(super) fn release_held(&mut self) {
        if self.held.is_none() {
            return;
        }
        if let Some(why) = self.watch.as_ref().filter(|w| w.kill_pending()).map(|w| w.grace_why()) {
            let _ = self.signal_group_because(libc::SIGKILL, || why);
        }
        if let Some(held) = self.held.take() {
            (*held).reap();
        }
    }
}
