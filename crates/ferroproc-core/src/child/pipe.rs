//! The parent's end of one pipe to the child, and what the parent does with it.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use mio::{Interest, Token};

use super::queue::WriteQueue;

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
    pub(super) fn reads(self) -> bool {
        matches!(self, Role::Read | Role::Terminal)
    }

    pub(super) fn writes(self) -> bool {
        matches!(self, Role::Write | Role::Terminal)
    }

    /// What the poll watches for while reading is on. The write end of a
    /// pipe is never readable: watching it for reading reports only the
    /// reader going away (EPOLLERR), without a wake-up each time the child
    /// reads; it is watched for writing only while its queue is stuck
    /// ([`Pipe::stalled`]).
    pub fn interest(self) -> Interest {
        match self {
            Role::Read | Role::Write => Interest::READABLE,
            Role::Terminal => Interest::READABLE | Interest::WRITABLE,
        }
    }
}

/// The parent's end of one pipe (or the terminal's master).
#[derive(Debug)]
pub struct Pipe<C> {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) token: Token,
    pub(super) role: Role,
    pub(super) queue: WriteQueue<C>,
    /// Close once the queue has been written (closeChildFD, loseConnection).
    pub(super) closing: bool,
    /// Grown to a big pipe already.
    pub(super) grown: bool,
    /// Reading this pipe alone is paused (an asyncio `pause_reading`).
    pub(super) paused: bool,
    /// An input pipe whose queue the pipe could not take: watched for
    /// writing until it drains.
    pub(super) stalled: bool,
}

impl<C> Pipe<C> {
    pub(super) fn new(end: OwnedFd, token: Token, role: Role) -> Self {
        Pipe {
            fd: Arc::new(end),
            token,
            role,
            queue: WriteQueue::default(),
            closing: false,
            grown: false,
            paused: false,
            stalled: false,
        }
    }

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
