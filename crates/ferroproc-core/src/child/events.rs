//! What a [`Child`](super::Child) tells its host, and the host's answers:
//! events to turn into protocol calls, reads, writes and signals.

use std::collections::VecDeque;
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

/// Buffers a child has let go of, for its host to release after unlocking
/// (see [`Child::take_trash`](super::Child::take_trash)): nothing is kept
/// between one lock and the next, so a live child keeps 8 bytes for it
/// rather than a `Vec`'s 24.
#[derive(Debug)]
// The box is the point (see above).
#[allow(clippy::box_collection)]
pub(super) struct Trash<C>(Option<Box<Vec<C>>>);

impl<C> Default for Trash<C> {
    fn default() -> Self {
        Trash(None)
    }
}

impl<C> Trash<C> {
    /// The list, to add to.
    pub(super) fn vec(&mut self) -> &mut Vec<C> {
        self.0.get_or_insert_with(Box::default)
    }

    pub(super) fn push(&mut self, chunk: C) {
        self.vec().push(chunk);
    }

    pub(super) fn extend(&mut self, chunks: Vec<C>) {
        match &mut self.0 {
            _ if chunks.is_empty() => {}
            Some(list) => list.extend(chunks),
            None => self.0 = Some(Box::new(chunks)),
        }
    }

    /// Everything in it, leaving it empty.
    pub(super) fn take(&mut self) -> Vec<C> {
        self.0.take().map(|v| *v).unwrap_or_default()
    }
}

/// A child's events waiting for the host, in order, with a `VecDeque`'s
/// methods. Nothing is allocated until the first event (most live children
/// have none for most of their lives: S6 keeps 10,000 idle ones), and once
/// delivered, a burst's room is let go (at most
/// [`KEEP_SLOTS`](super::queue::KEEP_SLOTS) entries are kept).
#[derive(Debug)]
// The box is the point: 8 bytes in every child instead of a `VecDeque`'s 32.
#[allow(clippy::box_collection)]
pub(super) struct Outbox<C>(Option<Box<VecDeque<Event<C>>>>);

impl<C> Default for Outbox<C> {
    fn default() -> Self {
        Outbox(None)
    }
}

impl<C> Outbox<C> {
    fn list(&mut self) -> &mut VecDeque<Event<C>> {
        self.0.get_or_insert_with(Box::default)
    }

    pub(super) fn push_back(&mut self, event: Event<C>) {
        self.list().push_back(event);
    }

    pub(super) fn extend(&mut self, events: impl IntoIterator<Item = Event<C>>) {
        let mut events = events.into_iter().peekable();
        if events.peek().is_some() {
            self.list().extend(events);
        }
    }

    /// The first event. Once the list is empty it keeps little room: none
    /// after a burst, a few entries otherwise (a child with steady output
    /// does not allocate per event).
    pub(super) fn pop_front(&mut self) -> Option<Event<C>> {
        let list = self.0.as_mut()?;
        let event = list.pop_front();
        if list.is_empty() && list.capacity() > super::queue::KEEP_SLOTS {
            // Empty: only memory is freed here, no host buffer.
            self.0 = None;
        }
        event
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|l| l.is_empty())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Event<C>> {
        self.0.iter().flat_map(|l| l.iter())
    }

    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    /// Room for how many events (0 before the first).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.capacity())
    }
}

impl<C> IntoIterator for Outbox<C> {
    type Item = Event<C>;
    type IntoIter = std::collections::vec_deque::IntoIter<Event<C>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|l| *l).unwrap_or_default().into_iter()
    }
}
