//! One attempt of a job, as the sink of its child's events: output captured
//! (bounded) or streamed to Python, the exit noted, and at the end the
//! verdict (run again, or done: its `JobResult`, for Python) and the next jobs
//! started at once, in the same turn.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use ferroproc_core::child::Event;
use ferroproc_core::jobs::{Capture, Keep, Outcome, Queued, Verdict};
use ferroproc_core::reap::Usage;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyTuple};
use pyo3::PyTypeInfo;

use super::start::{start_more, stop_all};
use super::{Inner, Payload, Stopping};
use crate::handle::{lock, Shared};
use crate::host::{Cell, ChildSink, PyChunk};
use crate::timers::now;

struct RunState {
    /// The job, kept for another attempt.
    payload: Option<Payload>,
    out: Capture<PyChunk>,
    err: Capture<PyChunk>,
    exited: Option<Instant>,
    /// The runner stopped it (cancel, a `now` halt).
    stopped: bool,
}

/// One attempt of a job: see the module documentation.
pub(crate) struct JobRun {
    inner: Arc<Inner>,
    shared: Weak<Shared>,
    seq: u64,
    attempt: u32,
    started_at: f64,
    started: Instant,
    /// With results files: where its stdout and stderr go.
    paths: Option<(PathBuf, PathBuf)>,
    st: Mutex<RunState>,
}

/// How an attempt ended, for its verdict and result.
struct End {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stopped: bool,
    runtime: f64,
    usage: Option<Usage>,
    out: Vec<PyChunk>,
    err: Vec<PyChunk>,
    /// Why it never started (shown as its stderr).
    failure: Option<String>,
    truncated: bool,
    sent: u64,
    received: u64,
}

/// The exit code and the signal in a raw wait status (both None when the
/// status is unknown).
fn decode(status: Option<i32>) -> (Option<i32>, Option<i32>) {
    match status {
        Some(s) if libc::WIFEXITED(s) => (Some(libc::WEXITSTATUS(s)), None),
        Some(s) if libc::WIFSIGNALED(s) => (None, Some(libc::WTERMSIG(s))),
        _ => (None, None),
    }
}

impl JobRun {
    pub(super) fn new(
        inner: &Arc<Inner>,
        shared: &Arc<Shared>,
        seq: u64,
        attempt: u32,
        started_at: f64,
        started: Instant,
        paths: Option<(PathBuf, PathBuf)>,
    ) -> Self {
        let c = &inner.config;
        let capture = |own_fd: Option<i32>| Capture::new(c.max_bytes, c.capture && own_fd.is_none() && paths.is_none());
        let st =
            RunState { payload: None, out: capture(c.stdout), err: capture(c.stderr), exited: None, stopped: false };
        JobRun {
            inner: inner.clone(),
            shared: Arc::downgrade(shared),
            seq,
            attempt,
            started_at,
            started,
            paths,
            st: Mutex::new(st),
        }
    }

    /// Keep the job (for another attempt).
    pub(super) fn hold(&self, payload: Payload) {
        lock(&self.st).payload = Some(payload);
    }

    /// Give the job back (its child could not be started).
    pub(super) fn release(&self) -> Option<Payload> {
        lock(&self.st).payload.take()
    }

    /// The runner is stopping it.
    pub(super) fn mark_stopped(&self) {
        lock(&self.st).stopped = true;
    }

    fn on_data(&self, py: Python<'_>, fd: i32, chunk: PyChunk) {
        if self.inner.config.stream_output {
            let data = chunk.object().clone_ref(py);
            lock(&self.inner.state).outputs.push((self.seq, fd, data));
            self.inner.notify_soon();
        }
        let len = chunk.as_ref().len();
        let keep = {
            let mut st = lock(&self.st);
            match fd {
                1 => st.out.offer(len),
                2 => st.err.offer(len),
                _ => Keep::Nothing,
            }
        };
        let kept = match keep {
            Keep::All => chunk,
            Keep::Prefix(n) => PyChunk::new(PyBytes::new(py, &chunk.as_ref()[..n])),
            Keep::Nothing => return,
        };
        let mut st = lock(&self.st);
        if fd == 1 {
            st.out.push(kept);
        } else {
            st.err.push(kept);
        }
    }

