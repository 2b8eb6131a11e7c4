//! Flow control: the producer feeding the child's input (Twisted's
//! `registerProducer`) with its high- and low-water marks, and pausing the
//! reading of the child's output, all of it or one pipe.

use std::io;

use mio::unix::SourceFd;
use mio::{Interest, Registry};

use super::{Child, Event, ProducerRegistered, Role, INPUT_FD};

/// Above this many queued input bytes a streaming producer is paused
/// (Twisted's `FileDescriptor.bufferSize`; asyncio's default high-water mark).
pub const HIGH_WATER: usize = 64 * 1024;

/// Flow-control state of the producer feeding the child's input.
#[derive(Debug, Clone, Copy)]
pub(super) struct Producer {
    pub(super) streaming: bool,
    pub(super) paused: bool,
    pub(super) generation: u64,
}

/// The flow control of a child's input, made when a producer is first
/// registered or the marks are set: most children never have either, and
/// every live child would otherwise carry its 40 bytes.
#[derive(Debug, Default)]
pub(super) struct Flow {
    pub(super) producer: Option<Producer>,
    pub(super) write_limits: WriteLimits,
    pub(super) next_generation: u64,
}

/// When a streaming producer is paused and resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// Paused once more than this many bytes are queued.
    pub high: usize,
    /// Resumed once at most this many are (0: when the queue has drained,
    /// as in Twisted).
    pub low: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits { high: HIGH_WATER, low: 0 }
    }
}

impl<C: AsRef<[u8]>> Child<C> {
    /// Register the producer feeding the input.
    pub fn register_producer(&mut self, streaming: bool) -> ProducerRegistered {
        if self.flow.as_ref().is_some_and(|f| f.producer.is_some()) {
            return ProducerRegistered::Busy;
        }
        let Some(pipe) = self.pipes.get(&INPUT_FD).filter(|p| p.role.writes()) else {
            return ProducerRegistered::NoInput;
        };
        let idle = pipe.queue.is_empty();
        let flow = self.flow.get_or_insert_with(Box::default);
        flow.next_generation += 1;
        let generation = flow.next_generation;
        flow.producer = Some(Producer { streaming, paused: false, generation });
        if !streaming && idle {
            self.outbox.push_back(Event::ResumeProducer { generation });
        }
        ProducerRegistered::Yes { generation }
    }

    /// Forget the registered producer. Returns true if it was a streaming
    /// producer we had paused: the caller resumes it, since nobody else
    /// would (relaying one process into another's stdin hung that way).
    pub fn unregister_producer(&mut self) -> bool {
        self.take_producer().is_some_and(|p| p.streaming && p.paused)
    }

    /// Forget the producer, returning it.
    pub(super) fn take_producer(&mut self) -> Option<Producer> {
        self.flow.as_mut()?.producer.take()
    }

    /// Set the marks at which a streaming producer is paused and resumed.
    /// A producer paused above the old high mark is resumed at the next
    /// flush that leaves the queue at or below the new low one.
    pub fn set_write_limits(&mut self, limits: WriteLimits) {
        let limits = WriteLimits { high: limits.high, low: limits.low.min(limits.high) };
        self.flow.get_or_insert_with(Box::default).write_limits = limits;
    }

    /// The marks [`Child::set_write_limits`] set.
    pub fn write_limits(&self) -> WriteLimits {
        self.flow.as_ref().map_or_else(WriteLimits::default, |f| f.write_limits)
    }

    /// How many bytes are queued for child fd `fd` (0 when it has no open
    /// input pipe).
    pub fn queued(&self, fd: i32) -> usize {
        self.pipes.get(&fd).map_or(0, |p| p.queue.len())
    }

    /// After a write to the input: whether the streaming producer must be
    /// paused now (its generation), the state already saying it is.
    pub(super) fn pause_if_over(&mut self, queued: usize) -> Option<u64> {
        if queued <= self.write_limits().high {
            return None;
        }
        let p = self.flow.as_mut()?.producer.as_mut().filter(|p| p.streaming && !p.paused)?;
        p.paused = true;
        Some(p.generation)
    }

    /// After a flush of the input left `queued` bytes: a pull producer (on
    /// a drained queue) is asked for more, a streaming one we paused is
    /// resumed once the queue is at or below the low mark (Twisted's
    /// `doWrite`, asyncio's `resume_writing`).
    pub(super) fn resume_if_under(&mut self, queued: usize) {
        let low = self.write_limits().low;
        let Some(p) = self.flow.as_mut().and_then(|f| f.producer.as_mut()) else { return };
        let due = if p.streaming { p.paused && queued <= low } else { queued == 0 };
        if due {
            p.paused = false;
            let generation = p.generation;
            self.outbox.push_back(Event::ResumeProducer { generation });
        }
    }

    /// Stop or restart reading the child's output (the transport's
    /// `pauseProducing`/`resumeProducing`): the read pipes leave the poll,
    /// and re-adding them raises a fresh edge, so nothing buffered is missed.
    /// While output is not read an idle time limit stands still.
    ///
    /// # Errors
    /// A registration failure on resume.
    pub fn set_reading(&mut self, on: bool, registry: &Registry) -> io::Result<()> {
        if self.reading_paused != on {
            return Ok(());
        }
        self.reading_paused = !on;
        self.note_reading();
        let fds: Vec<i32> = self.pipes.keys().copied().collect();
        for fd in fds {
            self.reregister(fd, registry)?;
        }
        Ok(())
    }

    /// [`Child::set_reading`] for the read pipe of child fd `fd` alone (an
    /// asyncio pipe transport's `pause_reading`/`resume_reading`). Nothing
    /// happens for an fd that is not an open read pipe.
    ///
    /// # Errors
    /// A registration failure on resume.
    pub fn set_fd_reading(&mut self, fd: i32, on: bool, registry: &Registry) -> io::Result<()> {
        let Some(pipe) = self.pipes.get_mut(&fd).filter(|p| p.role == Role::Read) else { return Ok(()) };
        if pipe.paused != on {
            return Ok(());
        }
        pipe.paused = !on;
        self.note_reading();
        self.reregister(fd, registry)
    }

    /// Whether the output of `fd` is being read now.
    pub fn is_reading(&self, fd: i32) -> bool {
        !self.reading_paused && self.pipes.get(&fd).is_some_and(|p| p.role.reads() && !p.paused)
    }

    /// Register pipe `fd` for what it is to be polled for now.
    fn reregister(&self, fd: i32, registry: &Registry) -> io::Result<()> {
        let Some(pipe) = self.pipes.get(&fd) else { return Ok(()) };
        let reading = !self.reading_paused && !pipe.paused;
        let interest = match (pipe.role, reading) {
            (Role::Write, _) => return Ok(()),
            (Role::Read, false) => None,
            (Role::Terminal, false) => Some(Interest::WRITABLE),
            (role, true) => Some(role.interest()),
        };
        let raw = pipe.raw_fd();
        let _ = registry.deregister(&mut SourceFd(&raw));
        if let Some(i) = interest {
            registry.register(&mut SourceFd(&raw), pipe.token, i)?;
        }
        Ok(())
    }
}
