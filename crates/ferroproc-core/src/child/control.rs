//! Process control of one child: its process group (kill-tree, and when to
//! kill it) and its time limits (wall clock and no output: SIGTERM, then
//! SIGKILL after a grace period).
//!
//! Only what is ours is signalled: a group as a whole only when the child
//! leads it, and only while the leader has not been reaped (a zombie's pid,
//! and so its group's id, cannot be reused; a reaped one's can). A group the
//! child joined is reached through the child alone.

use std::os::fd::AsRawFd;

use super::{Child, SignalError};
use crate::debuglog::Why;
use crate::sys;

/// The child's process group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The parent's: none of its own.
    #[default]
    Parents,
    /// A group it leads (a new group or session), whose id is the child's pid.
    Leads(libc::pid_t),
    /// An existing group it joined: reported, but never signalled as a whole
    /// (someone else leads it, so its id may be reused under us).
    Joined(libc::pid_t),
}

/// The child's process group, and when to kill all of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupPolicy {
    pub group: Group,
    /// SIGKILL the group (one the child leads) when the child exits (its
    /// grandchildren go too).
    pub kill_on_exit: bool,
    /// SIGKILL the group (one the child leads) when the parent loses the
    /// connection (`loseConnection`, or the host going away) before the
    /// child has been reaped.
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
    pub(super) limits: TimeLimits,
    started: f64,
    last_output: f64,
    /// We are not reading all of the child's output (the consumer paused
    /// it): the idle clock stands still, and restarts when reading resumes.
    paused: bool,
    pub(super) phase: Phase,
    pub(super) timed_out: Option<TimedOut>,
    /// SIGTERM was sent (with no grace, only SIGKILL is).
    termed: bool,
    /// ... and the child neither blocked, ignored nor caught it: it was
    /// ended by it at once, unless it was exiting already.
    term_fatal: bool,
    /// The host is stopping it (`stop.rs`), and why: no time limit did.
    pub(super) stop: Option<Box<super::stop::StopWhy>>,
}

impl Watch {
    /// A limit ran out and its SIGKILL has not been sent yet.
    pub(super) fn kill_pending(&self) -> bool {
        matches!(self.phase, Phase::Terminated { .. })
    }

    /// Why the SIGKILL after the grace is sent (for the debug record).
    pub(super) fn grace_why(&self) -> Why {
        if let Some(stop) = &self.stop {
            return stop.after_grace(self.limits.grace);
        }
        let (kind, limit) = self.timed_out.map_or((TimeoutKind::Wall, 0.0), |t| (t.kind, t.limit));
        Why::Grace { kind, limit, grace: self.limits.grace }
    }

    /// The limit that has run out at `now`, if any.
    fn hit(&self, now: f64) -> Option<(TimeoutKind, f64)> {
        let over = |limit: Option<f64>, since: f64| limit.filter(|l| now >= since + l);
        if let Some(limit) = over(self.limits.wall, self.started) {
            return Some((TimeoutKind::Wall, limit));
        }
        let idle = self.limits.idle.filter(|_| !self.paused);
        over(idle, self.last_output).map(|limit| (TimeoutKind::Idle, limit))
    }

    pub(super) fn new(limits: TimeLimits, now: f64) -> Self {
        Watch {
            limits,
            started: now,
            last_output: now,
            paused: false,
            phase: Phase::Watching,
            timed_out: None,
            termed: false,
            term_fatal: false,
            stop: None,
        }
    }

    fn next_deadline(&self, now: f64) -> Option<f64> {
        match self.phase {
            Phase::Watching => {
                let wall = self.limits.wall.map(|l| self.started + l);
                // While paused, look again an idle period on (the clock
                // restarts on resume, so no deadline can come earlier).
                let since = if self.paused { now } else { self.last_output };
                let idle = self.limits.idle.map(|l| since + l);
                match (wall, idle) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Terminated { kill_at } => Some(kill_at),
            Phase::Done => None,
        }
    }
}

impl<C: AsRef<[u8]>> Child<C> {
    /// Its process group, and when to kill it.
    pub fn set_group(&mut self, group: GroupPolicy) {
        self.group = group;
    }

