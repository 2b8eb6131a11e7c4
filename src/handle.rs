//! What an engine shares with its transports and delayed calls: the core
//! loop (its lists of children with work, and its waker), the timers, the
//! calls queued from other threads, and the host's exception class for a
//! child that has gone.
//!
//! The engine holds the only strong reference. Transports and delayed calls
//! hold a [`Handle`] (a weak one): they push work through it, and once the
//! engine has gone (or the process forked) their calls do nothing.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

use ferroproc_core::evloop::Loop;
use ferroproc_core::timers::Timers;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::host::{Cell, PyHost};

/// A call queued with `callFromThread`.
pub(crate) struct Call {
    pub(crate) f: Py<PyAny>,
    pub(crate) args: Py<PyTuple>,
    pub(crate) kwargs: Option<Py<PyDict>>,
}

/// What is done at the end of a turn, once, on the loop's thread (queued
/// from any thread, with or without the GIL).
pub(crate) enum AfterTurn {
    /// Call a Python callable with no arguments.
    Call(Arc<Py<PyAny>>),
    /// Rust code that must run on the loop's thread (the jobs runner taking
    /// in a child one of its spawner threads started).
    Run(Box<dyn FnOnce(Python<'_>) + Send>),
}

/// What a timer does when it comes due.
pub(crate) enum TimerJob {
    /// Run a `DelayedCall` (the object).
    Call(Py<PyAny>),
    /// Enforce a child's time limits.
    Deadline(Arc<Cell>),
}

/// An engine's state shared with its transports and delayed calls.
pub(crate) struct Shared {
    pub(crate) lp: Loop<PyHost>,
    /// The exception class `signalProcess` raises once the child has gone
    /// (the host's: Twisted code catches Twisted's own class).
    pub(crate) exited_already: Option<Py<PyAny>>,
    pub(crate) timers: Mutex<Timers<TimerJob>>,
    pub(crate) calls: Mutex<Vec<Call>>,
    /// The thread driving the loop (inside `run()`, or bound by a host).
    pub(crate) driver: Mutex<Option<ThreadId>>,
    /// The transport of every child whose `processEnded` has not been
    /// delivered, by child. The engine's references to the children's Python
    /// objects go through these, so a garbage collector sees them: the engine
    /// visits each transport, each transport its protocol and producer.
    pub(crate) transports: Mutex<HashMap<usize, Py<PyAny>>>,
    /// asyncio's rule for writes made outside a loop turn: at once, to an
    /// idle pipe. Otherwise (Twisted's rule) they wait for the next turn, so
    /// that what one callback of the host writes leaves together.
    pub(crate) immediate_writes: bool,
    /// Calls to make once, at the end of the current turn (after every
    /// event, call and timer of it): the jobs runner reports a turn's
    /// finished jobs to Python this way, in one call. Shared references, so
    /// that a thread without the GIL can queue one (and wake the loop).
    pub(crate) after_turn: Mutex<Vec<AfterTurn>>,
    /// Children being started on another thread for this engine (the jobs
    /// runner's spawners): they count as live, so a host that watches the
    /// engine only while children live keeps watching it.
    pub(crate) starting: AtomicUsize,
}

/// A weak reference to an engine's [`Shared`] state.
pub(crate) type Handle = Weak<Shared>;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The shared state, unless the engine has gone or this process is a
    /// fork of the one that made it.
    pub(crate) fn get(handle: &Handle) -> Option<Arc<Shared>> {
        handle.upgrade().filter(|s| !s.lp.is_forked())
    }

    /// The key of `cell` in [`Shared::transports`].
    pub(crate) fn key(cell: &Arc<Cell>) -> usize {
        Arc::as_ptr(cell) as usize
    }

    /// Whether the calling thread may run protocol code for this engine:
    /// it is the thread driving the loop, or none is.
    pub(crate) fn on_driver_thread(&self) -> bool {
        lock(&self.driver).is_none_or(|t| t == std::thread::current().id())
    }
}
