//! One child process's lifecycle, as a host-neutral state machine.
//!
//! A [`Child`] owns the parent's ends of the child's pipes (or its terminal's
//! master), their write queues, the pidfd, the exit status and the
//! producer's flow-control flags. I/O readiness, exit and the protocol's
//! requests drive it; it answers with [`Event`]s, in the order a host must
//! turn them into protocol calls (Twisted's order):
//!
//! - `Data`/`Lost` per pipe: output, then exactly one loss per pipe (a
//!   terminal reports output as fd 1 and has no losses);
//! - `Exited` once, when the child has been reaped;
//! - `Ended` once, last: after `Exited` and after every pipe's loss has been
//!   emitted, so a host that delivers in order has delivered them all first.
//!
//! Closing a read pipe on the parent's side withdraws its undelivered output
//! (the protocol asked not to hear more). Writes are only queued here; the
//! host flushes them, normally once at the end of each loop turn, so that
//! everything one turn wrote leaves in one `writev` per fd.
//!
//! Nothing here blocks, takes a lock or calls back: a host keeps a `Child`
//! behind its own lock ([`cell::ChildCell`]) and delivers the events with that
//! lock released. Buffers the child no longer needs are not dropped but put
//! in a trash list the host empties after unlocking.

pub mod cell;
pub mod queue;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::reap::{self, Exit};
use crate::sys;

pub use queue::{Flushed, WriteQueue};

/// The child fd that input goes to: the stdin pipe, or the terminal. The one
/// definition every input-side rule (writes, producers, closing) uses.
pub const INPUT_FD: i32 = 0;

/// The child fd a terminal's output is reported as (as in Twisted).
pub const TERMINAL_OUTPUT_FD: i32 = 1;

/// Above this many queued input bytes a streaming producer is paused
/// (Twisted's `FileDescriptor.bufferSize`).
pub const HIGH_WATER: usize = 64 * 1024;

/// Pipes that carry bulk data are grown to this size where the user's pipe
/// quota allows: fewer wake-ups and larger reads.
const BIG_PIPE: libc::c_int = 1 << 20;

/// What the parent does with one of its fds to the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The child writes, the parent reads (`'r'` in childFDs).
    Read,
    /// The parent writes, the child reads (`'w'`).
    Write,
    /// A terminal's master: both directions on one fd.
    Terminal,
}

impl Role {
    fn reads(self) -> bool {
        matches!(self, Role::Read | Role::Terminal)
    }

    fn writes(self) -> bool {
        matches!(self, Role::Write | Role::Terminal)
    }