    /// The group the child leads or joined.
    pub fn pgid(&self) -> Option<libc::pid_t> {
        match self.group.group {
            Group::Leads(pgid) | Group::Joined(pgid) => Some(pgid),
            Group::Parents => None,
        }
    }

    /// Time limits, counted from `now`. Returns when to call
    /// [`Child::on_deadline`] first.
    pub fn set_time_limits(&mut self, limits: TimeLimits, now: f64) -> Option<f64> {
        self.watch = Some(Box::new(Watch::new(limits, now)));
        self.note_reading();
        self.watch.as_ref()?.next_deadline(now)
    }

    /// Output arrived: an idle limit counts from now.
    pub(super) fn note_output(&mut self) {
        if let Some(w) = self.watch.as_mut().filter(|w| w.limits.idle.is_some()) {
            w.last_output = crate::timers::now();
        }
    }

    /// Reading was paused or resumed, or a pipe closed: idle time counts
    /// only while every output pipe is read (a child blocked on a full pipe
    /// we stopped reading is not idle), and starts again when it is.
    pub(super) fn note_reading(&mut self) {
        let paused = self.pipes.values().any(|p| p.role.reads() && (self.reading_paused || p.paused));
        let Some(w) = self.watch.as_mut() else { return };
        if w.paused != paused {
            w.paused = paused;
            if !paused {
                w.last_output = w.last_output.max(crate::timers::now());
            }
        }
    }

    /// How a time limit ended the child, if one did. A child whose exit
    /// status our signals cannot have caused did not time out: it was
    /// exiting on its own when they came (too late for the check before
    /// them to see it). That is any status but SIGKILL's after SIGKILL
    /// alone, and any but SIGTERM's or SIGKILL's after a SIGTERM the child
    /// did not block, ignore or catch (one it catches may end it any way).
    /// `killed` only when SIGKILL is what ended it.
    pub fn timed_out(&self) -> Option<TimedOut> {
        let w = self.watch.as_ref()?;
        let mut t = w.timed_out?;
        if let Some(status) = self.exit().and_then(|e| e.status) {
            let by = |sig| libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == sig;
            let ours = by(libc::SIGKILL) || (w.termed && (!w.term_fatal || by(libc::SIGTERM)));
            if !ours {
                return None;
            }
            t.killed &= by(libc::SIGKILL);
        }
        Some(t)
    }

    /// A deadline came (at `now`): enforce the limits. A limit that ran out
    /// sends SIGTERM (to the group the child leads, else to the child), and
    /// SIGKILL after the grace period; once the child is killed, the
    /// parent's ends of its pipes close, so a grandchild holding them cannot
    /// delay the end (the host flushes what input was queued, as after
    /// `loseConnection`). A child that has exited, even if the loop has not
    /// seen it yet, did not time out. Returns when to call again, if at all.
    pub fn on_deadline(&mut self, now: f64) -> Option<f64> {
        let w = self.watch.as_ref()?;
        match w.phase {
            Phase::Done => return None,
            Phase::Watching => {
                let hit = w.hit(now);
                let grace = w.limits.grace;
                if self.exit.is_some() || (hit.is_some() && self.exited_unseen()) {
                    self.watch.as_mut()?.phase = Phase::Done;
                    return None;
                }
                if let Some((kind, limit)) = hit {
                    let w = self.watch.as_mut()?;
                    let why = || Why::TimeLimit { kind, limit };
                    if grace <= 0.0 {
                        // No grace: SIGKILL at once, no SIGTERM first.
                        w.timed_out = Some(TimedOut { kind, limit, killed: true });
                        w.phase = Phase::Done;
                        let _ = self.signal_tree(libc::SIGKILL, why);
                        self.lose_connection();
                        return None;
                    }
                    w.timed_out = Some(TimedOut { kind, limit, killed: false });
                    w.termed = true;
                    w.phase = Phase::Terminated { kill_at: now + grace };
                    let _ = self.signal_tree(libc::SIGTERM, why);
                    // Read after sending: the disposition it met. (The pid
                    // is still ours: the child has not been reaped.)
                    let fatal = self.pid.is_some_and(term_is_fatal);
                    self.watch.as_mut()?.term_fatal = fatal;
                }
            }
            Phase::Terminated { kill_at } if now >= kill_at => {
                let running = self.exit.is_none() && !self.exited_unseen();
                let w = self.watch.as_mut()?;
                w.phase = Phase::Done;
                if let Some(t) = w.timed_out.as_mut() {
                    t.killed = running;
                }
                let why = w.grace_why();
                // The group (grandchildren that ignored SIGTERM), while its
                // leader is ours; or the child, if it is still there.
                let _ = self.signal_tree(libc::SIGKILL, || why);
                // (Input still queued closes at the host's next flush.)
                self.lose_connection();
                return None;
            }
            Phase::Terminated { .. } => {}
        }
        self.watch.as_ref()?.next_deadline(now)
    }

