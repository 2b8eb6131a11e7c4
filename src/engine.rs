//! The engine behind a reactor (`ferroproc._core.Engine`): it turns the core
//! loop. Each turn polls with the GIL released, does the I/O for the ready
//! fds (reads go straight into `bytes`), delivers the children's events in
//! order, runs calls from other threads and due timers, and finally writes
//! everything the turn queued.
//!
//! A host drives it: ferroproc's own reactor with `run()`, a Twisted reactor
//! or an asyncio loop by watching `fileno()` and calling `runOnce(0)`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferroproc_core::evloop::Loop;
use ferroproc_core::timers::Timers;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::{self, Callbacks};
use crate::errors::os_error;
use crate::handle::{lock, AfterTurn, Shared, TimerJob};
use crate::host::PyAlloc;
use crate::spawn::{self, SpawnArgs};
use crate::timers::{self, now, DelayedCall};
use crate::transport::Process;

/// Extra deliver-and-flush rounds at the end of a turn (see `Engine::turn`).
const EAGER_ROUNDS: usize = 8;

#[derive(Default)]
struct RunState {
    running: bool,
    stopping: bool,
}

/// The engine behind a reactor (`ferroproc._core.Engine`).
///
/// `reason` turns a raw wait status (or None when unknown) into the object
/// passed to `processExited`/`processEnded`; `log_error(where, exc)` reports
/// an exception raised by a callback. Both come from the host, so Twisted code
/// can get Twisted's own classes.
#[pyclass(frozen, module = "ferroproc._core")]
pub struct Engine {
    shared: Arc<Shared>,
    callbacks: Callbacks,
    run: Mutex<RunState>,
}

impl Engine {
    /// The state the engine shares (the jobs runner's queue holds it weakly).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether calls from other threads are waiting.
    fn calls_pending(&self) -> bool {
        !lock(&self.shared.calls).is_empty()
    }

