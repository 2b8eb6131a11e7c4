//! A child's debug records (see [`crate::debuglog`]): how it ended, and
//! each signal sent to it or its group, with the reason. Each reads the
//! flag first: with records off, a signal costs one load more and an exit
//! one load.

use super::{Child, Group, SignalError};
use crate::debuglog::{self, Record, Tag, Target, Why};

impl<C: AsRef<[u8]>> Child<C> {
    /// The tag its spawn made, when debug records were on then
    /// ([`crate::spawn::Spawned::take_tag`]): its exit and the signals sent
    /// to it then name its argv, and the exit says how long it ran.
    pub fn set_tag(&mut self, tag: Option<Box<Tag>>) {
        self.tag = tag;
    }

    /// [`Child::signal`], recorded with `why` (made only when records are on).
    ///
    /// # Errors
    /// As [`Child::signal`].
    pub fn signal_because(&self, sig: i32, why: impl FnOnce() -> Why) -> Result<(), SignalError> {
        let pid = self.pid;
        let r = self.signal(sig);
        if let (true, Some(pid)) = (debuglog::enabled(), pid) {
            debuglog::signalled(pid, Target::Pid(pid), sig, why, &r, self.tag.as_deref());
        }
        r
    }

    /// [`Child::signal_group`], recorded with `why`.
    ///
    /// # Errors
    /// As [`Child::signal_group`].
    pub fn signal_group_because(&self, sig: i32, why: impl FnOnce() -> Why) -> Result<(), SignalError> {
        let r = self.signal_group(sig);
        if let (true, Group::Leads(pgid)) = (debuglog::enabled(), self.group.group) {
            debuglog::signalled(pgid, Target::Group(pgid), sig, why, &r, self.tag.as_deref());
        }
        r
    }

    /// `sig` to the group the child leads, else to the child alone, for `why`.
    pub(super) fn signal_tree(&self, sig: i32, why: impl FnOnce() -> Why) -> Result<(), SignalError> {
        match self.group.group {
            Group::Leads(_) => self.signal_group_because(sig, why),
            Group::Parents | Group::Joined(_) => self.signal_because(sig, why),
        }
    }

    /// Record how child `pid` ended (its exit has just been set).
    pub(super) fn record_exit(&self, pid: libc::pid_t) {
        if !debuglog::enabled() {
            return;
        }
        let Some(exit) = self.exit() else { return };
        let tag = self.tag.as_deref();
        debuglog::push(Record::Exited {
            pid,
            exit,
            timed_out: self.timed_out(),
            ran: tag.map(|t| t.started.elapsed()),
            argv: tag.map(|t| t.argv.clone()),
        });
    }
}