    /// Send signal `sig`: through the pidfd (never a recycled pid), or to the
    /// pid while it is known to be ours (not yet reaped).
    ///
    /// # Errors
    /// [`SignalError::Gone`] once the child has exited (and its exit been seen).
    pub fn signal(&self, sig: i32) -> Result<(), SignalError> {
        let r = match (&self.pidfd, self.pid) {
            (Some(fd), _) => sys::pidfd_send_signal(fd.as_raw_fd(), sig),
            (None, Some(pid)) => sys::kill(pid, sig),
            (None, None) => return Err(SignalError::Gone),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(SignalError::Gone),
            Err(e) => Err(SignalError::Os(e)),
        }
    }

    /// Send `sig` to the process group the child leads (its grandchildren
    /// included, also those that left its pipes behind), until the child has
    /// been reaped (a group leader is reaped when its last pipe closes).
    ///
    /// # Errors
    /// [`SignalError::NoGroup`] when the child has no group of its own;
    /// [`SignalError::NotLeader`] when it joined a group it does not lead;
    /// [`SignalError::Gone`] once it has been reaped, or nothing is left in
    /// its group.
    pub fn signal_group(&self, sig: i32) -> Result<(), SignalError> {
        let pgid = match self.group.group {
            Group::Leads(pgid) => pgid,
            Group::Joined(pgid) => return Err(SignalError::NotLeader(pgid)),
            Group::Parents => return Err(SignalError::NoGroup),
        };
        if !self.unreaped() {
            return Err(SignalError::Gone);
        }
        match sys::kill(-pgid, sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(SignalError::Gone),
            Err(e) => Err(SignalError::Os(e)),
        }
    }

    /// With `kill_on_lost`, SIGKILL the group (once: the policy is spent),
    /// if its leader has not been reaped.
    pub(super) fn kill_group_if_lost(&mut self) {
        if std::mem::take(&mut self.group.kill_on_lost) {
            let _ = self.signal_group_because(libc::SIGKILL, || Why::KillOnLost);
        }
    }
}

/// Whether SIGTERM is fatal to process `pid` at once: neither blocked (by its
/// main thread), ignored nor caught, by `/proc/<pid>/status`. The kernel then
/// ends it as the signal is sent, so its status can only be SIGTERM's. False
/// when unsure.
fn term_is_fatal(pid: libc::pid_t) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let bit = 1u64 << (libc::SIGTERM - 1);
    let mut masks = 0;
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        if matches!(key, "SigBlk" | "SigIgn" | "SigCgt") {
            match u64::from_str_radix(value.trim(), 16) {
                Ok(mask) if mask & bit == 0 => masks += 1,
                _ => return false,
            }
        }
    }
    masks == 3
}
