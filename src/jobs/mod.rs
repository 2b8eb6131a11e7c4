//! `ferroproc._core.JobQueue`: the jobs runner's core, over an engine.
//!
//! Python (`ferroproc.jobs._runner`) reads the input and pushes prepared
//! jobs; the queue starts them (up to the concurrency limit) and, the moment
//! one ends, records its result and starts the next one, in the same loop
//! turn and with no Python in between ([`run`]: each job's child delivers
//! its events to Rust, not to a protocol). At the end of a turn that
//! finished jobs, Python's `notify` is called once (the engine's end-of-turn
//! calls), and it `take()`s the turn's results as one batch.
//!
//! The rules (slots, retries, halts, the memory gate) are the core's
//! [`ferroproc_core::jobs::Scheduler`]; spawning, capture and results are here
//! ([`start`], [`run`]). Python objects held under the queue's lock (results,
//! output, jobs' stdin) only move in and out of it; any that are dropped are
//! dropped after it is released.

mod input;
mod run;
mod spawner;
mod start;

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ferroproc_core::child::StopWhy;
use ferroproc_core::jobs::{HaltOn, HaltPolicy, HaltWhen, Limits, Scheduler, Threshold};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3::{PyTraverseError, PyVisit};

use crate::engine::Engine;
use crate::errors::os_error;
use crate::handle::{lock, AfterTurn, Shared};
use crate::host::Cell;
use crate::spawn::SpawnArgs;
use crate::timers::finite;

use run::JobRun;

/// A prepared job: everything to start it (again, for a retry), and the
/// job object its result names.
pub(crate) struct Payload {
    job: Py<PyAny>,
    /// Shared with the thread that spawns it for as long as it spawns.
    args: Arc<SpawnArgs>,
    stdin: Option<Py<PyBytes>>,
    /// The result of its last attempt, while it waits to run again: what is
    /// reported if it never does (a halt, a cancel).
    last: Option<Py<PyAny>>,
}

impl State {
    /// Jobs the scheduler let go of: those that ran before are reported with
    /// their last attempt; the rest are handed back, to be dropped after the
    /// lock.
    fn report_dropped(&mut self, dropped: Vec<ferroproc_core::jobs::Queued<Payload>>) -> Vec<Payload> {
        let mut rest = Vec::with_capacity(dropped.len());
        for q in dropped {
            let mut payload = q.payload;
            if let Some(last) = payload.last.take() {
                self.results.push(last);
            }
            rest.push(payload);
        }
        rest
    }
}

/// What every job of the queue shares.
struct Config {
    /// What every job starts from (without an environment: see `environ`).
    template: SpawnArgs,
    /// The environment of jobs without their own.
    environ: Vec<Vec<u8>>,
    max_bytes: Option<usize>,
    capture: bool,
    results: Option<PathBuf>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    stream_output: bool,
    kill_grace: f64,
    /// The runner's limits, for jobs without their own.
    timeout: Option<f64>,
    idle_timeout: Option<f64>,
    classes: input::Classes,
    /// `ferroproc.jobs.JobResult` and `ferroproc.error.ResourceUsage`.
    result_class: Py<PyAny>,
    usage_class: Py<PyAny>,
}

/// What changes, under the queue's lock.
struct State {
    sched: Scheduler<Payload>,
    /// The jobs running now, by number: their child and their run.
    running: HashMap<u64, (Weak<Cell>, Weak<JobRun>)>,
    /// Finished jobs' results, for the next `take()`.
    results: Vec<Py<PyAny>>,
    /// `(seq, fd, data)` for `onOutput`, for the next `take()`.
    outputs: Vec<(u64, i32, Py<PyBytes>)>,
    /// The job whose end reached the halt policy, for the next `take()`.
    halt_seq: Option<u64>,
    /// Jobs a spawner thread could not start, to be reported (or put back)
    /// from the loop's thread by the next `take()`.
    failed: Vec<start::Failed>,
    /// The stdin of jobs without input (None once closed).
    devnull: Option<OwnedFd>,
    closed: bool,
    /// The running jobs are being stopped (a cancel, a `now` halt): why,
    /// and the grace between SIGTERM and SIGKILL. A job whose start was
    /// under way is stopped the same way as it comes in.
    stopping: Option<Stopping>,
}

/// Why and how the running jobs are being stopped.
#[derive(Clone)]
pub(super) struct Stopping {
    why: StopWhy,
    grace: f64,
}

impl Stopping {
    fn cancel(grace: f64) -> Self {
        Stopping { why: StopWhy::new("cancel", "its run was cancelled"), grace }
    }

    fn halt(grace: f64) -> Self {
        Stopping { why: StopWhy::new("halt", "its run's halt policy was reached (now)"), grace }
    }
}