    /// The child has ended (reaped, every pipe closed): out of the loop,
    /// its verdict, and the next jobs started.
    fn on_end(&self, py: Python<'_>, cell: &Arc<Cell>) {
        // What it held (fds, a process) is free again: jobs held back for
        // want of them may start.
        self.inner.starved.store(false, std::sync::atomic::Ordering::Release);
        let (exit, timed_out, broken, sink) =
            cell.with(|c, x| (c.exit(), c.timed_out(), c.input_broken(), x.sink.take()));
        drop(sink);
        if let Some(shared) = self.shared.upgrade() {
            shared.lp.retire(cell);
        }
        let (exit_code, signal) = decode(exit.and_then(|e| e.status));
        let (payload, end) = {
            let mut st = lock(&self.st);
            let ran = st.exited.unwrap_or_else(Instant::now).duration_since(self.started).as_secs_f64();
            let sent = match &st.payload {
                Some(Payload { stdin: Some(data), .. }) if !broken => data.bind(py).as_bytes().len() as u64,
                _ => 0,
            };
            let end = End {
                exit_code,
                signal,
                timed_out: timed_out.is_some() && !st.stopped,
                stopped: st.stopped,
                runtime: ran,
                usage: exit.and_then(|e| e.usage),
                truncated: st.out.truncated() || st.err.truncated(),
                received: st.out.seen(),
                out: st.out.take_chunks(),
                err: st.err.take_chunks(),
                failure: None,
                sent,
            };
            (st.payload.take(), end)
        };
        if let Some(payload) = payload {
            let at = (self.seq, self.attempt, self.started_at);
            finish(py, &self.inner, at, payload, end, self.paths.as_ref(), true);
        }
    }

    /// A job that could not be started: it ends at once, as a shell would
    /// end it (`code`: 127 not found, 126 anything else), `why` as its
    /// stderr. The caller goes on starting jobs.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn not_started(
        py: Python<'_>,
        inner: &Arc<Inner>,
        seq: u64,
        attempt: u32,
        payload: Payload,
        started_at: f64,
        code: i32,
        why: String,
    ) {
        let end = End {
            exit_code: Some(code),
            signal: None,
            timed_out: false,
            stopped: false,
            runtime: 0.0,
            usage: None,
            out: Vec::new(),
            err: Vec::new(),
            failure: Some(why),
            truncated: false,
            sent: 0,
            received: 0,
        };
        finish(py, inner, (seq, attempt, started_at), payload, end, None, false);
    }
}

impl ChildSink for JobRun {
    fn deliver(&self, py: Python<'_>, cell: &Arc<Cell>) -> PyResult<()> {
        loop {
            let Some(event) = cell.with(|c, _| c.next_event()) else { return Ok(()) };
            match event {
                Event::Data { fd, data } => self.on_data(py, fd, data),
                Event::Exited => lock(&self.st).exited = Some(Instant::now()),
                Event::Ended => {
                    self.on_end(py, cell);
                    return Ok(());
                }
                Event::Lost { .. } | Event::ResumeProducer { .. } | Event::StopProducer { .. } => {}
            }
        }
    }
}

/// An attempt ended (`at`: its job's number, its attempt, its start time):
/// run it again, or report it (and with a `now` halt, stop the others).
/// With `start_next`, the next jobs are started as soon as the verdict is
/// known, before the result is built: no slot waits for it. Python is told
/// at the end of the turn.
fn finish(
    py: Python<'_>,
    inner: &Arc<Inner>,
    at: (u64, u32, f64),
    payload: Payload,
    end: End,
    paths: Option<&(PathBuf, PathBuf)>,
    start_next: bool,
) {
    let (seq, attempt, started_at) = at;
    let ok = end.exit_code == Some(0) && !end.timed_out && !end.stopped && end.failure.is_none();
    let outcome = Outcome { ok, stopped: end.stopped };
    let verdict = {
        let mut st = lock(&inner.state);
        st.running.remove(&seq);
        st.sched.end(attempt, outcome, now())
    };
    let mut payload = payload;
    if let Verdict::Retry { at } = verdict {
        // Kept with the job while it waits: reported if it never runs again.
        let last = result_object(py, inner, seq, &payload.job, attempt, started_at, end, paths);
        payload.last = last.map_err(|e| e.write_unraisable(py, None)).ok();
        let refused = lock(&inner.state).sched.retry(Queued { seq, attempt, payload }, at).err();
        if let Some(refused) = refused {
            // Stopped meanwhile: this attempt was its last.
            let rest = lock(&inner.state).report_dropped(vec![refused]);
            drop(rest);
            inner.notify_soon();
        }
        if start_next {
            start_more(py, inner);
        }
        return;
    }
    if start_next {
        start_more(py, inner);
    }
    let halt = matches!(verdict, Verdict::Final { halt: true });
    let result = result_object(py, inner, seq, &payload.job, attempt, started_at, end, paths);
    drop(payload);
    let (stop, dropped) = {
        let mut st = lock(&inner.state);
        match result {
            Ok(r) => st.results.push(r),
            Err(e) => e.write_unraisable(py, None),
        }
        if halt {
            st.halt_seq = Some(seq);
            let dropped = st.sched.drain();
            let dropped = st.report_dropped(dropped);
            let stop = if st.sched.halting_now() && st.stopping.is_none() {
                let stopping = Stopping::halt(inner.config.kill_grace);
                st.stopping = Some(stopping.clone());
                Some((st.running.values().cloned().collect(), stopping))
            } else {
                None
            };
            (stop, dropped)
        } else {
            (None, Vec::new())
        }
    };
    drop(dropped);
    if let Some((running, stopping)) = stop {
        stop_all(inner, running, &stopping);
    }
    inner.notify_soon();
}