    /// What the poll watches for while reading is on.
    pub fn interest(self) -> Interest {
        match self {
            Role::Read => Interest::READABLE,
            Role::Write => Interest::WRITABLE,
            Role::Terminal => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

/// The parent's end of one pipe (or the terminal's master).
#[derive(Debug)]
pub struct Pipe<C> {
    fd: Arc<OwnedFd>,
    token: Token,
    role: Role,
    queue: WriteQueue<C>,
    /// Close once the queue has been written (closeChildFD, loseConnection).
    closing: bool,
    grown: bool,
}

impl<C> Pipe<C> {
    /// The parent's fd number.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The poll token this pipe is registered under.
    pub fn token(&self) -> Token {
        self.token
    }

    /// What the parent does with it.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// One protocol call for the host to make, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<C> {
    /// `childDataReceived(fd, data)`.
    Data { fd: i32, data: C },
    /// `childConnectionLost(fd)`.
    Lost { fd: i32 },
    /// `processExited(reason)`: the status is [`Child::exit`].
    Exited,
    /// `processEnded(reason)`: the last event.
    Ended,
    /// The registered producer (of this `generation`) should produce again.
    ResumeProducer { generation: u64 },
    /// The input is gone: stop the registered producer (of this `generation`)
    /// and forget it.
    StopProducer { generation: u64 },
}

/// Flow-control state of the producer feeding the child's input.
#[derive(Debug, Clone, Copy)]
struct Producer {
    streaming: bool,
    paused: bool,
    generation: u64,
}

/// What reading one fd produced (see [`crate::io::read_available`]).
#[derive(Debug)]
pub struct ReadResult<C> {
    pub chunks: Vec<C>,
    /// End of stream (EOF, or EIO on a terminal's master).
    pub eof: bool,
}

/// An fd to read from, taken out of the child so the read itself runs
/// without the child's lock (the fd stays open while this is held).
#[derive(Debug, Clone)]
pub struct ReadSource {
    pub fd: Arc<OwnedFd>,
    /// A terminal's master: read until EAGAIN or EIO (no short-read shortcut).
    pub terminal: bool,
}

/// The outcome of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queued {
    /// The child now has queued output: the host must flush it this turn.
    pub needs_flush: bool,
    /// Pause the registered streaming producer now (the queue is over
    /// [`HIGH_WATER`]); the state already says it is paused.
    pub pause_producer: Option<u64>,
}

/// A write to a child fd that has no open input pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOpen;

/// What registering a producer led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerRegistered {
    /// Registered under this generation; a pull producer on an idle pipe is
    /// asked for data through a queued [`Event::ResumeProducer`].
    Yes { generation: u64 },
    /// There is no input to feed: stop the producer at once.
    NoInput,
    /// Another producer is registered already.
    Busy,
}

/// Why a signal could not be sent.
#[derive(Debug)]
pub enum SignalError {
    /// The child has been reaped (or its group is empty).
    Gone,
    /// The child has no process group of its own.
    NoGroup,
    Os(io::Error),
}

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
enum Phase {
    Watching,
    /// SIGTERM sent; SIGKILL at `kill_at`.
    Terminated {
        kill_at: f64,
    },
    Done,
}

#[derive(Debug)]
struct Watch {
    limits: TimeLimits,
    started: f64,
    last_output: f64,
    phase: Phase,
    timed_out: Option<TimedOut>,
}

/// One child's state: see the module documentation.
#[derive(Debug)]
pub struct Child<C> {
    pid: Option<libc::pid_t>,
    pidfd: Option<OwnedFd>,
    exit: Option<Exit>,
    terminal: bool,
    pipes: BTreeMap<i32, Pipe<C>>,
    /// A terminal's master after EIO, kept open (unwatched) until the child
    /// is reaped: closing it at once would hang up the terminal and SIGHUP a
    /// child that has closed its fds but not exited yet.
    held_master: Option<Arc<OwnedFd>>,
    reading_paused: bool,
    producer: Option<Producer>,
    next_generation: u64,
    exited_emitted: bool,
    ended_emitted: bool,
    outbox: VecDeque<Event<C>>,
    trash: Vec<C>,
    group: GroupPolicy,
    watch: Option<Watch>,
}

impl<C: AsRef<[u8]>> Child<C> {
    /// A started child: its pid, its pidfd where the kernel has them, and
    /// whether its stdio is a terminal.
    pub fn new(pid: libc::pid_t, pidfd: Option<OwnedFd>, terminal: bool) -> Self {
        Child {
            pid: Some(pid),
            pidfd,
            exit: None,
            terminal,
            pipes: BTreeMap::new(),
            held_master: None,
            reading_paused: false,
            producer: None,
            next_generation: 0,
            exited_emitted: false,
            ended_emitted: false,
            outbox: VecDeque::new(),
            trash: Vec::new(),
            group: GroupPolicy::default(),
            watch: None,
        }
    }

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

    /// Add the parent's end of a pipe for child fd `fd` (for a terminal:
    /// its master, under [`INPUT_FD`]), registered under `token`.
    pub fn add_pipe(&mut self, fd: i32, end: OwnedFd, token: Token, role: Role) {
        let pipe = Pipe { fd: Arc::new(end), token, role, queue: WriteQueue::default(), closing: false, grown: false };
        self.pipes.insert(fd, pipe);
    }

    // -- what the host and the transport read ------------------------------

    /// The pid until the child has been reaped.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.pid
    }

    /// The pidfd, until the child has been reaped.
    pub fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// How the child ended, once reaped.
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// Whether stdio is a terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// The open pipes, by child fd (a terminal's master under [`INPUT_FD`]).
    pub fn pipes(&self) -> impl Iterator<Item = (i32, &Pipe<C>)> {
        self.pipes.iter().map(|(fd, p)| (*fd, p))
    }

