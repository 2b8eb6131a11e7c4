//! Turning the core's events into protocol calls, in order, with no lock
//! held while Python runs.
//!
//! Each child's events are taken one at a time under its lock, then the
//! lock is released and the protocol called: a protocol may call back into
//! any transport (a `closeStdout()` inside `outReceived` withdraws the
//! output still queued for stdout, exactly as if it had not arrived yet).

use std::sync::Arc;

use ferroproc_core::child::{Event, TimedOut, TimeoutKind};
use ferroproc_core::reap::Usage;
use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;

use crate::handle::{lock, Shared};
use crate::host::Cell;

/// What the host gives the engine: how a wait status becomes the reason
/// passed to `processExited`/`processEnded`, and where errors raised by
/// callbacks are reported (`log_error(where, exc)`). Twisted code gets
/// Twisted's own classes and logging this way.
pub(crate) struct Callbacks {
    pub(crate) reason: Py<PyAny>,
    pub(crate) log_error: Py<PyAny>,
}

impl Callbacks {
    /// Report an exception from a callback; `Err` only for what must stop the
    /// loop (KeyboardInterrupt, SystemExit and other non-`Exception`s).
    pub(crate) fn report(&self, py: Python<'_>, what: &str, e: PyErr) -> PyResult<()> {
        if !e.is_instance_of::<PyException>(py) {
            return Err(e);
        }
        // into_value attaches the traceback, so the log shows where it was raised.
        if let Err(e2) = self.log_error.call1(py, (what, e.into_value(py))) {
            e2.write_unraisable(py, None);
        }
        Ok(())
    }

    /// The reason for `processExited`/`processEnded`: the host's
    /// `reason(status, timedOut, resourceUsage)`, with `timedOut` as
    /// `(kind, limit, killed)` when a time limit ended the child.
    fn reason(&self, py: Python<'_>, end: End) -> PyResult<Py<PyAny>> {
        let timed_out = end.timed_out.map(|t| {
            let kind = match t.kind {
                TimeoutKind::Wall => "wall",
                TimeoutKind::Idle => "idle",
            };
            (kind, t.limit, t.killed)
        });
        let usage = end.usage.map(|u| usage_object(py, &u)).transpose()?;
        self.reason.call1(py, (end.status, timed_out, usage))
    }
}

/// How a child ended, for its reason.
#[derive(Clone, Copy)]
struct End {
    status: Option<i32>,
    timed_out: Option<TimedOut>,
    usage: Option<Usage>,
}

fn end_of(cell: &Cell) -> End {
    cell.with(|c, _| {
        let exit = c.exit();
        End { status: exit.and_then(|e| e.status), timed_out: c.timed_out(), usage: exit.and_then(|e| e.usage) }
    })
}

/// A `ferroproc.error.ResourceUsage(userTime, systemTime, maxRSS)`.
pub(crate) fn usage_object(py: Python<'_>, u: &Usage) -> PyResult<Py<PyAny>> {
    static CLASS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let cls = CLASS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("ferroproc.error")?.getattr("ResourceUsage")?.unbind())
    })?;
    cls.call1(py, (u.user.as_secs_f64(), u.system.as_secs_f64(), u.max_rss_kib * 1024))
}

/// Deliver the events of every child that has some. `Err` for what must
/// stop the loop; the undelivered events wait for the next turn.
pub(crate) fn deliver_all(py: Python<'_>, shared: &Shared, callbacks: &Callbacks) -> PyResult<()> {
    while let Some(cell) = shared.lp.next_ready() {
        if let Err(e) = deliver(py, shared, callbacks, &cell) {
            shared.lp.mark_ready(&cell);
            return Err(e);
        }
    }
    Ok(())
}

fn deliver(py: Python<'_>, shared: &Shared, cb: &Callbacks, cell: &Arc<Cell>) -> PyResult<()> {
    if let Some(sink) = cell.with(|_, x| x.sink.clone()) {
        return sink.deliver(py, cell);
    }
    loop {
        let next = cell.with(|c, x| {
            let event = c.next_event()?;
            let proto = if x.removed { None } else { x.proto.clone() };
            Some((event, proto, x.direct_data))
        });
        let Some((event, proto, direct)) = next else { return Ok(()) };
        match event {
            Event::Data { fd, data } => {
                let Some(proto) = proto else { continue };
                let data = data.into_object();
                let r = if direct {
                    // What ProcessProtocol.childDataReceived would do, without its frame.
                    match fd {
                        1 => proto.call_method1(py, intern!(py, "outReceived"), (data,)),
                        2 => proto.call_method1(py, intern!(py, "errReceived"), (data,)),
                        _ => continue,
                    }
                } else {
                    proto.call_method1(py, intern!(py, "childDataReceived"), (fd, data))
                };
                if let Err(e) = r {
                    cb.report(py, "childDataReceived", e)?;
                    // As in Twisted: a failing data callback loses that pipe.
                    let flush = cell.with(|c, _| {
                        if c.is_terminal() {
                            c.close_terminal();
                            false
                        } else {
                            c.close_fd(fd)
                        }
                    });
                    if flush {
                        shared.lp.mark_dirty(cell);
                    }
                }
            }
            Event::Lost { fd } => {
                if let Some(proto) = proto {
                    if let Err(e) = proto.call_method1(py, intern!(py, "childConnectionLost"), (fd,)) {
                        cb.report(py, "childConnectionLost", e)?;
                    }
                }
            }
            Event::Exited => {
                if let Some(proto) = proto {
                    let r = cb
                        .reason(py, end_of(cell))
                        .and_then(|reason| proto.call_method1(py, intern!(py, "processExited"), (reason,)));
                    if let Err(e) = r {
                        cb.report(py, "processExited", e)?;
                    }
                }
            }
            Event::Ended => {
                let (proto, producer) = cell.with(|_, x| (x.proto.take(), x.producer.take()));
                let end = end_of(cell);
                shared.lp.retire(cell);
                let transport = lock(&shared.transports).remove(&Shared::key(cell));
                drop((producer, transport));
                if let (Some(proto), false) = (proto, cell.with(|_, x| x.removed)) {
                    let r = cb
                        .reason(py, end)
                        .and_then(|reason| proto.call_method1(py, intern!(py, "processEnded"), (reason,)));
                    if let Err(e) = r {
                        cb.report(py, "processEnded", e)?;
                    }
                }
            }
            Event::ResumeProducer { generation } => {
                if let Some(p) = cell.with(|_, x| x.producer_of(generation)) {
                    if let Err(e) = p.call_method0(py, intern!(py, "resumeProducing")) {
                        cb.report(py, "resumeProducing", e)?;
                    }
                }
            }
            Event::StopProducer { generation } => {
                let p = cell.with(|_, x| match x.producer.as_deref() {
                    Some((g, _)) if *g == generation => x.producer.take().map(|b| b.1),
                    _ => None,
                });
                if let Some(p) = p {
                    if let Err(e) = p.call_method0(py, intern!(py, "stopProducing")) {
                        cb.report(py, "stopProducing", e)?;
                    }
                }
            }
        }
    }
}