    /// One loop turn: poll (at most `cap`), I/O, events, calls, timers, flush.
    fn turn(&self, py: Python<'_>, cap: Option<Duration>, run_timers: bool) -> PyResult<()> {
        let shared = &self.shared;
        let lp = &shared.lp;
        if lp.is_forked() {
            return Err(PyRuntimeError::new_err("this engine belongs to the process this one was forked from"));
        }
        let _turn = lp.enter_turn();
        crate::debuglog::refresh(py);
        let mut timeout = if self.calls_pending() {
            Some(Duration::ZERO)
        } else if run_timers {
            timers::next_due(shared).map(|t| Duration::try_from_secs_f64((t - now()).max(0.0)).unwrap_or(Duration::MAX))
        } else {
            None
        };
        if let Some(c) = cap {
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        let polled = match py.detach(|| lp.poll(timeout)) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                py.check_signals()?;
                Default::default()
            }
            Err(e) => return Err(os_error(e, "poll")),
        };
        for e in lp.handle(&polled.ready, &mut PyAlloc(py)) {
            let err = os_error(e.error, &format!("{} child {}", e.what, e.pid));
            self.callbacks.report(py, &format!("the engine ({} child {})", e.what, e.pid), err)?;
        }
        // Exits are logged before protocols hear of them.
        crate::debuglog::drain(py);
        let mut r = self.deliver(py, run_timers);
        // Whatever happened, what the turn wrote leaves now.
        lp.flush();
        // A flush that drained a queue resumes its producer: let it write
        // again at once, while the pipe has room, rather than a turn later
        // (a few rounds at most, so other fds are not kept waiting).
        for _ in 0..EAGER_ROUNDS {
            if r.is_err() || !lp.has_ready() {
                break;
            }
            r = dispatch::deliver_all(py, shared, &self.callbacks);
            lp.flush();
        }
        if r.is_ok() {
            r = self.after_turn(py);
        }
        // After the end-of-turn calls: the jobs they started are logged too.
        crate::debuglog::drain(py);
        if polled.signals {
            py.check_signals()?;
        }
        r
    }

    fn deliver(&self, py: Python<'_>, run_timers: bool) -> PyResult<()> {
        dispatch::deliver_all(py, &self.shared, &self.callbacks)?;
        let calls = std::mem::take(&mut *lock(&self.shared.calls));
        let mut calls = calls.into_iter();
        while let Some(c) = calls.next() {
            if let Err(e) = c.f.call(py, c.args.bind(py), c.kwargs.as_ref().map(|k| k.bind(py))) {
                if let Err(e) = self.callbacks.report(py, "a call from another thread", e) {
                    let mut queue = lock(&self.shared.calls);
                    let newer = std::mem::take(&mut *queue);
                    queue.extend(calls);
                    queue.extend(newer);
                    return Err(e);
                }
            }
        }
        // Events the calls led to, before the timers.
        dispatch::deliver_all(py, &self.shared, &self.callbacks)?;
        if run_timers {
            timers::run_due(py, &self.shared, &self.callbacks)?;
            dispatch::deliver_all(py, &self.shared, &self.callbacks)?;
        }
        Ok(())
    }

    /// The calls queued for the end of the turn (the jobs runner's reports),
    /// and what they led to (jobs started, their input written). Calls
    /// queued meanwhile run in the next turn, which the loop is woken for.
    fn after_turn(&self, py: Python<'_>) -> PyResult<()> {
        let calls = std::mem::take(&mut *lock(&self.shared.after_turn));
        if calls.is_empty() {
            return Ok(());
        }
        let mut calls = calls.into_iter();
        let mut r = Ok(());
        for call in calls.by_ref() {
            let f = match call {
                AfterTurn::Call(f) => f,
                AfterTurn::Run(f) => {
                    f(py);
                    continue;
                }
            };
            if let Err(e) = f.call0(py) {
                if let Err(e) = self.callbacks.report(py, "the end of a loop turn", e) {
                    r = Err(e);
                    break;
                }
            }
        }
        let left: Vec<AfterTurn> = calls.collect();
        let dispatched = dispatch::deliver_all(py, &self.shared, &self.callbacks);
        self.shared.lp.flush();
        let mut queued = lock(&self.shared.after_turn);
        let newer = std::mem::take(&mut *queued);
        queued.extend(left);
        queued.extend(newer);
        let again = !queued.is_empty();
        drop(queued);
        if again {
            self.shared.lp.wake();
        }
        r.and(dispatched)
    }

    fn set_driver(&self, thread: Option<std::thread::ThreadId>) -> Option<std::thread::ThreadId> {
        std::mem::replace(&mut *lock(&self.shared.driver), thread)
    }
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (reason, log_error, exited_already=None, immediate_writes=false))]
    fn new(
        reason: Py<PyAny>,
        log_error: Py<PyAny>,
        exited_already: Option<Py<PyAny>>,
        immediate_writes: bool,
    ) -> PyResult<Self> {
        let lp = Loop::new().map_err(|e| os_error(e, "Engine"))?;
        Ok(Engine {
            shared: Arc::new(Shared {
                lp,
                exited_already,
                timers: Mutex::new(Timers::default()),
                calls: Mutex::new(Vec::new()),
                driver: Mutex::new(None),
                transports: Mutex::new(HashMap::new()),
                immediate_writes,
                after_turn: Mutex::new(Vec::new()),
                starting: AtomicUsize::new(0),
            }),
            callbacks: Callbacks { reason, log_error },
            run: Mutex::new(RunState::default()),
        })
    }

    /// Start a child and connect `protocol` to it (`makeConnection` is
    /// called before this returns). `args` is a `ferroproc._spawnargs.SpawnArgs`.
    #[pyo3(signature = (protocol, args))]
    fn spawn(&self, py: Python<'_>, protocol: Option<Py<PyAny>>, args: SpawnArgs) -> PyResult<Py<Process>> {
        spawn::spawn(py, &self.shared, &self.callbacks, protocol, args)
    }

    /// Run until `stop()`. Raises what a callback raised if it was not an
    /// `Exception` (KeyboardInterrupt, SystemExit), and what a signal handler raised.
    fn run(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut r = lock(&self.run);
            if r.running {
                return Err(PyRuntimeError::new_err("the engine is already running"));
            }
            *r = RunState { running: true, stopping: false };
        }
        let previous = self.set_driver(Some(std::thread::current().id()));
        let result = loop {
            if lock(&self.run).stopping || self.shared.lp.is_forked() {
                break Ok(());
            }
            if let Err(e) = self.turn(py, None, true) {
                break Err(e);
            }
        };
        self.set_driver(previous);
        *lock(&self.run) = RunState::default();
        result
    }

    /// One loop turn, waiting at most `timeout` seconds (0: do only what is
    /// ready); `timers=False` leaves due timers to the host. Used by hosts
    /// such as a Twisted reactor or an asyncio loop that drive the engine.
    #[pyo3(name = "runOnce", signature = (timeout=0.0, timers=true))]
    fn run_once(&self, py: Python<'_>, timeout: f64, timers: bool) -> PyResult<()> {
        let timeout = timers::finite(timeout, "runOnce: timeout")?;
        let cap = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        self.turn(py, Some(cap), timers)
    }

    /// Ask `run()` to return after the current turn. Safe from any thread.
    fn stop(&self) {
        lock(&self.run).stopping = true;
        self.shared.lp.wake();
    }

    /// Whether `run()` is active.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.run).running
    }

    /// How many children were started and have not ended yet (`processEnded`
    /// not yet delivered), and those being started on another thread.
    #[getter(processCount)]
    fn process_count(&self) -> usize {
        self.shared.lp.live() + self.shared.starting.load(Ordering::Acquire)
    }

    /// The poll fd: readable whenever the engine has work (for hosts).
    fn fileno(&self) -> i32 {
        self.shared.lp.fileno()
    }

    /// The fd to pass to `signal.set_wakeup_fd` while the engine runs, so a
    /// signal wakes the loop and its Python handler runs promptly.
    #[pyo3(name = "wakeupFd")]
    fn wakeup_fd(&self) -> i32 {
        self.shared.lp.signal_fd()
    }

    /// Whether callbacks or I/O are waiting (a host should call `runOnce(0)`).
    #[pyo3(name = "hasPending")]
    fn has_pending(&self) -> bool {
        self.shared.lp.has_work() || self.calls_pending() || !lock(&self.shared.after_turn).is_empty()
    }

    /// When the earliest timer is due (`seconds()` time), or None.
    #[pyo3(name = "nextTimer")]
    fn next_timer(&self) -> Option<f64> {
        timers::next_due(&self.shared)
    }

    /// The thread that runs protocol code for this engine: set it while a
    /// host drives the engine from that thread (None: any thread, as when
    /// nothing drives it). `spawnProcess` from another thread is refused.
    #[pyo3(name = "bindThread", signature = (bound=true))]
    fn bind_thread(&self, bound: bool) {
        self.set_driver(bound.then(|| std::thread::current().id()));
    }

    /// The transports of the children that have not ended, less those a
    /// host took off its reactor (`Process._removeFromReactor`).
    fn processes(&self, py: Python<'_>) -> Vec<Py<Process>> {
        let all: Vec<Py<PyAny>> = lock(&self.shared.transports).values().map(|t| t.clone_ref(py)).collect();
        all.into_iter()
            .filter_map(|t| t.bind(py).cast::<Process>().ok().map(|p| p.clone().unbind()))
            .filter(|p| !p.get().is_removed())
            .collect()
    }

    /// The current time in seconds (as `time.time()`).
    fn seconds(&self) -> f64 {
        now()
    }

    /// Call `f(*args, **kwargs)` `delay` seconds from now; returns a DelayedCall.
    #[pyo3(name = "callLater", signature = (delay, f, args, kwargs=None))]
    fn call_later(
        &self,
        py: Python<'_>,
        delay: f64,
        f: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<Py<DelayedCall>> {
        timers::call_later(py, &self.shared, delay, f, args, kwargs)
    }

    /// Run `f(*args, **kwargs)` on the loop thread soon. Safe from any thread.
    #[pyo3(name = "callFromThread", signature = (f, args, kwargs=None))]
    fn call_from_thread(&self, f: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) {
        lock(&self.shared.calls).push(crate::handle::Call { f, args, kwargs });
        self.shared.lp.wake();
    }

    /// For a host whose loop has closed for good while transports of this
    /// engine live on (asyncio's, kept by the program): nothing will turn
    /// the engine again. Every pipe is closed, children that have exited
    /// are reaped now and the others as they exit (on a thread); until
    /// then a transport can still signal its child. Protocols get no more
    /// calls (and are let go), and `processCount` is 0.
    fn abandon(&self) {
        let cells = self.shared.lp.abandon();
        let held: Vec<_> = cells
            .iter()
            .map(|cell| {
                cell.with(|_, x| {
                    x.removed = true;
                    (x.proto.take(), x.producer.take())
                })
            })
            .collect();
        let transports = std::mem::take(&mut *lock(&self.shared.transports));
        // Python objects go after every lock, with the GIL held.
        drop((held, cells, transports));
    }

    /// In a child made by `os.fork()`: this engine's children and fds belong
    /// to the parent. From now on it refuses to run or spawn, its transports
    /// act as if their child had gone, and nothing of the parent's is
    /// touched. It takes no lock (another thread may have held one when the
    /// process forked): the host calls it from its fork hook, drops the
    /// engine, and makes a fresh one on first use.
    #[pyo3(name = "forgetAfterFork")]
    fn forget_after_fork(&self) {
        self.shared.lp.forget_after_fork();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callbacks.reason)?;
        visit.call(&self.callbacks.log_error)?;
        visit.call(&self.shared.exited_already)?;
        // Never block a collection: state locked elsewhere is skipped (which
        // only ever keeps objects alive longer).
        if let Ok(t) = self.shared.timers.try_lock() {
            for job in t.values() {
                if let TimerJob::Call(call) = job {
                    visit.call(call)?;
                }
            }
        }
        if let Ok(calls) = self.shared.calls.try_lock() {
            for c in calls.iter() {
                visit.call(&c.f)?;
                visit.call(&c.args)?;
                visit.call(&c.kwargs)?;
            }
        }
        if let Ok(calls) = self.shared.after_turn.try_lock() {
            for call in calls.iter() {
                if let AfterTurn::Call(f) = call {
                    visit.call(&**f)?;
                }
            }
        }
        // Each live child through its transport, which visits the child's
        // protocol and producer (the one path to them, so each is counted once).
        if let Ok(transports) = self.shared.transports.try_lock() {
            for t in transports.values() {
                visit.call(t)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let timers = lock(&self.shared.timers).drain();
        let calls = std::mem::take(&mut *lock(&self.shared.calls));
        let transports = std::mem::take(&mut *lock(&self.shared.transports));
        let after_turn = std::mem::take(&mut *lock(&self.shared.after_turn));
        drop((timers, calls, transports, after_turn));
    }
}
