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

/// A child's pipes by child fd, in fd order: a map with a `BTreeMap`'s
/// methods over a vector sized to the pipes the child was started with.
/// A child has 0-3 pipes as a rule, and a `BTreeMap` allocates a node for
/// eleven (over 800 bytes per live child with pipes).
#[derive(Debug)]
pub(super) struct PipeMap<C>(Vec<(i32, Pipe<C>)>);

impl<C> Default for PipeMap<C> {
    fn default() -> Self {
        PipeMap(Vec::new())
    }
}

impl<C> PipeMap<C> {
    fn find(&self, fd: i32) -> Result<usize, usize> {
        self.0.binary_search_by_key(&fd, |(k, _)| *k)
    }

    /// Room for `n` more pipes, exactly (a child's pipes are added at once).
    pub(super) fn reserve_exact(&mut self, n: usize) {
        self.0.reserve_exact(n);
    }

    pub(super) fn insert(&mut self, fd: i32, pipe: Pipe<C>) -> Option<Pipe<C>> {
        match self.find(fd) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, pipe)),
            Err(i) => {
                self.0.insert(i, (fd, pipe));
                None
            }
        }
    }

    pub(super) fn get(&self, fd: &i32) -> Option<&Pipe<C>> {
        self.find(*fd).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn get_mut(&mut self, fd: &i32) -> Option<&mut Pipe<C>> {
        self.find(*fd).ok().map(|i| &mut self.0[i].1)
    }

    pub(super) fn remove(&mut self, fd: &i32) -> Option<Pipe<C>> {
        self.find(*fd).ok().map(|i| self.0.remove(i).1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &i32> {
        self.0.iter().map(|(k, _)| k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Pipe<C>> {
        self.0.iter().map(|(_, p)| p)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&i32, &Pipe<C>)> {
        self.0.iter().map(|(k, p)| (k, p))
    }
}

impl<C> std::ops::Index<&i32> for PipeMap<C> {
    type Output = Pipe<C>;

    fn index(&self, fd: &i32) -> &Pipe<C> {
        self.get(fd).expect("no pipe on that child fd")
    }
}

impl<C> IntoIterator for PipeMap<C> {
    type Item = (i32, Pipe<C>);
    type IntoIter = std::vec::IntoIter<(i32, Pipe<C>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
