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
mod control;
#[cfg(test)]
mod control_tests;
mod debug;
#[cfg(test)]
mod debug_tests;
mod events;
mod exit;
mod flow;
#[cfg(test)]
mod flow_tests;
mod pipe;
pub mod queue;
mod stop;
#[cfg(test)]
mod stop_tests;
#[cfg(test)]
mod tests;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::reap::Exit;
use crate::sys;

use control::Watch;
pub use control::{Group, GroupPolicy, TimeLimits, TimedOut, TimeoutKind};
pub use events::{Event, NotOpen, ProducerRegistered, Queued, ReadResult, ReadSource, SignalError};
use events::{Outbox, Trash};
use flow::Flow;
pub use flow::{WriteLimits, HIGH_WATER};
use pipe::PipeMap;
pub use pipe::{Pipe, Role};
pub use queue::{Flushed, WriteQueue};
pub use stop::{Stop, StopWhy};

/// The child fd that input goes to: the stdin pipe, or the terminal. The one
/// definition every input-side rule (writes, producers, closing) uses.
pub const INPUT_FD: i32 = 0;

/// The child fd a terminal's output is reported as (as in Twisted).
pub const TERMINAL_OUTPUT_FD: i32 = 1;

/// Pipes that carry bulk data are grown to this size where the user's pipe
/// quota allows: fewer wake-ups and larger reads.
const BIG_PIPE: libc::c_int = 1 << 20;