    /// The terminal's master fd while it is open.
    pub fn terminal_fd(&self) -> Option<RawFd> {
        self.terminal().map(|fd| fd.as_raw_fd())
    }

    /// The terminal's master while it is open (for its ioctls).
    pub fn terminal(&self) -> Option<BorrowedFd<'_>> {
        self.pipes.get(&INPUT_FD).filter(|p| p.role == Role::Terminal).map(|p| p.fd.as_fd())
    }

    /// Whether `Ended` has been emitted.
    pub fn is_ended(&self) -> bool {
        self.ended_emitted
    }

    /// The next protocol call, in order.
    pub fn next_event(&mut self) -> Option<Event<C>> {
        self.outbox.pop_front()
    }

    /// Whether events are waiting.
    pub fn has_events(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Buffers to release (outside any lock).
    pub fn take_trash(&mut self) -> Vec<C> {
        std::mem::take(&mut self.trash)
    }

    /// Whether data is queued for child fd `fd`.
    pub fn has_queued(&self, fd: i32) -> bool {
        self.pipes.get(&fd).is_some_and(|p| !p.queue.is_empty())
    }

    /// Whether queued input, or an input pipe waiting to close, needs a flush.
    pub fn wants_flush(&self) -> bool {
        self.pipes.values().any(|p| p.role.writes() && (!p.queue.is_empty() || p.closing))
    }

    // -- reading ---------------------------------------------------------------

    /// The fd to read for the event on `token`, unless reading is paused or
    /// that pipe has gone.
    pub fn read_source(&self, fd: i32, token: Token) -> Option<ReadSource> {
        if self.reading_paused {
            return None;
        }
        let p = self.pipes.get(&fd).filter(|p| p.token == token && p.role.reads())?;
        Some(ReadSource { fd: p.fd.clone(), terminal: p.role == Role::Terminal })
    }

    /// Record what a read of `fd` (the pipe registered under `token`)
    /// produced. Output for a pipe closed in the meantime is dropped; at end
    /// of stream the pipe closes (a terminal's master is held open, out of
    /// `registry`, until the child is reaped).
    pub fn on_read(&mut self, fd: i32, token: Token, read: ReadResult<C>, registry: &Registry) {
        let Some(pipe) = self.pipes.get_mut(&fd).filter(|p| p.token == token) else {
            self.trash.extend(read.chunks);
            return;
        };
        let role = pipe.role;
        if read.chunks.iter().any(|c| c.as_ref().len() >= 64 * 1024) && !pipe.grown {
            pipe.grown = true;
            let _ = sys::set_pipe_size(pipe.raw_fd(), BIG_PIPE);
        }
        if !read.chunks.is_empty() {
            if let Some(w) = self.watch.as_mut().filter(|w| w.limits.idle.is_some()) {
                w.last_output = crate::timers::now();
            }
        }
        let out_fd = if role == Role::Terminal { TERMINAL_OUTPUT_FD } else { fd };
        self.outbox.extend(read.chunks.into_iter().map(|data| Event::Data { fd: out_fd, data }));
        if read.eof {
            if role == Role::Terminal {
                let pipe = self.pipes.remove(&fd).expect("found above");
                if self.exit.is_none() {
                    let _ = registry.deregister(&mut SourceFd(&pipe.raw_fd()));
                    self.held_master = Some(pipe.fd.clone());
                }
                self.retire(fd, pipe);
            } else {
                self.close_now(fd, false);
            }
        }
    }

    /// Stop or restart reading the child's output (the transport's
    /// `pauseProducing`/`resumeProducing`): the read pipes leave the poll,
    /// and re-adding them raises a fresh edge, so nothing buffered is missed.
    ///
    /// # Errors
    /// A registration failure on resume.
    pub fn set_reading(&mut self, on: bool, registry: &Registry) -> io::Result<()> {
        if self.reading_paused != on {
            return Ok(());
        }
        self.reading_paused = !on;
        for pipe in self.pipes.values() {
            let fd = pipe.raw_fd();
            let interest = match (pipe.role, on) {
                (Role::Write, _) => continue,
                (Role::Read, false) => None,
                (Role::Terminal, false) => Some(Interest::WRITABLE),
                (role, true) => Some(role.interest()),
            };
            let _ = registry.deregister(&mut SourceFd(&fd));
            if let Some(i) = interest {
                registry.register(&mut SourceFd(&fd), pipe.token, i)?;
            }
        }
        Ok(())
    }

    // -- exit ------------------------------------------------------------------

    /// Reap the child if it has exited (its pidfd, or with `pid_fallback`
    /// its pid, which a waiter saw exit without reaping it). Returns whether
    /// it was reaped now.
    ///
    /// # Errors
    /// Unexpected `waitid` errors (the host logs them).
    pub fn try_reap(&mut self, pid_fallback: bool) -> io::Result<bool> {
        if self.exit.is_some() {
            return Ok(false);
        }
        if self.group.kill_on_exit && self.group.pgid.is_some() {
            // While the child is a zombie its group id cannot be reused:
            // kill the rest of the group before reaping it.
            let exited = match (&self.pidfd, self.pid) {
                (Some(fd), _) => reap::exited_pidfd(fd.as_raw_fd())?,
                (None, Some(_)) => pid_fallback,
                _ => false,
            };
            if exited {
                let _ = self.signal_group(libc::SIGKILL);
            }
        }
        let exit = match (&self.pidfd, self.pid) {
            (Some(fd), _) => reap::try_wait_pidfd(fd.as_raw_fd())?,
            (None, Some(pid)) if pid_fallback => reap::try_wait_pid(pid)?,
            _ => None,
        };
        match exit {
            Some(exit) => {
                self.on_exit(exit);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Record how the child ended: the pid is forgotten at once (it may be
    /// reused from now on), `Exited` is emitted, and `Ended` if every pipe has
    /// closed.
    pub fn on_exit(&mut self, exit: Exit) {
        if self.exit.is_some() {
            return;
        }
        self.exit = Some(exit);
        self.pid = None;
        self.pidfd = None;
        self.held_master = None;
        self.exited_emitted = true;
        self.outbox.push_back(Event::Exited);
        self.maybe_end();
    }

    /// Send signal `sig`: through the pidfd (never a recycled pid), or to the
    /// pid while it is known to be ours (not yet reaped).
    ///
    /// # Errors
    /// [`SignalError::Gone`] once the child has been reaped.
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

    // -- writing ---------------------------------------------------------------

    /// Queue `data` for child fd `fd` ([`INPUT_FD`] for `write`). A closed or
    /// read-only fd drops the data, unless `strict` (`writeToChild`), where
    /// an fd without an open input pipe is [`NotOpen`]. Writes made after
    /// `closeStdin` but before the close has happened still go out, as in
    /// Twisted.
    ///
    /// # Errors
    /// [`NotOpen`] (only when `strict`).
    pub fn write(&mut self, fd: i32, data: C, strict: bool) -> Result<Queued, NotOpen> {
        let pipe = match self.pipes.get_mut(&fd) {
            Some(p) if p.role.writes() => p,
            // Twisted accepts (and never sends) writes to a read pipe.
            Some(_) => {
                self.trash.push(data);
                return Ok(Queued::default());
            }
            None => {
                self.trash.push(data);
                return if strict { Err(NotOpen) } else { Ok(Queued::default()) };
            }
        };
        let was_empty = pipe.queue.is_empty();
        pipe.queue.push(data, &mut self.trash);
        let mut out = Queued { needs_flush: was_empty && !pipe.queue.is_empty(), pause_producer: None };
        if pipe.queue.len() > 64 * 1024 && !pipe.grown {
            pipe.grown = true;
            let _ = sys::set_pipe_size(pipe.raw_fd(), BIG_PIPE);
        }
        if fd == INPUT_FD && pipe.queue.len() > HIGH_WATER {
            if let Some(p) = self.producer.as_mut().filter(|p| p.streaming && !p.paused) {
                p.paused = true;
                out.pause_producer = Some(p.generation);
            }
        }
        Ok(out)
    }

    /// Write what is queued, on every input pipe, as far as the pipes take
    /// it; close the pipes whose close was requested once they are drained.
    /// A pipe whose reader has gone is closed (its queue is discarded, as in
    /// Twisted). Returns whether anything is still queued (the pipe was full).
    pub fn flush(&mut self) -> bool {
        let fds: Vec<i32> = self.pipes.iter().filter(|(_, p)| p.role.writes()).map(|(fd, _)| *fd).collect();
        let mut pending = false;
        for fd in fds {
            pending |= self.flush_fd(fd);
        }
        pending
    }

    /// [`Child::flush`] for one fd (on a writable event). Returns whether
    /// data is still queued there.
    pub fn flush_fd(&mut self, fd: i32) -> bool {
        let Some(pipe) = self.pipes.get_mut(&fd).filter(|p| p.role.writes()) else {
            return false;
        };
        let raw = pipe.raw_fd();
        let role = pipe.role;
        match pipe.queue.flush(raw, &mut self.trash) {
            Ok(Flushed::Partly) => return true,
            Ok(Flushed::All) => {}
            Err(_) if role == Role::Terminal => {
                // The terminal's other side is gone: the read side sees EIO
                // and ends it; the data cannot be delivered any more.
                pipe.queue.discard(&mut self.trash);
            }
            Err(_) => {
                self.close_now(fd, false);
                return false;
            }
        }
        let pipe = self.pipes.get_mut(&fd).expect("still open");
        if pipe.closing {
            if role == Role::Terminal {
                self.close_terminal();
            } else {
                self.close_now(fd, false);
            }
            return false;
        }
        // The queue has drained: a pull producer is asked for more, a
        // streaming one we paused is resumed (Twisted's doWrite).
        if fd == INPUT_FD {
            if let Some(p) = self.producer.as_mut().filter(|p| !p.streaming || p.paused) {
                p.paused = false;
                let generation = p.generation;
                self.outbox.push_back(Event::ResumeProducer { generation });
            }
        }
        false
    }

    /// The child closed its end of an input pipe (the poll reported an error
    /// or hang-up on our end): what was queued cannot be delivered.
    pub fn on_write_closed(&mut self, fd: i32, token: Token) {
        if self.pipes.get(&fd).is_some_and(|p| p.token == token && p.role == Role::Write) {
            self.close_now(fd, false);
        }
    }

    // -- closing -----------------------------------------------------------------

    /// `closeChildFD(fd)`: an input pipe closes once its queue is written
    /// (at the next flush); an output pipe closes now and its undelivered
    /// output is withdrawn. Returns whether a flush is needed. Closing an fd
    /// that is not open does nothing.
    pub fn close_fd(&mut self, fd: i32) -> bool {
        let Some(pipe) = self.pipes.get_mut(&fd) else { return false };
        match pipe.role {
            Role::Write | Role::Terminal => {
                pipe.closing = true;
                true
            }
            Role::Read => {
                self.close_now(fd, true);
                false
            }
        }
    }

    /// `loseConnection()`: close every pipe (input after its queue is
    /// written; then stderr, stdout and the others, as Twisted orders them);
    /// a terminal after its queue is written. Returns whether a flush is needed.
    pub fn lose_connection(&mut self) -> bool {
        self.kill_group_if_lost();
        let mut order = vec![INPUT_FD, 2, 1];
        order.extend(self.pipes.keys().copied().filter(|fd| *fd > 2));
        let mut flush = false;
        for fd in order {
            flush |= self.close_fd(fd);
        }
        flush
    }

    /// Close the terminal now, whatever is queued (its output callback
    /// failed, as Twisted closes a connection whose `dataReceived` raised).
    pub fn close_terminal(&mut self) {
        if self.terminal_fd().is_some() {
            let pipe = self.pipes.remove(&INPUT_FD).expect("checked above");
            self.withdraw_output(TERMINAL_OUTPUT_FD);
            self.retire(INPUT_FD, pipe);
        }
    }

    /// Remove pipe `fd` at once and emit its loss; with `withdraw` (the
    /// parent closed it) its undelivered output goes too.
    fn close_now(&mut self, fd: i32, withdraw: bool) {
        let Some(pipe) = self.pipes.remove(&fd) else { return };
        if withdraw {
            self.withdraw_output(fd);
        }
        self.retire(fd, pipe);
    }

    /// Release a removed pipe: its queue to the trash, the producer stopped
    /// if it was the input, its loss emitted (terminals have none), and the
    /// end checked.
    fn retire(&mut self, fd: i32, mut pipe: Pipe<C>) {
        pipe.queue.discard(&mut self.trash);
        if fd == INPUT_FD {
            if let Some(p) = self.producer.take() {
                self.outbox.push_back(Event::StopProducer { generation: p.generation });
            }
        }
        if pipe.role != Role::Terminal {
            self.outbox.push_back(Event::Lost { fd });
        }
        // Dropping our reference closes the fd, which also takes it out of
        // the poll (no EPOLL_CTL_DEL needed), unless a read is in flight on
        // the loop thread: its events then find no pipe under that token.
        drop(pipe);
        self.maybe_end();
    }

    /// Withdraw output of `fd` that has not been delivered yet.
    fn withdraw_output(&mut self, fd: i32) {
        if !self.outbox.iter().any(|e| matches!(e, Event::Data { fd: f, .. } if *f == fd)) {
            return;
        }
        for e in std::mem::take(&mut self.outbox) {
            match e {
                Event::Data { fd: f, data } if f == fd => self.trash.push(data),
                e => self.outbox.push_back(e),
            }
        }
    }

    fn maybe_end(&mut self) {
        if self.exited_emitted && !self.ended_emitted && self.pipes.is_empty() {
            self.ended_emitted = true;
            self.outbox.push_back(Event::Ended);
        }
    }

    /// With `kill_on_lost`, SIGKILL the group (once: the policy is spent).
    fn kill_group_if_lost(&mut self) {
        if std::mem::take(&mut self.group.kill_on_lost) {
            let _ = self.signal_group(libc::SIGKILL);
        }
    }

    /// Close every pipe now, discarding queued input and undelivered
    /// output, with no losses emitted; the child stays ours (it is still
    /// reaped, and `Ended` follows its exit). The connection is lost: with
    /// `kill_on_lost` the group is killed.
    pub fn detach_pipes(&mut self) {
        self.kill_group_if_lost();
        for (_, mut pipe) in std::mem::take(&mut self.pipes) {
            pipe.queue.discard(&mut self.trash);
        }
        self.producer = None;
        for e in std::mem::take(&mut self.outbox) {
            match e {
                Event::Data { data, .. } => self.trash.push(data),
                Event::Exited => self.outbox.push_back(e),
                _ => {}
            }
        }
        self.maybe_end();
    }

    /// The host is going away: close every pipe now (queued input is
    /// discarded, the child sees EOF) and give up the child. Returns its pid
    /// and pidfd if it has not been reaped, for someone else to reap; no
    /// events follow.
    pub fn detach(&mut self) -> Option<(libc::pid_t, Option<OwnedFd>)> {
        self.ended_emitted = true;
        self.detach_pipes();
        self.outbox.clear();
        self.held_master = None;
        let pid = self.pid.take()?;
        Some((pid, self.pidfd.take()))
    }

    // -- producers -----------------------------------------------------------------

    /// Register the producer feeding the input.
    pub fn register_producer(&mut self, streaming: bool) -> ProducerRegistered {
        if self.producer.is_some() {
            return ProducerRegistered::Busy;
        }
        let Some(pipe) = self.pipes.get(&INPUT_FD).filter(|p| p.role.writes()) else {
            return ProducerRegistered::NoInput;
        };
        let idle = pipe.queue.is_empty();
        self.next_generation += 1;
        let generation = self.next_generation;
        self.producer = Some(Producer { streaming, paused: false, generation });
        if !streaming && idle {
            self.outbox.push_back(Event::ResumeProducer { generation });
        }
        ProducerRegistered::Yes { generation }
    }

    /// Forget the registered producer. Returns true if it was a streaming
    /// producer we had paused: the caller resumes it, since nobody else
    /// would (relaying one process into another's stdin hung that way).
    pub fn unregister_producer(&mut self) -> bool {
        self.producer.take().is_some_and(|p| p.streaming && p.paused)
    }
}