/// A queue's state, shared with its running jobs (each holds it while it
/// runs, so the queue outlives them whatever Python drops).
pub(crate) struct Inner {
    shared: Weak<Shared>,
    config: Config,
    state: Mutex<State>,
    /// Python's `notify` (None once closed).
    notify: Mutex<Option<Arc<Py<PyAny>>>>,
    /// `notify` is due (queued for the end of this turn, or the caller of
    /// whatever produced results will look).
    news: AtomicBool,
    /// The threads that start jobs when there is more than one slot.
    spawners: Option<spawner::Spawners>,
    /// A job was put back for want of fds or processes: start none until a
    /// running job ends (or a `kick`).
    starved: AtomicBool,
}

impl Inner {
    /// Results or output arrived: have Python look, at the end of the turn
    /// (outside a turn, the Python call that led here looks itself).
    fn notify_soon(&self) {
        self.notify(false);
    }

    /// As [`Inner::notify_soon`], from a thread that is not the loop's (a
    /// spawner): Python's look is queued for the loop, which is woken.
    fn notify_from_thread(&self) {
        self.notify(true);
    }

    fn notify(&self, wake: bool) {
        if self.news.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(shared) = self.shared.upgrade() else { return };
        let in_turn = shared.lp.in_turn();
        if !in_turn && !wake {
            return;
        }
        let f = lock(&self.notify).clone();
        if let Some(f) = f {
            lock(&shared.after_turn).push(AfterTurn::Call(f));
            if !in_turn {
                shared.lp.wake();
            }
        }
    }
}

/// The jobs runner's queue over an engine (private: `ferroproc.jobs` uses it).
#[pyclass(frozen, module = "ferroproc._core")]
pub struct JobQueue {
    inner: Arc<Inner>,
}

fn halt_policy(spec: Option<(String, String, Option<u64>, Option<f64>)>) -> PyResult<Option<HaltPolicy>> {
    let Some((when, on, count, percent)) = spec else { return Ok(None) };
    let when = match when.as_str() {
        "now" => HaltWhen::Now,
        "soon" => HaltWhen::Soon,
        other => return Err(PyValueError::new_err(format!("halt: unknown when {other:?}"))),
    };
    let on = match on.as_str() {
        "fail" => HaltOn::Fail,
        "success" => HaltOn::Success,
        "done" => HaltOn::Done,
        other => return Err(PyValueError::new_err(format!("halt: unknown reason {other:?}"))),
    };
    let threshold = match (count, percent) {
        (Some(n), None) if n > 0 => Threshold::Count(n),
        (None, Some(p)) if p > 0.0 && p <= 100.0 => Threshold::Percent(p),
        _ => return Err(PyValueError::new_err("halt: give a count (>= 1) or a percentage (0 to 100]")),
    };
    Ok(Some(HaltPolicy { when, on, threshold }))
}