/// One child's state: see the module documentation.
#[derive(Debug)]
pub struct Child<C> {
    pid: Option<libc::pid_t>,
    pidfd: Option<OwnedFd>,
    /// Boxed, as are the other parts most children never use or use only
    /// at their end (`watch`, `tag`): a live child costs the parent its
    /// record, and S6 keeps 10,000 of them.
    exit: Option<Box<Exit>>,
    terminal: bool,
    pipes: PipeMap<C>,
    /// A terminal's master after EIO, kept open (unwatched) until the child
    /// is reaped: closing it at once would hang up the terminal and SIGHUP a
    /// child that has closed its fds but not exited yet.
    held_master: Option<Arc<OwnedFd>>,
    reading_paused: bool,
    /// The producer and the write marks (see `flow.rs`), boxed.
    flow: Option<Box<Flow>>,
    /// The input pipe was lost with data still queued for it (the child
    /// closed its end): asyncio reports that loss as a `BrokenPipeError`.
    input_broken: bool,
    exited_emitted: bool,
    ended_emitted: bool,
    outbox: Outbox<C>,
    trash: Trash<C>,
    group: GroupPolicy,
    watch: Option<Box<Watch>>,
    /// A group leader that has exited, kept a zombie while its pipes are
    /// open (see `exit.rs`).
    held: Option<Box<exit::Held>>,
    /// Its debug tag, when it was started with debug records on (`debug.rs`).
    tag: Option<Box<crate::debuglog::Tag>>,
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
            pipes: PipeMap::default(),
            held_master: None,
            reading_paused: false,
            flow: None,
            input_broken: false,
            exited_emitted: false,
            ended_emitted: false,
            outbox: Outbox::default(),
            trash: Trash::default(),
            group: GroupPolicy::default(),
            watch: None,
            held: None,
            tag: None,
        }
    }

    /// Add the parent's end of a pipe for child fd `fd` (for a terminal:
    /// its master, under [`INPUT_FD`]), registered under `token`.
    pub fn add_pipe(&mut self, fd: i32, end: OwnedFd, token: Token, role: Role) {
        self.pipes.insert(fd, Pipe::new(end, token, role));
    }

    /// Room for `n` more pipes, exactly: a host that adds all of a child's
    /// pipes at once says how many first (kept for the child's whole life).
    pub fn reserve_pipes(&mut self, n: usize) {
        self.pipes.reserve_exact(n);
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
        self.exit.as_deref().copied()
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
        self.trash.take()
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
        let p = self.pipes.get(&fd).filter(|p| p.token == token && p.role.reads() && !p.paused)?;
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
            self.note_output();
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
        // Through a list of its own: most writes hand nothing back, and
        // `Vec::new` allocates nothing.
        let mut done = Vec::new();
        pipe.queue.push(data, &mut done);
        self.trash.extend(done);
        let mut out = Queued { needs_flush: was_empty && !pipe.queue.is_empty(), pause_producer: None };
        if pipe.queue.len() > 64 * 1024 && !pipe.grown {
            pipe.grown = true;
            let _ = sys::set_pipe_size(pipe.raw_fd(), BIG_PIPE);
        }
        if fd == INPUT_FD {
            let queued = pipe.queue.len();
            out.pause_producer = self.pause_if_over(queued);
        }
        Ok(out)
    }

    /// Write what is queued, on every input pipe, as far as the pipes take
    /// it; close the pipes whose close was requested once they are drained.
    /// A pipe whose reader has gone is closed (its queue is discarded, as in
    /// Twisted). Returns whether anything is still queued (the pipe was full).
    pub fn flush(&mut self, registry: &Registry) -> bool {
        let fds: Vec<i32> = self.pipes.iter().filter(|(_, p)| p.role.writes()).map(|(fd, _)| *fd).collect();
        let mut pending = false;
        for fd in fds {
            pending |= self.flush_fd(fd, registry);
        }
        pending
    }

    /// [`Child::flush`] for one fd (on a writable event). Returns whether
    /// data is still queued there. A pipe that cannot take all of its queue
    /// is watched for writing (in `registry`) until it has.
    pub fn flush_fd(&mut self, fd: i32, registry: &Registry) -> bool {
        let Some(pipe) = self.pipes.get_mut(&fd).filter(|p| p.role.writes()) else {
            return false;
        };
        let raw = pipe.raw_fd();
        let role = pipe.role;
        let mut done = Vec::new();
        let flushed = pipe.queue.flush(raw, &mut done);
        self.trash.extend(done);
        if role == Role::Write {
            let stalled = matches!(flushed, Ok(Flushed::Partly));
            if pipe.stalled != stalled {
                pipe.stalled = stalled;
                let interest = if stalled { Interest::WRITABLE } else { role.interest() };
                let _ = registry.reregister(&mut SourceFd(&raw), pipe.token, interest);
            }
        }
        match flushed {
            Ok(Flushed::Partly) => {
                if fd == INPUT_FD && !pipe.closing {
                    let queued = pipe.queue.len();
                    self.resume_if_under(queued);
                }
                return true;
            }
            Ok(Flushed::All) => {}
            Err(_) if role == Role::Terminal => {
                // The terminal's other side is gone: the read side sees EIO
                // and ends it; the data cannot be delivered any more.
                pipe.queue.discard(self.trash.vec());
            }
            Err(_) => {
                // The reader has gone with our data unsent.
                self.input_broken |= fd == INPUT_FD;
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
        if fd == INPUT_FD {
            self.resume_if_under(0);
        }
        false
    }

    /// The child closed its end of an input pipe (the poll reported an error
    /// or hang-up on our end): what was queued cannot be delivered.
    pub fn on_write_closed(&mut self, fd: i32, token: Token) {
        let Some(pipe) = self.pipes.get(&fd).filter(|p| p.token == token && p.role == Role::Write) else { return };
        self.input_broken |= fd == INPUT_FD && !pipe.queue.is_empty();
        self.close_now(fd, false);
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

    /// Close the input pipe of child fd `fd` now, discarding what is
    /// queued (asyncio's `abort`); its loss is emitted. Returns whether
    /// there was such a pipe.
    pub fn abort_fd(&mut self, fd: i32) -> bool {
        if !self.pipes.get(&fd).is_some_and(|p| p.role == Role::Write) {
            return false;
        }
        self.close_now(fd, false);
        true
    }

    /// Whether the input pipe was lost with data queued for it (the child
    /// closed its end first).
    pub fn input_broken(&self) -> bool {
        self.input_broken
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
        pipe.queue.discard(self.trash.vec());
        if fd == INPUT_FD {
            if let Some(p) = self.take_producer() {
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
        self.note_reading();
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
            // Ended means reaped: a group leader held since its exit goes now.
            self.release_held();
            self.ended_emitted = true;
            self.outbox.push_back(Event::Ended);
        }
    }

    /// Close every pipe now, discarding queued input and undelivered
    /// output, with no losses emitted; the child stays ours (it is still
    /// reaped, and `Ended` follows its exit). The connection is lost: with
    /// `kill_on_lost` the group is killed.
    pub fn detach_pipes(&mut self) {
        self.kill_group_if_lost();
        for (_, mut pipe) in std::mem::take(&mut self.pipes) {
            pipe.queue.discard(self.trash.vec());
        }
        self.take_producer();
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
        if let Some(held) = self.held.take() {
            return Some((*held).into_parts());
        }
        let pid = self.pid.take()?;
        Some((pid, self.pidfd.take()))
    }
}
