//! Running many jobs: the scheduling rules, host-neutral.
//!
//! A [`Scheduler`] holds the prepared jobs not started yet (a bounded queue
//! the host refills from its input), decides which job starts next and when
//! (a free slot, a retry's delay, the free-memory gate, no halt or cancel),
//! and, when a job ends, whether it runs again or counts as done, and
//! whether that reaches the halt policy. It starts nothing itself: the host
//! asks it for the next job the moment one ends (in the same loop turn, so
//! no slot waits for the host's slower code), spawns it, and reports each
//! end. What a job is to the host (its spawn arguments) is the opaque `P`;
//! jobs the scheduler lets go of are handed back, never dropped, so a host
//! whose payloads must be released outside a lock can do so.
//!
//! [`capture::Capture`] bounds what is kept of a job's output;
//! [`files`] reads the memory gate's figure and makes per-job output files.

pub mod capture;
pub mod files;
pub mod halt;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

pub use capture::{Capture, Keep};
pub use halt::{Counts, HaltOn, HaltPolicy, HaltWhen, Threshold};

/// How often the free-memory gate looks again while it holds jobs back, in seconds.
pub const MEM_RECHECK: f64 = 0.2;

/// The scheduler's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Jobs running at once (at least 1).
    pub concurrency: usize,
    /// How many prepared jobs the host should keep queued.
    pub ahead: usize,
    /// How many times a failed job runs again.
    pub retries: u32,
    /// Seconds between a failed attempt's end and the next.
    pub retry_delay: f64,
    /// Start a job only while this many bytes of memory are available.
    pub memfree: Option<u64>,
}

/// A job waiting to start: its number, which attempt it is (1 first), and
/// the host's payload.
#[derive(Debug)]
pub struct Queued<P> {
    pub seq: u64,
    pub attempt: u32,
    pub payload: P,
}

/// How an attempt ended, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// It succeeded (exit 0, within its time limits, not stopped).
    pub ok: bool,
    /// The runner stopped it (cancel, a `now` halt): never retried.
    pub stopped: bool,
}

/// What happens after an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Run it again: hand it back with [`Scheduler::retry`] (due at `at`).
    Retry { at: f64 },
    /// It is done. `halt`: its end reached the halt policy (the host stops
    /// the running jobs too when [`Scheduler::halting_now`]).
    Final { halt: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Halted(HaltWhen),
    Cancelled,
}

/// The scheduling rules of one run: see the module documentation.
#[derive(Debug)]
pub struct Scheduler<P> {
    limits: Limits,
    halt: Option<HaltPolicy>,
    queue: VecDeque<Queued<P>>,
    /// Retries waiting for their delay: (due, job).
    parked: Vec<(f64, Queued<P>)>,
    running: usize,
    started: u64,
    total: Option<u64>,
    counts: Counts,
    state: State,
    /// The memory gate held a job back: look again then.
    mem_retry_at: Option<f64>,
}

impl<P> Scheduler<P> {
    /// A scheduler with nothing queued.
    pub fn new(limits: Limits, halt: Option<HaltPolicy>) -> Self {
        let limits = Limits { concurrency: limits.concurrency.max(1), ..limits };
        Scheduler {
            limits,
            halt,
            queue: VecDeque::new(),
            parked: Vec::new(),
            running: 0,
            started: 0,
            total: None,
            counts: Counts::default(),
            state: State::Open,
            mem_retry_at: None,
        }
    }

    /// Queue a prepared job (its first attempt). A stopped scheduler
    /// refuses it and hands it back.
    ///
    /// # Errors
    /// The job, when the run has been halted or cancelled.
    pub fn push(&mut self, seq: u64, payload: P) -> Result<(), Queued<P>> {
        let job = Queued { seq, attempt: 1, payload };
        if self.state != State::Open {
            return Err(job);
        }
        self.queue.push_back(job);
        Ok(())
    }

    /// How many more prepared jobs the host should queue (0 once stopped).
    pub fn wanted(&self) -> usize {
        if self.state == State::Open {
            self.limits.ahead.saturating_sub(self.queue.len())
        } else {
            0
        }
    }

    /// The number of jobs to run, once the host knows it (for a halt
    /// policy's percentage).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// The next job to start now, if a slot is free and one may start:
    /// retries whose delay is over go first, then the queue in order. With
    /// a memory gate, `mem_available` is asked (only then); below the
    /// gate nothing starts, and [`Scheduler::wake_at`] says when to ask
    /// again. The job counts as running from here.
    pub fn next(&mut self, now: f64, mem_available: impl FnOnce() -> Option<u64>) -> Option<Queued<P>> {
        if self.state != State::Open || self.running >= self.limits.concurrency {
            return None;
        }
        self.release_due(now);
        if self.queue.is_empty() {
            return None;
        }
        if let Some(min) = self.limits.memfree {
            if mem_available().is_some_and(|avail| avail < min) {
                self.mem_retry_at = Some(now + MEM_RECHECK);
                return None;
            }
            self.mem_retry_at = None;
        }
        let job = self.queue.pop_front()?;
        self.running += 1;
        self.started += 1;
        Some(job)
    }

