//! Process control of one child: its process group (kill-tree, and when to
//! kill it) and its time limits (wall clock and no output: SIGTERM, then
//! SIGKILL after a grace period).

use super::{Child, SignalError};
use crate::sys;

/// The child's own process group, and when to kill all of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    /// The group the child leads or joined (None: the parent's).
    pub pgid: Option<libc::pid_t>,
    /// SIGKILL the group when the child exits (its grandchildren go too).
    pub kill_on_exit: bool,
    /// SIGKILL the group when the parent loses the connection
    /// (`loseConnection`, or the host going away).
    pub kill_on_lost: bool,
}

/// Which time limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The wall-clock limit.
    Wall,
    /// No output for that long.
    Idle,
}

/// Time limits on the child, in seconds (the host's clock, [`crate::timers::now`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeLimits {
    /// Run at most this long.
    pub wall: Option<f64>,
    /// Produce output at least this often.
    pub idle: Option<f64>,
    /// Between SIGTERM and SIGKILL.
    pub grace: f64,
}

/// How a time limit ended the child (for the reason the protocol gets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedOut {
    pub kind: TimeoutKind,
    /// The limit, in seconds.
    pub limit: f64,
    /// SIGKILL had to follow SIGTERM.
    pub killed: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Phase {
    Watching,
    /// SIGTERM sent; SIGKILL at `kill_at`.
    Terminated {
        kill_at: f64,
    },
    Done,
}

#[derive(Debug)]
pub(super) struct Watch {
    limits: TimeLimits,
    started: f64,
    last_output: f64,
    phase: Phase,
    timed_out: Option<TimedOut>,
}

impl<C: AsRef<[u8]>> Child<C> {
    /// Its process group, and when to kill it.
    pub fn set_group(&mut self, group: GroupPolicy) {
        self.group = group;
    }

    /// The group the child leads or joined.
    pub fn pgid(&self) -> Option<libc::pid_t> {
        self.group.pgid
    }

    /// Time limits, counted from `now`. Returns when to call
    /// [`Child::on_deadline`] first.
    pub fn set_time_limits(&mut self, limits: TimeLimits, now: f64) -> Option<f64> {
        let watch = Watch { limits, started: now, last_output: now, phase: Phase::Watching, timed_out: None };
        self.watch = Some(watch);
        self.next_deadline()
    }

    /// Output arrived: an idle limit counts from now.
    pub(super) fn note_output(&mut self) {
        if let Some(w) = self.watch.as_mut().filter(|w| w.limits.idle.is_some()) {
            w.last_output = crate::timers::now();
        }
    }

    /// How a time limit ended the child, if one did.
    pub fn timed_out(&self) -> Option<TimedOut> {
        self.watch.as_ref().and_then(|w| w.timed_out)
    }

    fn next_deadline(&self) -> Option<f64> {
        let w = self.watch.as_ref()?;
        match w.phase {
            Phase::Watching => {
                let wall = w.limits.wall.map(|l| w.started + l);
                let idle = w.limits.idle.map(|l| w.last_output + l);
                match (wall, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Terminated { kill_at } => Some(kill_at),
            Phase::Done => None,
        }
    }

    /// A deadline came (at `now`): enforce the limits. A limit that ran out
    /// sends SIGTERM (to the child's group when it has one), and SIGKILL after
    /// the grace period; once the child is killed, the parent's ends of its
    /// pipes close, so a grandchild holding them cannot delay the end (the
    /// host flushes what input was queued, as after `loseConnection`).
    /// Returns when to call again, if at all.
    pub fn on_deadline(&mut self, now: f64) -> Option<f64> {
        let exited = self.exit.is_some();
        let w = self.watch.as_mut()?;
        match w.phase {
            Phase::Done => return None,
            Phase::Watching if exited => {
                w.phase = Phase::Done;
                return None;
            }
            Phase::Watching => {
                let over = |limit: Option<f64>, since: f64| limit.filter(|l| now >= since + l);
                let hit = match (over(w.limits.wall, w.started), over(w.limits.idle, w.last_output)) {
                    (Some(limit), _) => Some((TimeoutKind::Wall, limit)),
                    (None, Some(limit)) => Some((TimeoutKind::Idle, limit)),
                    (None, None) => None,
                };
                if let Some((kind, limit)) = hit {
                    if w.limits.grace <= 0.0 {
                        // No grace: SIGKILL at once, no SIGTERM first.
                        w.timed_out = Some(TimedOut { kind, limit, killed: true });
                        w.phase = Phase::Done;
                        let _ = self.signal_tree(libc::SIGKILL);
                        self.lose_connection();
                        return None;
                    }
                    w.timed_out = Some(TimedOut { kind, limit, killed: false });
                    w.phase = Phase::Terminated { kill_at: now + w.limits.grace };
                    let _ = self.signal_tree(libc::SIGTERM);
                }
            }
            Phase::Terminated { kill_at } if now >= kill_at => {
                w.phase = Phase::Done;
                let still_there = !exited || self.group.pgid.is_some();
                if let Some(t) = w.timed_out.as_mut() {
                    t.killed = !exited;
                }
                if still_there {
                    let _ = self.signal_tree(libc::SIGKILL);
                }
                // (Input still queued closes at the host's next flush.)
                self.lose_connection();
                return None;
            }
            Phase::Terminated { .. } => {}
        }
        self.next_deadline()
    }

    /// `sig` to the child's group when it has one, else to the child.
    fn signal_tree(&self, sig: i32) -> Result<(), SignalError> {
        match self.group.pgid {
            Some(_) => self.signal_group(sig),
            None => self.signal(sig),
        }
    }

    /// Send `sig` to the child's process group (its grandchildren included,
    /// also those that left its pipes behind).
    ///
    /// # Errors
    /// [`SignalError::NoGroup`] when the child has no group of its own;
    /// [`SignalError::Gone`] when nothing is left in it.
    pub fn signal_group(&self, sig: i32) -> Result<(), SignalError> {
        let Some(pgid) = self.group.pgid else { return Err(SignalError::NoGroup) };
        match sys::kill(-pgid, sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(SignalError::Gone),
            Err(e) => Err(SignalError::Os(e)),
        }
    }

    /// With `kill_on_lost`, SIGKILL the group (once: the policy is spent).
    pub(super) fn kill_group_if_lost(&mut self) {
        if std::mem::take(&mut self.group.kill_on_lost) {
            let _ = self.signal_group(libc::SIGKILL);
        }
    }
}
