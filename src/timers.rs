//! `callLater` and its `DelayedCall` (Twisted's `IDelayedCall`), on the
//! core timer queue.
//!
//! Times are wall-clock seconds, as `time.time()` and Twisted's
//! `reactor.seconds()`. Delays must be finite: a NaN or an infinity is a
//! `ValueError` naming the parameter; a huge finite delay is a timer that
//! never comes due.

use std::sync::{Arc, Mutex};

pub(crate) use ferroproc_core::timers::now;
use ferroproc_core::timers::TimerId;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch::Callbacks;
use crate::handle::{lock, Handle, Shared, TimerJob};
use crate::host::Cell;

/// `value`, if it is a finite number of seconds (`what` names it otherwise).
pub(crate) fn finite(value: f64, what: &str) -> PyResult<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(PyValueError::new_err(format!("{what} must be a finite number of seconds, not {value}")))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Called,
    Cancelled,
}

struct Scheduled {
    /// Its entry in the engine's timers while pending.
    id: Option<TimerId>,
    time: f64,
    state: State,
    func: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    kwargs: Option<Py<PyDict>>,
}

/// A call scheduled with `callLater` (Twisted's `IDelayedCall`).
#[pyclass(frozen, weakref, module = "ferroproc._core", name = "DelayedCall")]
pub struct DelayedCall {
    handle: Handle,
    st: Mutex<Scheduled>,
}

fn already(py: Python<'_>, name: &str) -> PyErr {
    match py.import("ferroproc.error").and_then(|m| m.getattr(name)) {
        Ok(cls) => match cls.cast_into::<pyo3::types::PyType>() {
            Ok(cls) => PyErr::from_type(cls, ()),
            Err(e) => e.into(),
        },
        Err(e) => e,
    }
}

/// Schedule `f(*args, **kwargs)` in `delay` seconds.
pub(crate) fn call_later(
    py: Python<'_>,
    shared: &Arc<Shared>,
    delay: f64,
    f: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
) -> PyResult<Py<DelayedCall>> {
    if finite(delay, "callLater: delay")? < 0.0 {
        return Err(PyValueError::new_err(format!("callLater: delay must be >= 0, not {delay}")));
    }
    if !f.bind(py).is_callable() {
        return Err(PyTypeError::new_err("callLater: f must be callable"));
    }
    let time = now() + delay;
    let call = Py::new(
        py,
        DelayedCall {
            handle: Arc::downgrade(shared),
            st: Mutex::new(Scheduled {
                id: None,
                time,
                state: State::Pending,
                func: Some(f),
                args: Some(args),
                kwargs,
            }),
        },
    )?;
    let payload = TimerJob::Call(call.clone_ref(py).into_any());
    let id = lock(&shared.timers).insert(time, payload);
    lock(&call.get().st).id = Some(id);
    shared.lp.nudge();
    Ok(call)
}

/// When the earliest timer is due.
pub(crate) fn next_due(shared: &Shared) -> Option<f64> {
    lock(&shared.timers).next_due()
}

/// Enforce `cell`'s time limits at `at` (see `Child::on_deadline`).
pub(crate) fn watch_deadline(shared: &Shared, cell: &Arc<Cell>, at: f64) {
    lock(&shared.timers).insert(at, TimerJob::Deadline(cell.clone()));
    shared.lp.nudge();
}

/// A child's deadline came: enforce its limits, and hand what that led to
/// (signals sent, pipes closing) to the loop.
fn on_deadline(shared: &Shared, cell: &Arc<Cell>, t: f64) {
    let (next, events, flush) = cell.with(|c, _| {
        let next = c.on_deadline(t);
        (next, c.has_events(), c.wants_flush())
    });
    if let Some(at) = next {
        watch_deadline(shared, cell, at);
    }
    if flush {
        shared.lp.mark_dirty(cell);
    }
    if events {
        shared.lp.mark_ready(cell);
    }
}