    /// A job [`Scheduler::next`] gave could not be started for want of
    /// something the running jobs hold (fds, processes): it goes back to the
    /// front of the queue, as not started, to be tried when one of them ends.
    pub fn put_back(&mut self, job: Queued<P>) {
        self.running = self.running.saturating_sub(1);
        self.started = self.started.saturating_sub(1);
        self.queue.push_front(job);
    }

    /// Retries whose delay is over go to the front of the queue, earliest first.
    fn release_due(&mut self, now: f64) {
        if self.parked.is_empty() {
            return;
        }
        self.parked.sort_by(|a, b| b.0.total_cmp(&a.0));
        while self.parked.last().is_some_and(|(at, _)| *at <= now) {
            let (_, job) = self.parked.pop().expect("checked");
            self.queue.push_front(job);
        }
    }

    /// An attempt of job `seq` (attempt number `attempt`) ended at `now`.
    pub fn end(&mut self, attempt: u32, outcome: Outcome, now: f64) -> Verdict {
        self.running = self.running.saturating_sub(1);
        let retry = !outcome.ok && !outcome.stopped && attempt <= self.limits.retries;
        if retry && self.state == State::Open {
            return Verdict::Retry { at: now + self.limits.retry_delay };
        }
        if outcome.ok {
            self.counts.succeeded += 1;
        } else {
            self.counts.failed += 1;
        }
        let halt = self.state == State::Open && self.halt.is_some_and(|h| h.reached(&self.counts, self.total));
        if halt {
            self.state = State::Halted(self.halt.expect("checked").when);
        }
        Verdict::Final { halt }
    }

    /// Queue the next attempt of a job that ended with [`Verdict::Retry`],
    /// to start once `at` has come (at once: ahead of the queue). A stopped
    /// scheduler hands it back.
    ///
    /// # Errors
    /// The job, when the run has been halted or cancelled meanwhile.
    pub fn retry(&mut self, job: Queued<P>, at: f64) -> Result<(), Queued<P>> {
        if self.state != State::Open {
            return Err(job);
        }
        let job = Queued { attempt: job.attempt + 1, ..job };
        if self.limits.retry_delay > 0.0 {
            self.parked.push((at, job));
        } else {
            self.queue.push_front(job);
        }
        Ok(())
    }

    /// Stop: start nothing more. Returns the jobs that will never start.
    pub fn cancel(&mut self) -> Vec<Queued<P>> {
        if self.state == State::Open {
            self.state = State::Cancelled;
        }
        self.drain()
    }

    /// The jobs that will never start, once stopped (a halt leaves them
    /// queued until the host takes them).
    pub fn drain(&mut self) -> Vec<Queued<P>> {
        if self.state == State::Open {
            return Vec::new();
        }
        let mut out: Vec<Queued<P>> = self.queue.drain(..).collect();
        out.extend(self.parked.drain(..).map(|(_, j)| j));
        out
    }

    /// When the host should ask for the next job again although no job
    /// ended: a retry's delay, or the memory gate's next look.
    pub fn wake_at(&self) -> Option<f64> {
        if self.state != State::Open {
            return None;
        }
        let retry = self.parked.iter().map(|(at, _)| *at).min_by(f64::total_cmp);
        let mem = self.mem_retry_at.filter(|_| !self.queue.is_empty() || !self.parked.is_empty());
        match (retry, mem) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Nothing runs and nothing waits to start.
    pub fn is_idle(&self) -> bool {
        self.running == 0 && self.queue.is_empty() && self.parked.is_empty()
    }

    /// Whether jobs may still start.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether a halt policy stopped the run.
    pub fn is_halted(&self) -> bool {
        matches!(self.state, State::Halted(_))
    }

    /// Whether a `now` halt stopped the run: the running jobs are to be stopped.
    pub fn halting_now(&self) -> bool {
        self.state == State::Halted(HaltWhen::Now)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Attempts started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Jobs queued (retries waiting for their delay included).
    pub fn queued(&self) -> usize {
        self.queue.len() + self.parked.len()
    }

    /// Jobs done so far (succeeded, failed).
    pub fn counts(&self) -> Counts {
        self.counts
    }
}
