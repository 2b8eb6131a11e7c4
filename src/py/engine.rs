//! The engine: one mio `Poll` holding every pipe, PTY master and pidfd, a
//! queue of protocol callbacks, timers, and calls from other threads.
//!
//! Each loop turn: poll with the GIL released; do the I/O for the ready fds
//! (reads go straight into Python `bytes`); then deliver the queued callbacks
//! in order; then run due timers. Callbacks are delivered with no lock held,
//! so protocols can call back into transports and the engine freely.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtOrd};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::core::creds::{self, CredsError};
use crate::core::exec::{ExecError, ExecSpec};
use crate::core::fdplan::PreparedFds;
use crate::core::reap::{self, Exit};
use crate::core::spawn::{self, Method, Request, Stdio};
use crate::core::{pty, sys};

use super::errors::{os_error, os_error_file, spawn_error, SpawnWhat};
use super::process::{
    args_tuple, flush, lock, read_fd, refresh_sigpipe, refresh_sigpipe_now_and_then, Pipe, PipeKind, ProcState,
    Process, Shared, Target,
};

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);

/// A protocol callback (or other Python call) waiting for its turn.
pub(crate) enum Work {
    Data {
        proc: Arc<Shared>,
        fd: i32,
        data: Py<PyBytes>,
    },
    Lost {
        proc: Arc<Shared>,
        fd: i32,
    },
    Exited {
        proc: Arc<Shared>,
    },
    MaybeEnd {
        proc: Arc<Shared>,
    },
    /// Close a writer marked `closing` once its queue is empty (Twisted closes
    /// on the next turn, so a write right after `closeStdin` still goes out).
    CloseWriter {
        proc: Arc<Shared>,
        fd: i32,
    },
    ProducerResume {
        obj: Py<PyAny>,
    },
    Call {
        f: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    },
}

/// What other threads hand to the loop.
struct Inbox {
    waker: Waker,
    calls: Mutex<Vec<Work>>,
    reaped: Mutex<Vec<(Arc<Shared>, Exit)>>,
    pending: AtomicBool,
}

impl Inbox {
    fn post(&self) {
        self.pending.store(true, AtOrd::Release);
        let _ = self.waker.wake();
    }
}

struct TimerEntry {
    time: f64,
    seq: u64,
    call: Py<DelayedCall>,
}

