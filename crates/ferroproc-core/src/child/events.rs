//! What a [`Child`](super::Child) tells its host, and the host's answers:
//! events to turn into protocol calls, reads, writes and signals.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

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
    /// the high-water mark); the state already says it is paused.
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
    /// The child has exited (for its group: been reaped, or the group is empty).
    Gone,
    /// The child has no process group of its own.
    NoGroup,
    /// The child joined this group, which it does not lead.
    NotLeader(libc::pid_t),
    Os(io::Error),
}