/// Kept chunks as one `bytes` (the chunk itself when there is one).
fn join<'py>(py: Python<'py>, chunks: Vec<PyChunk>) -> PyResult<Bound<'py, PyBytes>> {
    match chunks.len() {
        0 => Ok(PyBytes::new(py, b"")),
        1 => Ok(chunks.into_iter().next().expect("one").into_object().into_bound(py)),
        _ => {
            let len = chunks.iter().map(|c| c.as_ref().len()).sum();
            PyBytes::new_with(py, len, |buf| {
                let mut at = 0;
                for c in &chunks {
                    let b = c.as_ref();
                    buf[at..at + b.len()].copy_from_slice(b);
                    at += b.len();
                }
                Ok(())
            })
        }
    }
}

/// An instance of the NamedTuple `class` with `items`, made as its `_make`
/// makes one (`tuple.__new__`), without its Python-level constructor.
fn named<'py>(py: Python<'py>, class: &Py<PyAny>, items: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let values = PyTuple::new(py, items)?;
    PyTuple::type_object(py).call_method1(intern!(py, "__new__"), (class.bind(py), values))
}

/// The job's `JobResult`.
#[allow(clippy::too_many_arguments)]
fn result_object(
    py: Python<'_>,
    inner: &Inner,
    seq: u64,
    job: &Py<PyAny>,
    attempt: u32,
    started_at: f64,
    end: End,
    paths: Option<&(PathBuf, PathBuf)>,
) -> PyResult<Py<PyAny>> {
    let config = &inner.config;
    let received = match paths {
        Some((out, _)) => std::fs::metadata(out).map_or(0, |m| m.len()),
        None => end.received,
    };
    let out = join(py, end.out)?;
    let err = match end.failure {
        Some(why) => PyBytes::new(py, why.as_bytes()),
        None => join(py, end.err)?,
    };
    let usage = match end.usage {
        Some(u) => named(
            py,
            &config.usage_class,
            vec![
                PyFloat::new(py, u.user.as_secs_f64()).into_any(),
                PyFloat::new(py, u.system.as_secs_f64()).into_any(),
                (u.max_rss_kib * 1024).into_pyobject(py)?.into_any(),
            ],
        )?,
        None => py.None().into_bound(py),
    };
    let path = |p: Option<&PathBuf>| -> Bound<'_, PyAny> {
        match p {
            Some(p) => p.as_os_str().into_pyobject(py).map_or_else(|e| match e {}, |s| s.into_any()),
            None => py.None().into_bound(py),
        }
    };
    let flag = |b: bool| PyBool::new(py, b).to_owned().into_any();
    let items = vec![
        seq.into_pyobject(py)?.into_any(),
        job.bind(py).clone(),
        end.exit_code.into_pyobject(py)?.into_any(),
        end.signal.into_pyobject(py)?.into_any(),
        flag(end.timed_out),
        PyFloat::new(py, started_at).into_any(),
        PyFloat::new(py, end.runtime).into_any(),
        attempt.into_pyobject(py)?.into_any(),
        out.into_any(),
        err.into_any(),
        flag(end.truncated),
        end.sent.into_pyobject(py)?.into_any(),
        received.into_pyobject(py)?.into_any(),
        usage,
        path(paths.map(|p| &p.0)),
        path(paths.map(|p| &p.1)),
        flag(end.stopped),
    ];
    Ok(named(py, &config.result_class, items)?.unbind())
}