impl PartialEq for TimerEntry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerEntry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.time.total_cmp(&self.time).then(o.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Timers {
    heap: BinaryHeap<TimerEntry>,
    seq: u64,
}

#[derive(Default)]
struct LoopFlags {
    running: bool,
    stopping: bool,
    thread: Option<ThreadId>,
}

struct PollState {
    poll: Poll,
    events: Events,
}

/// A ready fd as the poll reported it.
#[derive(Clone, Copy)]
struct Ready {
    token: usize,
    readable: bool,
    writable: bool,
    error: bool,
    read_closed: bool,
    write_closed: bool,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The engine behind a reactor (`ferroproc._core.Engine`).
///
/// `reason` turns a raw wait status (or None when unknown) into the object
/// passed to `processExited`/`processEnded`; `log_error(where, exc)` reports
/// an exception raised by a callback. Both come from the host, so Twisted code
/// can get Twisted's own classes.
#[pyclass(frozen, module = "ferroproc._core")]
pub struct Engine {
    poll: Mutex<PollState>,
    poll_fd: RawFd,
    registry: Registry,
    inbox: Arc<Inbox>,
    tokens: Mutex<HashMap<usize, (Arc<Shared>, Target)>>,
    next_token: Mutex<usize>,
    work: Mutex<VecDeque<Work>>,
    rereads: Mutex<Vec<(Arc<Shared>, Target)>>,
    timers: Mutex<Timers>,
    flags: Mutex<LoopFlags>,
    signal_r: OwnedFd,
    signal_w: OwnedFd,
    reason: Py<PyAny>,
    log_error: Py<PyAny>,
    /// The exception class `signalProcess` raises once a child is gone (the
    /// host's: Twisted code catches Twisted's own class).
    pub(crate) exited_already: Option<Py<PyAny>>,
    /// Children started and not yet ended (processEnded not yet delivered).
    live: AtomicUsize,
}

impl Engine {
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn push(&self, w: Work) {
        lock(&self.work).push_back(w);
        let on_loop = lock(&self.flags).thread == Some(std::thread::current().id());
        if !on_loop {
            let _ = self.inbox.waker.wake();
        }
    }

    fn add_token(&self, shared: &Arc<Shared>, target: Target) -> Token {
        let mut n = lock(&self.next_token);
        *n += 1;
        let t = *n;
        lock(&self.tokens).insert(t, (shared.clone(), target));
        Token(t)
    }

    /// Stop watching a pipe whose fd is about to be closed. No EPOLL_CTL_DEL:
    /// closing our only reference to the file removes it from the poll, and a
    /// stray event for a forgotten token is ignored (tokens are never reused).
    pub(crate) fn forget(&self, pipe: &Pipe) {
        lock(&self.tokens).remove(&pipe.token.0);
    }

    /// Record the exit and queue `processExited`.
    fn reaped(&self, proc: &Arc<Shared>, st: &mut ProcState, exit: Exit) {
        if st.exit.is_some() {
            return;
        }
        st.exit = Some(exit);
        st.pid = None;
        // The child is gone: a terminal master kept open after EIO can close now.
        st.held_master = None;
        if let Some((_fd, token)) = st.pidfd.take() {
            lock(&self.tokens).remove(&token.0);
        }
        lock(&self.work).push_back(Work::Exited { proc: proc.clone() });
    }

    /// Remove an output pipe (EOF, error, or the writer's reader gone) and
    /// queue `childConnectionLost`.
    fn lose_pipe(&self, proc: &Arc<Shared>, st: &mut ProcState, fd: i32) -> Option<Pipe> {
        let pipe = st.pipes.remove(&fd)?;
        self.forget(&pipe);
        if proc.is_pty {
            lock(&self.work).push_back(Work::MaybeEnd { proc: proc.clone() });
        } else {
            st.pending_lost += 1;
            lock(&self.work).push_back(Work::Lost { proc: proc.clone(), fd });
        }
        Some(pipe)
    }

    fn handle_ready(&self, py: Python<'_>, ev: Ready) -> PyResult<()> {
        match Token(ev.token) {
            WAKER => return Ok(()),
            SIGNALS => {
                let mut buf = [0u8; 64];
                // SAFETY: draining our own non-blocking pipe into a stack buffer.
                while unsafe { libc::read(self.signal_r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
                return py.check_signals();
            }
            _ => {}
        }
        let Some((proc, target)) = lock(&self.tokens).get(&ev.token).map(|(p, t)| (p.clone(), *t)) else {
            return Ok(());
        };
        match target {
            Target::Pid => {
                let mut st = lock(&proc.state);
                let Some((fd, _)) = &st.pidfd else { return Ok(()) };
                if let Ok(Some(exit)) = reap::try_wait_pidfd(fd.as_raw_fd()) {
                    self.reaped(&proc, &mut st, exit);
                }
            }
            Target::Pipe(_) | Target::Pty => {
                let fd = match target {
                    Target::Pipe(fd) => fd,
                    _ => 1,
                };
                let (is_reader, is_pty) = {
                    let st = lock(&proc.state);
                    match st.pipes.get(&fd) {
                        Some(p) if p.token.0 == ev.token => (matches!(p.kind, PipeKind::Reader), p.pty_queue.is_some()),
                        _ => return Ok(()),
                    }
                };
                if is_reader && (ev.readable || ev.read_closed || ev.error) {
                    self.read_pipe(py, &proc, target, fd, ev.read_closed || ev.error);
                }
                if !is_reader || is_pty {
                    self.write_ready(py, &proc, fd, ev, is_pty);
                }
            }
        }
        Ok(())
    }

    fn read_pipe(&self, py: Python<'_>, proc: &Arc<Shared>, target: Target, fd: i32, drain: bool) {
        let mut st = lock(&proc.state);
        if st.reading_paused {
            return;
        }
        let Some(pipe) = st.pipes.get_mut(&fd) else { return };
        let out = read_fd(py, pipe, drain);
        {
            let mut w = lock(&self.work);
            for data in out.chunks {
                w.push_back(Work::Data { proc: proc.clone(), fd, data });
            }
        }
        if out.eof {
            let mut pipe = self.lose_pipe(proc, &mut st, fd);
            if proc.is_pty && st.exit.is_none() {
                // Kept open (see held_master), so it must leave the poll explicitly.
                if let Some(p) = &pipe {
                    let _ = self.registry.deregister(&mut SourceFd(&p.fd.as_raw_fd()));
                }
                st.held_master = pipe.take();
            }
            drop(st);
            drop(pipe);
        } else if out.more {
            drop(st);
            lock(&self.rereads).push((proc.clone(), target));
        }
    }

    fn write_ready(&self, py: Python<'_>, proc: &Arc<Shared>, fd: i32, ev: Ready, is_pty: bool) {
        let mut st = lock(&proc.state);
        if !is_pty && (ev.error || ev.write_closed) {
            // The child closed its end (or exited): queued data is discarded, as in Twisted.
            let pipe = self.lose_pipe(proc, &mut st, fd);
            drop(st);
            drop(pipe);
            return;
        }
        if !ev.writable {
            return;
        }
        let ProcState { pipes, producer, .. } = &mut *st;
        let Some(pipe) = pipes.get_mut(&fd) else { return };
        let raw = pipe.fd.as_raw_fd();
        let Some(q) = pipe.queue() else { return };
        if q.queued == 0 {
            return;
        }
        if flush(py, raw, q).is_err() {
            if !is_pty {
                let pipe = self.lose_pipe(proc, &mut st, fd);
                drop(st);
                drop(pipe);
            }
            return;
        }
        if q.queued > 0 {
            return;
        }
        let closing = q.closing;
        let resume = match producer {
            Some(p) if (fd == 0 || is_pty) && (!p.streaming || p.paused) => {
                p.paused = false;
                Some(p.obj.clone_ref(py))
            }
            _ => None,
        };
        if closing {
            let pipe = st.pipes.remove(&fd);
            if let Some(p) = &pipe {
                self.forget(p);
            }
            if is_pty {
                lock(&self.work).push_back(Work::MaybeEnd { proc: proc.clone() });
            } else {
                st.pending_lost += 1;
                lock(&self.work).push_back(Work::Lost { proc: proc.clone(), fd });
            }
            drop(st);
            drop(pipe);
        } else if let Some(obj) = resume {
            drop(st);
            lock(&self.work).push_back(Work::ProducerResume { obj });
        }
    }

    /// Report an exception from a callback; `Err` only for what must stop the
    /// loop (KeyboardInterrupt, SystemExit and other non-`Exception`s).
    fn report(&self, py: Python<'_>, what: &str, e: PyErr) -> PyResult<()> {
        if !e.is_instance_of::<PyException>(py) {
            return Err(e);
        }
        // into_value attaches the traceback, so the log shows where it was raised.
        if let Err(e2) = self.log_error.call1(py, (what, e.into_value(py))) {
            e2.write_unraisable(py, None);
        }
        Ok(())
    }

    fn make_reason(&self, py: Python<'_>, exit: Option<Exit>) -> PyResult<Py<PyAny>> {
        let status = match exit {
            Some(Exit::Status(s)) => Some(s),
            _ => None,
        };
        self.reason.call1(py, (status,))
    }

    fn maybe_end(&self, py: Python<'_>, proc: &Arc<Shared>) -> PyResult<()> {
        let (proto, producer, exit) = {
            let mut st = lock(&proc.state);
            if st.ended || !st.exited_delivered || st.pending_lost > 0 || !st.pipes.is_empty() {
                return Ok(());
            }
            st.ended = true;
            (st.proto.take(), st.producer.take(), st.exit)
        };
        self.live.fetch_sub(1, AtOrd::AcqRel);
        drop(producer);
        if let Some(proto) = proto {
            let r = self
                .make_reason(py, exit)
                .and_then(|reason| proto.call_method1(py, intern!(py, "processEnded"), (reason,)));
            if let Err(e) = r {
                self.report(py, "processEnded", e)?;
            }
        }
        Ok(())
    }

    fn deliver(&self, py: Python<'_>, w: Work) -> PyResult<()> {
        match w {
            Work::Data { proc, fd, data } => {
                let proto = {
                    let st = lock(&proc.state);
                    if st.muted.contains(&fd) {
                        return Ok(());
                    }
                    st.proto.as_ref().map(|p| p.clone_ref(py))
                };
                let Some(proto) = proto else { return Ok(()) };
                let r = if proc.direct_data {
                    // What ProcessProtocol.childDataReceived would do, without its frame.
                    match fd {
                        1 => proto.call_method1(py, intern!(py, "outReceived"), (data,)),
                        2 => proto.call_method1(py, intern!(py, "errReceived"), (data,)),
                        _ => return Ok(()),
                    }
                } else {
                    proto.call_method1(py, intern!(py, "childDataReceived"), (fd, data))
                };
                if let Err(e) = r {
                    self.report(py, "childDataReceived", e)?;
                    // As in Twisted: a failing data callback loses that pipe.
                    if proc.is_pty {
                        let mut st = lock(&proc.state);
                        let pipe = self.lose_pipe(&proc, &mut st, 1);
                        drop(st);
                        drop(pipe);
                    } else {
                        close_child_fd(self, &proc, fd);
                    }
                }
            }
            Work::Lost { proc, fd } => {
                let (proto, producer) = {
                    let mut st = lock(&proc.state);
                    st.pending_lost -= 1;
                    // Stdin is gone: its producer is stopped first, as in Twisted.
                    let producer = if fd == 0 && !proc.is_pty { st.producer.take() } else { None };
                    (st.proto.as_ref().map(|p| p.clone_ref(py)), producer)
                };
                if let Some(p) = producer {
                    if let Err(e) = p.obj.call_method0(py, intern!(py, "stopProducing")) {
                        self.report(py, "stopProducing", e)?;
                    }
                }
                if let Some(proto) = proto {
                    if let Err(e) = proto.call_method1(py, intern!(py, "childConnectionLost"), (fd,)) {
                        self.report(py, "childConnectionLost", e)?;
                    }
                }
                self.maybe_end(py, &proc)?;
            }
            Work::Exited { proc } => {
                let (proto, exit) = {
                    let mut st = lock(&proc.state);
                    st.exited_delivered = true;
                    (st.proto.as_ref().map(|p| p.clone_ref(py)), st.exit)
                };
                if let Some(proto) = proto {
                    let r = self
                        .make_reason(py, exit)
                        .and_then(|reason| proto.call_method1(py, intern!(py, "processExited"), (reason,)));
                    if let Err(e) = r {
                        self.report(py, "processExited", e)?;
                    }
                }
                self.maybe_end(py, &proc)?;
            }
            Work::MaybeEnd { proc } => self.maybe_end(py, &proc)?,
            Work::CloseWriter { proc, fd } => {
                let pipe = {
                    let mut st = lock(&proc.state);
                    let idle = matches!(st.pipes.get(&fd), Some(Pipe { kind: PipeKind::Writer(q), .. }) if q.closing && q.queued == 0);
                    if !idle {
                        // Gone already, or more was queued: the flush closes it.
                        return Ok(());
                    }
                    let pipe = st.pipes.remove(&fd);
                    st.pending_lost += 1;
                    pipe
                };
                if let Some(p) = &pipe {
                    self.forget(p);
                }
                drop(pipe);
                return self.deliver(py, Work::Lost { proc, fd });
            }
            Work::ProducerResume { obj } => {
                if let Err(e) = obj.call_method0(py, intern!(py, "resumeProducing")) {
                    self.report(py, "resumeProducing", e)?;
                }
            }
            Work::Call { f, args, kwargs } => {
                if let Err(e) = f.call(py, args.bind(py), kwargs.as_ref().map(|k| k.bind(py))) {
                    self.report(py, "a call from another thread", e)?;
                }
            }
        }
        Ok(())
    }

    fn busy(&self) -> bool {
        !lock(&self.work).is_empty() || !lock(&self.rereads).is_empty() || self.inbox.pending.load(AtOrd::Acquire)
    }

    fn next_timeout(&self, py: Python<'_>) -> Option<Duration> {
        let timers = lock(&self.timers);
        let first = timers.heap.peek()?;
        let _ = py;
        Some(Duration::from_secs_f64((first.time - now()).max(0.0)))
    }

    /// One loop turn: poll (at most `cap`), I/O, callbacks, timers.
    fn turn(&self, py: Python<'_>, cap: Option<Duration>, run_timers: bool) -> PyResult<()> {
        refresh_sigpipe_now_and_then();
        let mut timeout = if self.busy() {
            Some(Duration::ZERO)
        } else if run_timers {
            self.next_timeout(py)
        } else {
            None
        };
        if let Some(c) = cap {
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        let polled: io::Result<Vec<Ready>> = py.detach(|| {
            let mut g = lock(&self.poll);
            let PollState { poll, events } = &mut *g;
            poll.poll(events, timeout)?;
            Ok(events
                .iter()
                .map(|e| Ready {
                    token: e.token().0,
                    readable: e.is_readable(),
                    writable: e.is_writable(),
                    error: e.is_error(),
                    read_closed: e.is_read_closed(),
                    write_closed: e.is_write_closed(),
                })
                .collect())
        });
        let ready = match polled {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                py.check_signals()?;
                Vec::new()
            }
            Err(e) => return Err(os_error(e, "poll")),
        };
        let mut first_err = None;
        for ev in ready {
            if let Err(e) = self.handle_ready(py, ev) {
                first_err.get_or_insert(e);
            }
        }
        let rereads = std::mem::take(&mut *lock(&self.rereads));
        for (proc, target) in rereads {
            let fd = match target {
                Target::Pipe(fd) => fd,
                _ => 1,
            };
            self.read_pipe(py, &proc, target, fd, true);
        }
        if self.inbox.pending.swap(false, AtOrd::AcqRel) {
            let reaped = std::mem::take(&mut *lock(&self.inbox.reaped));
            for (proc, exit) in reaped {
                let mut st = lock(&proc.state);
                self.reaped(&proc, &mut st, exit);
            }
            let calls = std::mem::take(&mut *lock(&self.inbox.calls));
            lock(&self.work).extend(calls);
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let batch = std::mem::take(&mut *lock(&self.work));
        let mut batch = batch.into_iter();
        while let Some(w) = batch.next() {
            // A KeyboardInterrupt/SystemExit from processExited or
            // childConnectionLost leaves that process's end still to check.
            let follow_up = match &w {
                Work::Exited { proc } | Work::Lost { proc, .. } => Some(proc.clone()),
                _ => None,
            };
            if let Err(e) = self.deliver(py, w) {
                // Keep what is left for the next run.
                let mut q = lock(&self.work);
                let rest = follow_up.map(|proc| Work::MaybeEnd { proc }).into_iter().chain(batch);
                for (i, w) in rest.enumerate() {
                    q.insert(i, w);
                }
                return Err(e);
            }
        }
        if run_timers {
            self.run_timers(py)?;
        }
        Ok(())
    }

    fn run_timers(&self, py: Python<'_>) -> PyResult<()> {
        let t = now();
        let mut due = Vec::new();
        {
            let mut timers = lock(&self.timers);
            while timers.heap.peek().is_some_and(|e| e.time <= t) {
                due.push(timers.heap.pop().expect("peeked"));
            }
        }
        let mut due = due.into_iter();
        while let Some(entry) = due.next() {
            let call = entry.call.get();
            let job = {
                let mut st = lock(&call.st);
                if st.cancelled || st.called || st.time != entry.time {
                    None
                } else {
                    st.called = true;
                    st.func.take().map(|f| (f, st.args.take(), st.kwargs.take()))
                }
            };
            let Some((f, args, kwargs)) = job else { continue };
            let r = f.call(py, args_tuple(py, args.as_ref()), kwargs.as_ref().map(|k| k.bind(py)));
            if let Err(e) = r {
                if let Err(e) = self.report(py, "a delayed call", e) {
                    let mut timers = lock(&self.timers);
                    timers.heap.extend(due);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn schedule(&self, call: Py<DelayedCall>, time: f64) {
        let mut timers = lock(&self.timers);
        timers.seq += 1;
        let seq = timers.seq;
        timers.heap.push(TimerEntry { time, seq, call });
        drop(timers);
        // Only a loop sleeping on another thread needs waking to see the timer.
        let flags = lock(&self.flags);
        let wake = flags.running && flags.thread != Some(std::thread::current().id());
        drop(flags);
        if wake {
            let _ = self.inbox.waker.wake();
        }
    }
}

/// Close the pipe on child fd `fd` for the protocol: a reader at once (its
/// queued data is dropped), a writer after its queue drains.
pub(crate) fn close_child_fd(eng: &Engine, proc: &Arc<Shared>, fd: i32) {
    let mut st = lock(&proc.state);
    let Some(pipe) = st.pipes.get_mut(&fd) else { return };
    if let PipeKind::Writer(q) = &mut pipe.kind {
        if !q.closing {
            q.closing = true;
            if q.queued == 0 {
                drop(st);
                eng.push(Work::CloseWriter { proc: proc.clone(), fd });
            }
        }
        return;
    }
    let pipe = st.pipes.remove(&fd).expect("checked above");
    if matches!(pipe.kind, PipeKind::Reader) {
        st.muted.push(fd);
    }
    st.pending_lost += 1;
    drop(st);
    eng.forget(&pipe);
    drop(pipe);
    eng.push(Work::Lost { proc: proc.clone(), fd });
}

/// Whether `proto` uses `ferroproc.protocol.ProcessProtocol`'s own
/// `childDataReceived` (not overridden in its class or on the instance).
fn keeps_default_dispatch(proto: &Bound<'_, PyAny>) -> PyResult<bool> {
    static BASE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let py = proto.py();
    let base = BASE.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ferroproc.protocol")?.getattr("ProcessProtocol")?.getattr("childDataReceived")?.unbind())
    })?;
    let name = intern!(py, "childDataReceived");
    let own = proto.getattr(intern!(py, "__dict__")).ok().is_some_and(|d| d.contains(name).unwrap_or(true));
    Ok(!own && proto.get_type().getattr(name)?.is(base.bind(py)))
}

/// How the parent's fds are laid out for one childFDs entry.
enum FdKind {
    Read,
    Write,
    Parent(RawFd),
}

fn fd_kind(kind: &str, parent: RawFd) -> PyResult<FdKind> {
    match kind {
        "r" => Ok(FdKind::Read),
        "w" => Ok(FdKind::Write),
        "fd" => Ok(FdKind::Parent(parent)),
        other => Err(PyValueError::new_err(format!("childFDs kind {other:?} is not 'r', 'w' or 'fd'"))),
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (reason, log_error, exited_already=None))]
    fn new(reason: Py<PyAny>, log_error: Py<PyAny>, exited_already: Option<Py<PyAny>>) -> PyResult<Self> {
        let poll = Poll::new().map_err(|e| os_error(e, "Engine"))?;
        let registry = poll.registry().try_clone().map_err(|e| os_error(e, "Engine"))?;
        let waker = Waker::new(&registry, WAKER).map_err(|e| os_error(e, "Engine"))?;
        let (signal_r, signal_w) = sys::pipe_cloexec().map_err(|e| os_error(e, "Engine"))?;
        for fd in [&signal_r, &signal_w] {
            sys::set_nonblocking(fd.as_raw_fd(), true).map_err(|e| os_error(e, "Engine"))?;
        }
        registry
            .register(&mut SourceFd(&signal_r.as_raw_fd()), SIGNALS, Interest::READABLE)
            .map_err(|e| os_error(e, "Engine"))?;
        let poll_fd = poll.as_raw_fd();
        Ok(Engine {
            poll: Mutex::new(PollState { poll, events: Events::with_capacity(1024) }),
            poll_fd,
            registry,
            inbox: Arc::new(Inbox {
                waker,
                calls: Mutex::new(Vec::new()),
                reaped: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
            }),
            tokens: Mutex::new(HashMap::new()),
            next_token: Mutex::new(SIGNALS.0),
            work: Mutex::new(VecDeque::new()),
            rereads: Mutex::new(Vec::new()),
            timers: Mutex::new(Timers::default()),
            flags: Mutex::new(LoopFlags::default()),
            signal_r,
            signal_w,
            reason,
            log_error,
            exited_already,
            live: AtomicUsize::new(0),
        })
    }

    /// Start a child. Arguments arrive validated and normalised by
    /// `ferroproc._reactor` (bytes everywhere; `fds` as `(childFD, kind,
    /// parentFD)` with kind `'r'`, `'w'` or `'fd'`; `pty` is None for pipes,
    /// `True` for a new terminal or a `(master, slave)` pair).
    #[pyo3(signature = (protocol, executable, argv, envp, parent_path, cwd, fds, pty, window_size, uid, gid, method=None))]
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        slf: &Bound<'_, Self>,
        protocol: Option<Py<PyAny>>,
        executable: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        parent_path: Option<Vec<u8>>,
        cwd: Option<Vec<u8>>,
        fds: Vec<(i32, String, i32)>,
        pty: Option<Bound<'_, PyAny>>,
        window_size: Option<(u16, u16)>,
        uid: Option<u32>,
        gid: Option<u32>,
        method: Option<String>,
    ) -> PyResult<Py<Process>> {
        let py = slf.py();
        let eng = slf.get();
        refresh_sigpipe();
        let exe_display = String::from_utf8_lossy(&executable).into_owned();
        let exec =
            ExecSpec::new(&executable, &argv, &envp, parent_path.as_deref(), cwd.as_deref()).map_err(|e| match e {
                ExecError::Nul { what } => PyValueError::new_err(format!("spawnProcess: {what} contains a NUL byte")),
                ExecError::NotFound { name, path } => os_error_file(
                    libc::ENOENT,
                    format!(
                        "spawnProcess: executable {:?} not found on PATH {:?}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(&path)
                    ),
                    &exe_display,
                ),
            })?;
        let creds = creds::resolve(uid, gid).map_err(|e| match e {
            CredsError::UnknownUser { uid } => PyValueError::new_err(format!(
                "spawnProcess: uid {uid} has no passwd entry, so its group is unknown; pass gid as well"
            )),
        })?;
        let cwd_c = cwd
            .as_ref()
            .map(|c| CString::new(c.clone()))
            .transpose()
            .map_err(|_| PyValueError::new_err("spawnProcess: path contains a NUL byte"))?;
        let method = match method.as_deref() {
            None => None,
            Some("posix_spawn") => Some(Method::PosixSpawn),
            Some("clone") => Some(Method::CloneVfork),
            Some(m) => return Err(PyValueError::new_err(format!("unknown spawn method {m:?}"))),
        };

        // Parent ends we keep, child ends dropped after the spawn.
        let mut parent_ends: Vec<(i32, OwnedFd, bool)> = Vec::new();
        let mut child_ends: Vec<OwnedFd> = Vec::new();
        let mut entries: Vec<(i32, RawFd)> = Vec::new();
        let mut pty_master: Option<OwnedFd> = None;
        let mut pty_slave_path: Option<CString> = None;
        let mut caller_pty: Option<(RawFd, RawFd)> = None;
        let is_pty = pty.is_some();
        if let Some(p) = &pty {
            if let Ok((m, s)) = p.extract::<(RawFd, RawFd)>() {
                let path =
                    pty::tty_path(s).map_err(|e| os_error(e, &format!("usePTY: slave fd {s} is not a terminal")))?;
                sys::set_nonblocking(m, true).map_err(|e| os_error(e, &format!("usePTY: master fd {m}")))?;
                if let Some((r, c)) = window_size {
                    pty::set_window_size(m, r, c).map_err(|e| os_error(e, "windowSize"))?;
                }
                // The caller's pair is taken over only once the child has
                // started (below); a failed spawn leaves both open, as Twisted does.
                pty_slave_path = Some(path);
                caller_pty = Some((m, s));
            } else {
                let t = pty::open(window_size).map_err(|e| os_error(e, "usePTY: cannot open a terminal"))?;
                pty_master = Some(t.master);
                pty_slave_path = Some(t.slave_path);
            }
        } else {
            // Every parent fd named must be open *before* the pipes below are
            // made: a closed one could otherwise be taken by a new pipe and be
            // silently passed on in its place.
            for (child, kind, parent) in &fds {
                if let FdKind::Parent(p) = fd_kind(kind, *parent)? {
                    if !sys::fd_is_open(p) {
                        return Err(pyo3::exceptions::PyOSError::new_err((
                            libc::EBADF,
                            format!("spawnProcess: childFDs[{child}]: parent fd {p} is not open"),
                        )));
                    }
                }
            }
            for (child, kind, parent) in &fds {
                match fd_kind(kind, *parent)? {
                    FdKind::Read | FdKind::Write => {
                        let (r, w) = sys::pipe_cloexec().map_err(|e| {
                            os_error(e, &format!("spawnProcess: childFDs[{child}]: cannot create a pipe"))
                        })?;
                        let reader = kind == "r";
                        let (mine, theirs) = if reader { (r, w) } else { (w, r) };
                        sys::set_nonblocking_fresh(mine.as_raw_fd()).map_err(|e| os_error(e, "spawnProcess"))?;
                        entries.push((*child, theirs.as_raw_fd()));
                        child_ends.push(theirs);
                        parent_ends.push((*child, mine, reader));
                    }
                    FdKind::Parent(p) => entries.push((*child, p)),
                }
            }
        }
        let plan = if is_pty {
            None
        } else {
            Some(PreparedFds::new(&entries).map_err(|(i, e)| {
                let (child, _, parent) = &fds[i];
                if e.raw_os_error() == Some(libc::EBADF) {
                    pyo3::exceptions::PyOSError::new_err((
                        libc::EBADF,
                        format!("spawnProcess: childFDs[{child}]: parent fd {parent} is not open"),
                    ))
                } else {
                    os_error(e, &format!("spawnProcess: childFDs[{child}]"))
                }
            })?)
        };
        let stdio = match (&plan, &pty_slave_path) {
            (Some(p), _) => Stdio::Fds(p),
            (None, Some(path)) => Stdio::Pty(path.as_c_str()),
            (None, None) => unreachable!("either a plan or a terminal"),
        };
        let req = Request { exec: &exec, cwd: cwd_c.as_deref(), stdio, creds: creds.as_ref(), method };
        let spawned = py.detach(|| spawn::spawn(&req));
        drop(plan);
        drop(child_ends);
        let child = spawned.map_err(|e| {
            let cwd_s = cwd.as_ref().map(|c| String::from_utf8_lossy(c).into_owned());
            spawn_error(e, &SpawnWhat { executable: &exe_display, cwd: cwd_s.as_deref(), uid, gid })
        })?;
        if let Some((m, s)) = caller_pty {
            // SAFETY: the child has started: as in Twisted, the caller's slave is
            // closed now and the master is handed over to the transport (closed
            // when it loses its connection). Nobody else owns them from here.
            unsafe { libc::close(s) };
            // SAFETY: as above; the master becomes the transport's.
            pty_master = Some(unsafe { OwnedFd::from_raw_fd(m) });
        }

        let direct = match &protocol {
            Some(p) => keeps_default_dispatch(p.bind(py))?,
            None => false,
        };
        let shared = Arc::new(Shared::new(child.pid, is_pty, protocol.as_ref().map(|p| p.clone_ref(py)), direct));
        {
            let mut st = lock(&shared.state);
            let reg = &eng.registry;
            let register = |fd: RawFd, token: Token, i: Interest| {
                reg.register(&mut SourceFd(&fd), token, i).map_err(|e| os_error(e, "spawnProcess: register"))
            };
            for (child_fd, fd, reader) in parent_ends {
                let token = eng.add_token(&shared, Target::Pipe(child_fd));
                register(fd.as_raw_fd(), token, if reader { Interest::READABLE } else { Interest::WRITABLE })?;
                let kind = if reader { PipeKind::Reader } else { PipeKind::Writer(Default::default()) };
                st.pipes.insert(child_fd, Pipe::new(fd, token, kind, false));
            }
            if let Some(master) = pty_master {
                st.pty_initial_attrs = pty::get_attrs(master.as_raw_fd()).ok();
                let token = eng.add_token(&shared, Target::Pty);
                register(master.as_raw_fd(), token, Interest::READABLE | Interest::WRITABLE)?;
                st.pipes.insert(1, Pipe::new(master, token, PipeKind::Reader, true));
            }
            match child.pidfd {
                Some(pidfd) => {
                    let token = eng.add_token(&shared, Target::Pid);
                    register(pidfd.as_raw_fd(), token, Interest::READABLE)?;
                    st.pidfd = Some((pidfd, token));
                }
                None => {
                    // The one fallback where pidfds are unavailable: a thread
                    // blocked on this child alone, which never touches Python.
                    let inbox = eng.inbox.clone();
                    let proc = shared.clone();
                    let pid = child.pid;
                    std::thread::Builder::new()
                        .name(format!("ferroproc-wait-{pid}"))
                        .spawn(move || {
                            let exit = reap::wait_blocking(pid).unwrap_or(Exit::Unknown);
                            lock(&inbox.reaped).push((proc, exit));
                            inbox.post();
                        })
                        .map_err(|e| os_error(e, "spawnProcess: waiter thread"))?;
                }
            }
        }
        eng.live.fetch_add(1, AtOrd::AcqRel);
        let transport = Py::new(py, Process { shared, engine: slf.clone().unbind() })?;
        if let Some(proto) = protocol {
            if let Err(e) = proto.call_method1(py, intern!(py, "makeConnection"), (transport.clone_ref(py),)) {
                eng.report(py, "makeConnection", e)?;
            }
        }
        Ok(transport)
    }

    /// Run until `stop()`. Raises what a callback raised if it was not an
    /// `Exception` (KeyboardInterrupt, SystemExit), and what a signal handler raised.
    fn run(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut f = lock(&self.flags);
            if f.running {
                return Err(PyRuntimeError::new_err("the engine is already running"));
            }
            f.running = true;
            f.stopping = false;
            f.thread = Some(std::thread::current().id());
        }
        let r = loop {
            if lock(&self.flags).stopping {
                break Ok(());
            }
            if let Err(e) = self.turn(py, None, true) {
                break Err(e);
            }
        };
        let mut f = lock(&self.flags);
        f.running = false;
        f.stopping = false;
        f.thread = None;
        r
    }

    /// One loop turn, waiting at most `timeout` seconds (0: do only what is
    /// ready). Used by hosts such as a Twisted reactor that drive the engine.
    #[pyo3(name = "runOnce", signature = (timeout=0.0, timers=true))]
    fn run_once(&self, py: Python<'_>, timeout: f64, timers: bool) -> PyResult<()> {
        let prev = {
            let mut f = lock(&self.flags);
            f.thread.replace(std::thread::current().id())
        };
        let r = self.turn(py, Some(Duration::from_secs_f64(timeout.max(0.0))), timers);
        lock(&self.flags).thread = prev;
        r
    }

    /// Ask `run()` to return after the current turn. Safe from any thread.
    fn stop(&self) {
        lock(&self.flags).stopping = true;
        let _ = self.inbox.waker.wake();
    }

    /// Whether `run()` is active.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.flags).running
    }

    /// How many children were started and have not ended yet (`processEnded`
    /// not yet delivered).
    #[getter(processCount)]
    fn process_count(&self) -> usize {
        self.live.load(AtOrd::Acquire)
    }

    /// The poll fd: readable whenever the engine has work (for hosts).
    fn fileno(&self) -> RawFd {
        self.poll_fd
    }

    /// The fd to pass to `signal.set_wakeup_fd` while the engine runs, so a
    /// signal wakes the loop and its Python handler runs promptly.
    #[pyo3(name = "wakeupFd")]
    fn wakeup_fd(&self) -> RawFd {
        self.signal_w.as_raw_fd()
    }

    /// Whether callbacks or I/O are waiting (a host should call `runOnce(0)`).
    #[pyo3(name = "hasPending")]
    fn has_pending(&self) -> bool {
        self.busy()
    }

    /// The current time in seconds (as `time.time()`).
    fn seconds(&self) -> f64 {
        now()
    }

    /// Call `f(*args, **kwargs)` `delay` seconds from now; returns a DelayedCall.
    #[pyo3(name = "callLater", signature = (delay, f, args, kwargs=None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: f64,
        f: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<DelayedCall>> {
        let py = slf.py();
        if !delay.is_finite() || delay < 0.0 {
            return Err(PyValueError::new_err(format!("callLater: delay must be a finite number >= 0, not {delay}")));
        }
        if !f.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err("callLater: f must be callable"));
        }
        let time = now() + delay;
        let call = Py::new(
            py,
            DelayedCall {
                st: Mutex::new(DcState {
                    time,
                    func: Some(f),
                    args: Some(args),
                    kwargs,
                    cancelled: false,
                    called: false,
                }),
                engine: slf.clone().unbind(),
            },
        )?;
        slf.get().schedule(call.clone_ref(py), time);
        Ok(call)
    }

    /// Run `f(*args, **kwargs)` on the loop thread soon. Safe from any thread.
    #[pyo3(name = "callFromThread", signature = (f, args, kwargs=None))]
    fn call_from_thread(&self, f: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) {
        lock(&self.inbox.calls).push(Work::Call { f, args, kwargs });
        self.inbox.post();
    }
}

struct DcState {
    time: f64,
    func: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    kwargs: Option<Py<PyDict>>,
    cancelled: bool,
    called: bool,
}

/// A call scheduled with `callLater` (Twisted's `IDelayedCall`).
#[pyclass(frozen, weakref, module = "ferroproc._core", name = "DelayedCall")]
pub struct DelayedCall {
    st: Mutex<DcState>,
    engine: Py<Engine>,
}

fn already(py: Python<'_>, name: &str) -> PyErr {
    match py.import("ferroproc.error").and_then(|m| m.getattr(name)) {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("an exception class"), ()),
        Err(e) => e,
    }
}

