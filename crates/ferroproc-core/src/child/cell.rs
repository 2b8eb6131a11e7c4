//! A [`Child`] shared between the loop and the threads that hold its
//! transport, behind one lock with a rule that the types enforce.
//!
//! The rule (the project's design decisions, `ARCHITECTURE.md` beside the
//! repository: decision 10): no lock is held while a host
//! runs its own code (for Python: while the GIL is taken or Python runs),
//! and nothing the host owns is released under a lock. [`ChildCell::with`]
//! is the only way in: its closure must be `Send`, so it cannot capture a
//! host's thread-bound token (pyo3's `Python<'py>` and `Bound` are `!Send`),
//! and every buffer the child lets go of while the lock is held is released
//! after the lock, when the closure has returned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::Child;

/// What a host puts into the core.
pub trait Host: 'static {
    /// An immutable byte buffer: written to the child without a copy, and
    /// what output is read into (Python `bytes` in the bindings).
    type Chunk: AsRef<[u8]> + Send;
    /// What the host keeps per child, under the same lock (the bindings:
    /// the protocol and producer objects).
    type Ext: Send;
}

/// A child's state and its host's data, locked together.
pub struct ChildCell<H: Host> {
    pid: libc::pid_t,
    terminal: bool,
    state: Mutex<(Child<H::Chunk>, H::Ext)>,
    /// Its poll tokens (pipes, then the pidfd) are consecutive: the first
    /// and how many, rather than a list (an allocation per child).
    first_token: usize,
    token_count: u32,
    /// On the loop's list of children with events to deliver.
    pub(crate) in_ready: AtomicBool,
    /// On the loop's list of children with writes to flush.
    pub(crate) in_dirty: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock leaves consistent state behind (every
    // operation is a few field updates): carry on rather than poison the loop.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<H: Host> ChildCell<H> {
    /// Wrap a freshly started child.
    /// `tokens` are the consecutive poll tokens registered for it.
    pub fn new(child: Child<H::Chunk>, ext: H::Ext, tokens: std::ops::Range<usize>) -> Self {
        let token_count = u32::try_from(tokens.len()).expect("fewer than 2^32 fds per child");
        ChildCell {
            pid: child.pid().unwrap_or(0),
            terminal: child.is_terminal(),
            state: Mutex::new((child, ext)),
            first_token: tokens.start,
            token_count,
            in_ready: AtomicBool::new(false),
            in_dirty: AtomicBool::new(false),
        }
    }

    /// The pid the child was started with (for names and messages; use the
    /// state's `pid()` to know whether it is still ours).
    pub fn started_pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The poll tokens registered for it.
    pub fn tokens(&self) -> impl Iterator<Item = mio::Token> {
        (self.first_token..self.first_token + self.token_count as usize).map(mio::Token)
    }

    /// Whether stdio is a terminal.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Run `f` on the locked state. `f` must be `Send`: it cannot use a
    /// host's thread-bound token, so it cannot call into the host. Buffers
    /// the child discarded meanwhile are released after the lock.
    pub fn with<R: Send>(&self, f: impl FnOnce(&mut Child<H::Chunk>, &mut H::Ext) -> R + Send) -> R {
        let (r, trash) = {
            let mut guard = lock(&self.state);
            let (child, ext) = &mut *guard;
            let r = f(child, ext);
            (r, child.take_trash())
        };
        drop(trash);
        r
    }

    /// Look at the state without waiting, for a garbage collector's
    /// traversal (which must not block, and runs no host code): `None` if
    /// the lock is held elsewhere. `f` must only read.
    pub fn try_peek<R>(&self, f: impl FnOnce(&Child<H::Chunk>, &H::Ext) -> R) -> Option<R> {
        let guard = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(f(&guard.0, &guard.1))
    }

    pub(crate) fn claim(flag: &AtomicBool) -> bool {
        !flag.swap(true, Ordering::AcqRel)
    }
}