/// Run the calls due now. A call scheduled meanwhile waits for the next turn,
/// even with a zero delay. `Err` only for what must stop the loop.
pub(crate) fn run_due(py: Python<'_>, shared: &Shared, callbacks: &Callbacks) -> PyResult<()> {
    let t = now();
    let due: Vec<(TimerId, TimerJob)> = {
        let mut timers = lock(&shared.timers);
        std::iter::from_fn(|| timers.pop_due(t)).collect()
    };
    let mut due = due.into_iter();
    while let Some((id, job)) = due.next() {
        let call = match job {
            TimerJob::Deadline(cell) => {
                on_deadline(shared, &cell, t);
                continue;
            }
            TimerJob::Call(call) => call,
        };
        let Ok(call) = call.bind(py).cast::<DelayedCall>().map(|c| c.clone().unbind()) else { continue };
        let job = {
            let mut st = lock(&call.get().st);
            if st.state != State::Pending || st.id != Some(id) {
                // Cancelled, or moved (a newer entry stands for it).
                None
            } else {
                st.state = State::Called;
                st.id = None;
                st.func.take().map(|f| (f, st.args.take(), st.kwargs.take()))
            }
        };
        let Some((f, args, kwargs)) = job else { continue };
        let args = args.map_or_else(|| PyTuple::empty(py), |a| a.into_bound(py));
        if let Err(e) = f.call(py, args, kwargs.as_ref().map(|k| k.bind(py))) {
            if let Err(e) = callbacks.report(py, "a delayed call", e) {
                // Stopping: the rest run next time. What is not put back
                // (a call cancelled meanwhile) is released after the lock:
                // the last reference to a DelayedCall may go with it, and
                // its weakref callbacks run Python (which may callLater).
                let rest: Vec<(TimerId, TimerJob)> = due.collect();
                let mut dropped: Vec<Py<PyAny>> = Vec::new();
                let mut timers = lock(&shared.timers);
                for (_, job) in rest {
                    match job {
                        TimerJob::Call(c) => {
                            let Ok(dc) = c.bind(py).cast::<DelayedCall>().map(|c| c.clone().unbind()) else {
                                dropped.push(c);
                                continue;
                            };
                            let mut st = lock(&dc.get().st);
                            if st.state == State::Pending {
                                st.id = Some(timers.insert(st.time, TimerJob::Call(c)));
                            } else {
                                dropped.push(c);
                            }
                            drop(st);
                            dropped.push(dc.into_any());
                        }
                        deadline @ TimerJob::Deadline(_) => {
                            timers.insert(t, deadline);
                        }
                    }
                }
                drop(timers);
                drop(dropped);
                return Err(e);
            }
        }
    }
    Ok(())
}

impl DelayedCall {
    fn check_active(&self, py: Python<'_>) -> PyResult<std::sync::MutexGuard<'_, Scheduled>> {
        let st = lock(&self.st);
        match st.state {
            State::Pending => Ok(st),
            State::Cancelled => Err(already(py, "AlreadyCancelled")),
            State::Called => Err(already(py, "AlreadyCalled")),
        }
    }

    /// Move the call to `time` (a reset or a delay).
    fn move_to(slf: &Bound<'_, Self>, time: impl FnOnce(f64) -> f64) -> PyResult<()> {
        let py = slf.py();
        let me = slf.get();
        let (old, new_time) = {
            let mut st = me.check_active(py)?;
            st.time = time(st.time);
            (st.id.take(), st.time)
        };
        let Some(shared) = Shared::get(&me.handle) else { return Ok(()) };
        let payload = TimerJob::Call(slf.clone().unbind().into_any());
        let dropped = {
            let mut timers = lock(&shared.timers);
            let dropped = old.and_then(|id| timers.remove(id));
            lock(&me.st).id = Some(timers.insert(new_time, payload));
            dropped
        };
        drop(dropped);
        shared.lp.nudge();
        Ok(())
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
        let (id, dropped) = {
            let mut st = self.check_active(py)?;
            st.state = State::Cancelled;
            (st.id.take(), (st.func.take(), st.args.take(), st.kwargs.take()))
        };
        let entry = Shared::get(&self.handle).and_then(|s| id.and_then(|id| lock(&s.timers).remove(id)));
        drop(entry);
        drop(dropped);
        Ok(())
    }

    /// Run `secondsLater` seconds later than currently scheduled.
    fn delay(slf: &Bound<'_, Self>, secondsLater: f64) -> PyResult<()> {
        let by = finite(secondsLater, "delay: secondsLater")?;
        Self::move_to(slf, |t| t + by)
    }

    /// Run `secondsFromNow` seconds from now instead.
    fn reset(slf: &Bound<'_, Self>, secondsFromNow: f64) -> PyResult<()> {
        let from_now = finite(secondsFromNow, "reset: secondsFromNow")?;
        Self::move_to(slf, |_| now() + from_now)
    }

    /// True until the call has run or been cancelled.
    fn active(&self) -> bool {
        lock(&self.st).state == State::Pending
    }

    /// The scheduled callable (None once run or cancelled).
    #[getter]
    fn func(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.st).func.as_ref().map(|f| f.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (f, time, state) = {
            let st = lock(&self.st);
            (st.func.as_ref().map(|f| f.clone_ref(py)), st.time, st.state)
        };
        // repr() of the callable runs Python: after the lock.
        let f = f.and_then(|f| f.bind(py).repr().ok().map(|r| r.to_string())).unwrap_or_else(|| "None".into());
        let state = match state {
            State::Pending => "",
            State::Cancelled => " cancelled",
            State::Called => " called",
        };
        format!("<DelayedCall at {:.3}{state} {f}>", time - now())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block a collection: a call being run or moved is skipped.
        if let Ok(st) = self.st.try_lock() {
            visit.call(&st.func)?;
            visit.call(&st.args)?;
            visit.call(&st.kwargs)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let dropped = {
            let mut st = lock(&self.st);
            (st.func.take(), st.args.take(), st.kwargs.take())
        };
        drop(dropped);
    }
}