#[pymethods]
#[allow(non_snake_case)] // keyword names follow the Python API's
impl JobQueue {
    #[new]
    #[pyo3(signature = (
        engine, notify, template, *, environ, concurrency, ahead, killGrace, timeout, idleTimeout, retries,
        retryDelay, memfree, halt, maxBytes, capture, results, stdout, stderr, streamOutput, jobClass,
        resultClass, usageClass, utf8, spawners
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        engine: &Bound<'_, Engine>,
        notify: Py<PyAny>,
        template: SpawnArgs,
        environ: Vec<Vec<u8>>,
        concurrency: usize,
        ahead: usize,
        killGrace: f64,
        timeout: Option<f64>,
        idleTimeout: Option<f64>,
        retries: u32,
        retryDelay: f64,
        memfree: Option<u64>,
        halt: Option<(String, String, Option<u64>, Option<f64>)>,
        maxBytes: Option<usize>,
        capture: bool,
        results: Option<Vec<u8>>,
        stdout: Option<RawFd>,
        stderr: Option<RawFd>,
        streamOutput: bool,
        jobClass: Py<PyAny>,
        resultClass: Py<PyAny>,
        usageClass: Py<PyAny>,
        utf8: bool,
        spawners: usize,
    ) -> PyResult<Self> {
        if concurrency == 0 {
            return Err(PyValueError::new_err("concurrency must be at least 1"));
        }
        let kill_grace = finite(killGrace, "killGrace")?;
        let retry_delay = finite(retryDelay, "retryDelay")?;
        let timeout = timeout.map(|t| finite(t, "timeout")).transpose()?;
        let idle_timeout = idleTimeout.map(|t| finite(t, "idleTimeout")).transpose()?;
        let limits = Limits { concurrency, ahead: ahead.max(1), retries, retry_delay, memfree };
        let devnull = open_devnull().map_err(|e| os_error(e, "jobs: /dev/null"))?;
        let template = SpawnArgs { envp: Vec::new(), ..template };
        let results =
            results.map(|r| PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(r)));
        let spawners = match spawners.min(concurrency) {
            0 | 1 if concurrency == 1 => None,
            0 => None,
            count => {
                // Their spawns overlap: a spawn channel for each, made now.
                ferroproc_core::spawn::channel::prepare_for(count);
                Some(spawner::Spawners::new(count).map_err(|e| os_error(e, "jobs: cannot start the spawner threads"))?)
            }
        };
        let inner = Inner {
            shared: Arc::downgrade(engine.get().shared()),
            config: Config {
                template,
                environ,
                max_bytes: maxBytes,
                capture,
                results,
                stdout,
                stderr,
                stream_output: streamOutput,
                kill_grace,
                timeout,
                idle_timeout,
                classes: input::Classes { job: jobClass, utf8 },
                result_class: resultClass,
                usage_class: usageClass,
            },
            state: Mutex::new(State {
                sched: Scheduler::new(limits, halt_policy(halt)?),
                running: HashMap::new(),
                results: Vec::new(),
                outputs: Vec::new(),
                halt_seq: None,
                failed: Vec::new(),
                devnull: Some(devnull),
                closed: false,
                stopping: None,
            }),
            notify: Mutex::new(Some(Arc::new(notify))),
            news: AtomicBool::new(false),
            spawners,
            starved: AtomicBool::new(false),
        };
        Ok(JobQueue { inner: Arc::new(inner) })
    }

    /// Queue `item` as job `seq` if it is a usual job (see `input`), and
    /// start what can start; False leaves it to Python's checks, which
    /// then call `pushPrepared`.
    fn push(&self, py: Python<'_>, seq: u64, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.check_thread()?;
        let config = &self.inner.config;
        let Some(plain) = input::read(py, item, &config.classes)? else { return Ok(false) };
        let idle = plain.idle.or(config.idle_timeout);
        if idle.is_some() && (config.results.is_some() || config.stdout.is_some() || config.stderr.is_some()) {
            return Ok(false);
        }
        let timeout = plain.timeout.or(config.timeout);
        let payload = start::payload(
            config,
            plain.job,
            Some(plain.argv),
            plain.envp,
            plain.cwd,
            plain.stdin,
            timeout,
            idle,
            None,
        )?;
        self.queue(py, seq, payload);
        Ok(true)
    }

    /// Queue job `seq` (the `job` object) as Python prepared it: either
    /// `argv` (with `envp`, None for the queue's environment, and `cwd`)
    /// over the queue's template, or `args`, the job's own full spawn
    /// arguments; its limits resolved. Then start what can start.
    #[pyo3(signature = (seq, job, argv, envp, cwd, stdin, timeout, idleTimeout, args))]
    #[allow(clippy::too_many_arguments)]
    fn pushPrepared(
        &self,
        py: Python<'_>,
        seq: u64,
        job: Py<PyAny>,
        argv: Option<Vec<Vec<u8>>>,
        envp: Option<Vec<Vec<u8>>>,
        cwd: Option<Vec<u8>>,
        stdin: Option<Py<PyBytes>>,
        timeout: Option<f64>,
        idleTimeout: Option<f64>,
        args: Option<SpawnArgs>,
    ) -> PyResult<()> {
        self.check_thread()?;
        let payload = start::payload(&self.inner.config, job, argv, envp, cwd, stdin, timeout, idleTimeout, args)?;
        self.queue(py, seq, payload);
        Ok(())
    }

    /// Start what can start now (retries whose delay is over, jobs the
    /// memory gate held back).
    fn kick(&self, py: Python<'_>) -> PyResult<()> {
        self.check_thread()?;
        self.inner.starved.store(false, Ordering::Release);
        start::start_more(py, &self.inner);
        Ok(())
    }

    /// The finished jobs' results (`JobResult`s) and the output pieces
    /// since the last call, when to `kick()` next (None: no need), and the
    /// job whose end reached the halt policy (once).
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, Option<f64>, Option<u64>)> {
        self.inner.news.store(false, Ordering::Release);
        let failed = std::mem::take(&mut lock(&self.inner.state).failed);
        if !failed.is_empty() {
            for f in failed {
                start::fail(py, &self.inner, f);
            }
            start::start_more(py, &self.inner);
        }
        let (results, outputs, wake, halt) = {
            let mut st = lock(&self.inner.state);
            let halt = st.halt_seq.take();
            (std::mem::take(&mut st.results), std::mem::take(&mut st.outputs), st.sched.wake_at(), halt)
        };
        let results = PyList::new(py, results)?;
        let outputs = PyList::new(py, outputs)?;
        Ok((results, outputs, wake, halt))
    }

    /// The number of jobs to run, once known (a halt percentage needs it).
    #[pyo3(name = "setTotal")]
    fn set_total(&self, total: u64) {
        lock(&self.inner.state).sched.set_total(total);
    }

    /// Start no more jobs, and stop the running ones (their group: SIGTERM,
    /// SIGKILL after `grace`, by default the queue's `killGrace`); they are
    /// reported as they end. Again with a shorter grace, it brings the
    /// SIGKILL forward (0: at once), also for jobs a time limit is stopping.
    #[pyo3(signature = (grace=None))]
    fn cancel(&self, grace: Option<f64>) -> PyResult<()> {
        let grace = match grace {
            Some(g) if !(g.is_finite() && g >= 0.0) => {
                return Err(PyValueError::new_err(format!("grace must be a finite number of seconds >= 0, not {g}")))
            }
            Some(g) => g,
            None => self.inner.config.kill_grace,
        };
        let (dropped, running, stopping) = {
            let mut st = lock(&self.inner.state);
            let dropped = st.sched.cancel();
            let dropped = st.report_dropped(dropped);
            let stopping = match st.stopping.take() {
                Some(s) if s.grace <= grace => s,
                _ => Stopping::cancel(grace),
            };
            st.stopping = Some(stopping.clone());
            let running: Vec<_> = st.running.values().cloned().collect();
            (dropped, running, stopping)
        };
        drop(dropped);
        start::stop_all(&self.inner, running, &stopping);
        self.inner.notify_soon();
        Ok(())
    }

    /// Start no more jobs, and let the running ones end by themselves (a
    /// failed one is not retried); they are reported as they end.
    fn drain(&self) {
        let dropped = {
            let mut st = lock(&self.inner.state);
            let dropped = st.sched.cancel();
            st.report_dropped(dropped)
        };
        drop(dropped);
        self.inner.notify_soon();
    }

    /// Release the queue's fds and callback (the run is over). Refused while
    /// jobs run.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let (devnull, dropped) = {
            let mut st = lock(&self.inner.state);
            if st.sched.running() > 0 {
                return Err(PyRuntimeError::new_err("JobQueue.close: jobs are still running"));
            }
            st.closed = true;
            let dropped = st.sched.cancel();
            (st.devnull.take(), dropped)
        };
        drop((devnull, dropped));
        if let Some(spawners) = &self.inner.spawners {
            // Idle (no job runs): they go at once. Without the GIL, which
            // they never take anyway.
            py.detach(|| spawners.close());
        }
        let notify = lock(&self.inner.notify).take();
        drop(notify);
        Ok(())
    }

    /// How many more prepared jobs the queue wants.
    #[getter]
    fn wanted(&self) -> usize {
        lock(&self.inner.state).sched.wanted()
    }

    /// Jobs running now.
    #[getter]
    fn running(&self) -> usize {
        lock(&self.inner.state).sched.running()
    }

    /// Attempts started so far.
    #[getter]
    fn started(&self) -> u64 {
        lock(&self.inner.state).sched.started()
    }

    /// Nothing runs or waits to start.
    #[getter]
    fn idle(&self) -> bool {
        lock(&self.inner.state).sched.is_idle()
    }

    /// Results, output or a wake-up time have come since the last `take()`.
    #[getter]
    fn news(&self) -> bool {
        self.inner.news.load(Ordering::Acquire)
    }

    /// A halt policy stopped the run.
    #[getter]
    fn halted(&self) -> bool {
        lock(&self.inner.state).sched.is_halted()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(n) = self.inner.notify.try_lock() {
            if let Some(f) = &*n {
                visit.call(&**f)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let notify = lock(&self.inner.notify).take();
        drop(notify);
    }
}

impl JobQueue {
    fn queue(&self, py: Python<'_>, seq: u64, payload: Payload) {
        let refused = lock(&self.inner.state).sched.push(seq, payload).err();
        drop(refused);
        start::start_more(py, &self.inner);
    }

    fn check_thread(&self) -> PyResult<()> {
        let Some(shared) = Shared::get(&self.inner.shared) else {
            return Err(PyRuntimeError::new_err("jobs: the engine has gone (or this process is a fork)"));
        };
        if !shared.on_driver_thread() {
            return Err(PyRuntimeError::new_err(
                "jobs must be run from the reactor's thread, not while it runs in another one",
            ));
        }
        Ok(())
    }
}

fn open_devnull() -> std::io::Result<OwnedFd> {
    // SAFETY: a constant NUL-terminated path; the new fd is ours alone.
    let fd = ferroproc_core::sys::cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
