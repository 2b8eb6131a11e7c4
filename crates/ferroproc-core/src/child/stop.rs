//! Stopping a child because the host decided to (a cancel, a halt): SIGTERM
//! to the group it leads (else to it alone), SIGKILL after a grace, and our
//! ends of its pipes closed once it is killed, so nothing its grandchildren
//! hold keeps it from ending (decisions 17 and 18).
//!
//! The same phases as a time limit's (`control.rs`), with the host's reason:
//! the debug log names it, and [`Child::timed_out`] stays clear (no limit
//! ran out). A stop asked for again with a shorter grace brings the SIGKILL
//! forward (a second Ctrl-C), also for a time limit's stop under way.

use super::control::{Phase, TimeLimits, Watch};
use super::Child;
use crate::debuglog::Why;

/// Why the host stops a child: a short code (`"cancel"`, `"halt"`) and a
/// sentence, for the debug log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopWhy {
    pub code: String,
    pub text: String,
}

impl StopWhy {
    pub fn new(code: &str, text: &str) -> Self {
        StopWhy { code: code.to_owned(), text: text.to_owned() }
    }

    fn now(&self) -> Why {
        Why::Host { code: self.code.clone(), text: self.text.clone() }
    }

    /// Why the SIGKILL at the end of the grace is sent.
    pub(super) fn after_grace(&self, grace: f64) -> Why {
        Why::Host {
            code: "kill-grace".into(),
            text: format!("still running {grace}s after the SIGTERM ({})", self.text),
        }
    }
}

/// What [`Child::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// This stop began: SIGTERM sent (SIGKILL, without a grace). Call
    /// [`Child::on_deadline`] at the time given, if any (the SIGKILL).
    Began(Option<f64>),
    /// A stop (this host's, or a time limit's) was under way: its SIGKILL
    /// was brought forward to the shorter grace (sent now, for none).
    /// The time, as for `Began`.
    Hastened(Option<f64>),
    /// A stop was under way and ends no later this way: nothing changed.
    Unchanged,
    /// It had exited already, and what it left holds its pipes: they are
    /// closed now (a group it leads is killed if `kill_on_lost` says so).
    PipesClosed,
    /// It has ended, or is exiting on its own (its exit not seen yet):
    /// nothing was sent.
    Ended,
}

impl<C: AsRef<[u8]>> Child<C> {
    /// Stop the child for the host (see the module documentation), `grace`
    /// seconds between SIGTERM and SIGKILL (0: SIGKILL at once), from
    /// `now` (the host's clock).
    pub fn stop(&mut self, grace: f64, now: f64, why: &StopWhy) -> Stop {
        if self.is_ended() {
            return Stop::Ended;
        }
        if self.exit.is_some() {
            self.lose_connection();
            return Stop::PipesClosed;
        }
        if self.exited_unseen() {
            return Stop::Ended;
        }
        let grace = grace.max(0.0);
        let phase = self.watch.as_ref().map(|w| w.phase);
        match phase {
            None | Some(Phase::Watching) => {
                let w = self
                    .watch
                    .get_or_insert_with(|| Box::new(Watch::new(TimeLimits { wall: None, idle: None, grace }, now)));
                w.limits.grace = grace;
                w.stop = Some(Box::new(why.clone()));
                if grace <= 0.0 {
                    w.phase = Phase::Done;
                    self.kill_now(why);
                    return Stop::Began(None);
                }
                w.phase = Phase::Terminated { kill_at: now + grace };
                let _ = self.signal_tree(libc::SIGTERM, || why.now());
                Stop::Began(Some(now + grace))
            }
            Some(Phase::Terminated { kill_at }) if now + grace < kill_at => {
                let w = self.watch.as_mut().expect("a phase");
                if grace <= 0.0 {
                    w.phase = Phase::Done;
                    if let Some(t) = w.timed_out.as_mut() {
                        t.killed = true;
                    }
                    self.kill_now(why);
                    return Stop::Hastened(None);
                }
                w.phase = Phase::Terminated { kill_at: now + grace };
                w.limits.grace = grace;
                if w.stop.is_none() {
                    // A time limit's stop, hurried: its SIGKILL is the host's.
                    w.stop = Some(Box::new(why.clone()));
                }
                Stop::Hastened(Some(now + grace))
            }
            Some(Phase::Terminated { .. } | Phase::Done) => Stop::Unchanged,
        }
    }

    /// SIGKILL to the group it leads (else to it) now, and our ends of its
    /// pipes closed (input still queued goes at the host's next flush).
    fn kill_now(&mut self, why: &StopWhy) {
        let _ = self.signal_tree(libc::SIGKILL, || why.now());
        self.lose_connection();
    }
}