impl DelayedCall {
    fn check_active(&self, py: Python<'_>) -> PyResult<std::sync::MutexGuard<'_, DcState>> {
        let st = lock(&self.st);
        if st.cancelled {
            return Err(already(py, "AlreadyCancelled"));
        }
        if st.called {
            return Err(already(py, "AlreadyCalled"));
        }
        Ok(st)
    }
}

#[pymethods]
#[allow(non_snake_case)] // Twisted's keyword names are public API
impl DelayedCall {
    /// When the call will run, in `seconds()` time.
    #[pyo3(name = "getTime")]
    fn get_time(&self) -> f64 {
        lock(&self.st).time
    }

    /// Unschedule the call. Raises AlreadyCalled / AlreadyCancelled.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let mut st = self.check_active(py)?;
        st.cancelled = true;
        let dropped = (st.func.take(), st.args.take(), st.kwargs.take());
        drop(st);
        drop(dropped);
        Ok(())
    }

    /// Run `secondsLater` seconds later than currently scheduled.
    fn delay(slf: &Bound<'_, Self>, secondsLater: f64) -> PyResult<()> {
        let me = slf.get();
        let mut st = me.check_active(slf.py())?;
        st.time += secondsLater;
        let t = st.time;
        drop(st);
        me.engine.get().schedule(slf.clone().unbind(), t);
        Ok(())
    }

    /// Run `secondsFromNow` seconds from now instead.
    fn reset(slf: &Bound<'_, Self>, secondsFromNow: f64) -> PyResult<()> {
        let me = slf.get();
        let mut st = me.check_active(slf.py())?;
        st.time = now() + secondsFromNow;
        let t = st.time;
        drop(st);
        me.engine.get().schedule(slf.clone().unbind(), t);
        Ok(())
    }

    /// True until the call has run or been cancelled.
    fn active(&self) -> bool {
        let st = lock(&self.st);
        !(st.cancelled || st.called)
    }

    /// The scheduled callable (None once run or cancelled).
    #[getter]
    fn func(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.st).func.as_ref().map(|f| f.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let st = lock(&self.st);
        let f = st
            .func
            .as_ref()
            .and_then(|f| f.bind(py).repr().ok().map(|r| r.to_string()))
            .unwrap_or_else(|| "None".into());
        let state = if st.cancelled {
            " cancelled"
        } else if st.called {
            " called"
        } else {
            ""
        };
        format!("<DelayedCall at {:.3}{state} {f}>", st.time - now())
    }
}
