//! The transport a protocol gets as `self.transport`: ferroproc's
//! `IProcessTransport` (`ferroproc._core.Process`).
//!
//! Every method is a request to the child's state machine, made under its
//! lock with no Python running; what it leads to (events to deliver, writes
//! to flush) is handed to the loop through the engine's [`Handle`]. Calls
//! from any thread are safe; once the engine has gone (or in a forked
//! child) writes are dropped and the child counts as gone.

use std::sync::Arc;

use ferroproc_core::child::{Child, NotOpen, ProducerRegistered, Role, SignalError, WriteLimits, INPUT_FD};
use ferroproc_core::debuglog::Why;
use ferroproc_core::pty;
use ferroproc_core::sys::SigpipeShield;
use pyo3::exceptions::{PyKeyError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::attrs::{program_value_or, set_program_value};
use crate::debuglog::by_program;
use crate::errors::{os_error, parse_signal, signal_error, type_name};
use crate::handle::{lock, Call, Handle, Shared};
use crate::host::{Cell, PyChild, PyChunk};

/// The transport a protocol gets: ferroproc's `IProcessTransport`.
///
/// `pid` is the child's pid until it is reaped, then `None`; `status` is -1
/// while it runs, then the raw wait status.
#[pyclass(frozen, dict, weakref, module = "ferroproc._core", name = "Process")]
pub struct Process {
    cell: Arc<Cell>,
    handle: Handle,
}

impl Process {
    pub(crate) fn new(cell: Arc<Cell>, handle: Handle) -> Self {
        Process { cell, handle }
    }

    /// Run `f` on the child's state, then hand what it led to (events,
    /// writes to flush) to the loop.
    fn act<R: Send>(&self, f: impl FnOnce(&mut Child<PyChunk>, &mut PyChild) -> R + Send) -> R {
        let (r, events, flush) = self.cell.with(|c, x| {
            let r = f(c, x);
            (r, c.has_events(), c.wants_flush())
        });
        if let Some(shared) = Shared::get(&self.handle) {
            if flush {
                shared.lp.mark_dirty(&self.cell);
            }
            if events {
                shared.lp.mark_ready(&self.cell);
            }
        }
        r
    }

    /// Queue `data` for child fd `fd`. It leaves with the rest of what was
    /// written, at the end of the loop turn (of the next one, when written
    /// outside a turn: Twisted's buffering, which programs rely on), or, for
    /// an engine with `immediate_writes` (the asyncio host), at once when
    /// written outside a turn to an idle pipe, as asyncio's transports write.
    fn write_to(&self, py: Python<'_>, fd: i32, data: &Bound<'_, PyAny>, strict: bool) -> PyResult<()> {
        let chunk = chunk(data, "data")?;
        let Some(shared) = Shared::get(&self.handle) else { return Ok(()) };
        let now = shared.immediate_writes && !shared.lp.in_turn();
        let registry = shared.lp.registry();
        let r = self.act(move |c, x| {
            c.write(fd, chunk, strict).map(|q| {
                if now && q.needs_flush {
                    let _shield = SigpipeShield::raise();
                    c.flush_fd(fd, registry);
                }
                q.pause_producer.and_then(|g| x.producer_of(g))
            })
        });
        match r {
            Ok(Some(producer)) => {
                producer.call_method0(py, intern!(py, "pauseProducing"))?;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(NotOpen) => Err(PyKeyError::new_err(format!("writeToChild: child fd {fd} is not an open pipe"))),
        }
    }

    fn close(&self, fd: i64) {
        if let Ok(fd) = i32::try_from(fd) {
            self.act(|c, _| c.close_fd(fd));
        }
    }

    /// Run `f` on the open terminal's master.
    fn with_terminal<R: Send>(
        &self,
        what: &str,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<R> + Send,
    ) -> PyResult<R> {
        if !self.cell.is_terminal() {
            return Err(PyNotImplementedError::new_err("not a PTY transport (spawned without usePTY)"));
        }
        match self.cell.with(|c, _| c.terminal().map(f)) {
            Some(r) => r.map_err(|e| os_error(e, what)),
            None => Err(PyValueError::new_err(format!("{what}: the terminal is closed"))),
        }
    }

    fn not_for_pty(&self, what: &str) -> PyResult<()> {
        if self.cell.is_terminal() {
            return Err(PyNotImplementedError::new_err(format!("{what} is not supported on a PTY transport")));
        }
        Ok(())
    }
}

/// `data` as a chunk: exact `bytes` as they are, a `bytes` subclass copied
/// (so that releasing it never runs Python code); anything else refused.
pub(crate) fn chunk(data: &Bound<'_, PyAny>, what: &str) -> PyResult<PyChunk> {
    let b = data
        .cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be bytes, not {}", type_name(data))))?;
    if b.is_exact_instance_of::<PyBytes>() {
        Ok(PyChunk::new(b.clone()))
    } else {
        Ok(PyChunk::new(PyBytes::new(data.py(), b.as_bytes())))
    }
}

/// A bool, or an int as Twisted code often passes (`registerProducer(p, 1)`).
fn flag(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    if ob.is_instance_of::<PyInt>() {
        return ob.is_truthy();
    }
    Err(PyTypeError::new_err(format!("{what} must be a bool, not {}", type_name(ob))))
}

fn child_fd(ob: &Bound<'_, PyAny>) -> PyResult<i64> {
    if ob.is_instance_of::<PyBool>() || !ob.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("childFD must be an int, not {}", type_name(ob))));
    }
    // Any int: one beyond i64 (or i32) simply names no pipe.
    Ok(ob.extract::<i64>().unwrap_or(i64::MAX))
}

#[pymethods]
#[allow(non_snake_case)] // Twisted's keyword names are public API
impl Process {
    /// The child's pid, or None once it has been reaped.
    #[getter]
    fn pid(&self) -> Option<i32> {
        self.cell.with(|c, _| c.pid())
    }

    /// -1 while the child runs; then its raw wait status (None if someone
    /// else reaped it and the status is unknown).
    #[getter]
    fn status(&self) -> Option<i32> {
        self.cell.with(|c, _| match c.exit() {
            None => Some(-1),
            Some(e) => e.status,
        })
    }

    /// The protocol, until `processEnded` has been delivered.
    #[getter]
    fn proto(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.cell.with(|_, x| x.proto.clone()).map(|p| p.clone_ref(py))
    }

    /// Open pipes: child fd → the parent's fd number.
    #[getter]
    fn pipes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if !self.cell.is_terminal() {
            for (fd, parent) in self.cell.with(|c, _| c.pipes().map(|(fd, p)| (fd, p.raw_fd())).collect::<Vec<_>>()) {
                d.set_item(fd, parent)?;
            }
        }
        Ok(d)
    }

    /// Write `data` (bytes) to the child's stdin (or terminal). Everything
    /// written during one loop turn leaves together at its end. Dropped
    /// silently once stdin is closed, as in Twisted.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.write_to(py, INPUT_FD, data, false)
    }

    /// Write each bytes object of `seq` in order.
    #[pyo3(name = "writeSequence")]
    fn write_sequence(&self, py: Python<'_>, seq: &Bound<'_, PyAny>) -> PyResult<()> {
        // Check every item before writing any, so a bad item writes nothing.
        let items = seq.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        for (i, item) in items.iter().enumerate() {
            if !item.is_instance_of::<PyBytes>() {
                return Err(PyTypeError::new_err(format!(
                    "writeSequence: item {i} must be bytes, not {}",
                    type_name(item)
                )));
            }
        }
        for item in &items {
            self.write(py, item)?;
        }
        Ok(())
    }

    /// Write `data` to the pipe mapped as `'w'` on child fd `childFD`.
    ///
    /// Raises KeyError when that fd has no open pipe, NotImplementedError on a PTY.
    #[pyo3(name = "writeToChild")]
    fn write_to_child(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = child_fd)] childFD: i64,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.not_for_pty("writeToChild")?;
        let Ok(fd) = i32::try_from(childFD) else {
            return Err(PyKeyError::new_err(format!("writeToChild: child fd {childFD} is not an open pipe")));
        };
        self.write_to(py, fd, data, true)
    }

    /// Close the pipe on child fd `childFD`: an input pipe after its queued
    /// data is written (the child sees EOF), an output pipe at once (output
    /// not yet delivered is dropped). Closing an fd that is not open does nothing.
    #[pyo3(name = "closeChildFD")]
    fn close_child_fd(&self, #[pyo3(from_py_with = child_fd)] childFD: i64) -> PyResult<()> {
        self.not_for_pty("closeChildFD")?;
        self.close(childFD);
        Ok(())
    }

    /// Close the child's stdin once queued data is written (no-op on a PTY).
    #[pyo3(name = "closeStdin")]
    fn close_stdin(&self) {
        if !self.cell.is_terminal() {
            self.close(0);
        }
    }

    /// Stop reading the child's stdout and close it (no-op on a PTY).
    #[pyo3(name = "closeStdout")]
    fn close_stdout(&self) {
        if !self.cell.is_terminal() {
            self.close(1);
        }
    }

    /// Stop reading the child's stderr and close it (no-op on a PTY).
    #[pyo3(name = "closeStderr")]
    fn close_stderr(&self) {
        if !self.cell.is_terminal() {
            self.close(2);
        }
    }

    /// Close every pipe (stdin after flushing, then stderr, stdout and any
    /// others). On a PTY: flush, then close the master; the child usually
    /// gets SIGHUP. The child is not signalled otherwise.
    #[pyo3(name = "loseConnection")]
    fn lose_connection(&self) {
        self.act(|c, _| c.lose_connection());
    }

    /// Send a signal: a name with or without "SIG" ("TERM", "SIGKILL",
    /// "USR1" ...) or a number. Raises ValueError for an unknown name and
    /// ProcessExitedAlready once the child has been reaped.
    #[pyo3(name = "signalProcess")]
    fn signal_process(&self, py: Python<'_>, signalID: &Bound<'_, PyAny>) -> PyResult<()> {
        let sig = parse_signal(signalID, "signalProcess")?;
        self.send(py, "signalProcess", sig, || by_program("signalProcess"))
    }

    /// ferroproc extension: send a signal to the process group the child
    /// leads (kill-tree: every process still in it, those that left its
    /// pipes too; not one that left the group with `setsid`/`setpgid`).
    /// Needs a group it leads (``processGroup=True`` or ``newSession=True``):
    /// ValueError without one, or for a group it joined.
    /// ProcessExitedAlready once the child has been reaped (a leader is
    /// reaped when its last pipe closes) or nothing is left in the group.
    #[pyo3(name = "signalGroup")]
    fn signal_group(&self, py: Python<'_>, signalID: &Bound<'_, PyAny>) -> PyResult<()> {
        let sig = parse_signal(signalID, "signalGroup")?;
        self.send(py, "signalGroup", sig, || by_program("signalGroup"))
    }

    /// `signalGroup` (`group`) or `signalProcess`, sent by ferroproc's own
    /// code for a reason the debug log gives: `code`, and `text` in words.
    #[pyo3(name = "_signalFor")]
    fn signal_for(&self, py: Python<'_>, sig: &Bound<'_, PyAny>, group: bool, why: (String, String)) -> PyResult<()> {
        let what = if group { "signalGroup" } else { "signalProcess" };
        self.send(py, what, parse_signal(sig, what)?, move || Why::Host { code: why.0, text: why.1 })
    }

    /// ferroproc extension: the child's process group id, when it leads a
    /// group or joined another one (None: it is in ours); a program may set
    /// its own value (see `crate::attrs`).
    #[getter]
    fn pgid(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let ours = slf.get().cell.with(|c, _| c.pgid());
        program_value_or(slf.as_any(), intern!(slf.py(), "pgid"), ours)
    }

    #[setter]
    fn set_pgid(slf: &Bound<'_, Self>, value: Bound<'_, PyAny>) -> PyResult<()> {
        set_program_value(slf.as_any(), intern!(slf.py(), "pgid"), Some(value))
    }

    #[deleter]
    fn delete_pgid(slf: &Bound<'_, Self>) -> PyResult<()> {
        set_program_value(slf.as_any(), intern!(slf.py(), "pgid"), None)
    }

    /// ferroproc extension: what the child used (CPU times, peak RSS), as the
    /// kernel reports it at reap: a ``ferroproc.error.ResourceUsage``, or None
    /// until the child has been reaped (or when someone else reaped it).
    #[getter(resourceUsage)]
    fn resource_usage(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let usage = slf.get().cell.with(|c, _| c.exit().and_then(|e| e.usage));
        let ours = usage.map(|u| crate::dispatch::usage_object(slf.py(), &u)).transpose()?;
        program_value_or(slf.as_any(), intern!(slf.py(), "resourceUsage"), ours)
    }

    #[setter(resourceUsage)]
    fn set_resource_usage(slf: &Bound<'_, Self>, value: Bound<'_, PyAny>) -> PyResult<()> {
        set_program_value(slf.as_any(), intern!(slf.py(), "resourceUsage"), Some(value))
    }

    #[deleter(resourceUsage)]
    fn delete_resource_usage(slf: &Bound<'_, Self>) -> PyResult<()> {
        set_program_value(slf.as_any(), intern!(slf.py(), "resourceUsage"), None)
    }

    /// Stop reading the child's output (the pipe fills, and the child blocks).
    #[pyo3(name = "pauseProducing")]
    fn pause_producing(&self) -> PyResult<()> {
        self.set_reading(false)
    }

    /// Resume reading the child's output.
    #[pyo3(name = "resumeProducing")]
    fn resume_producing(&self) -> PyResult<()> {
        self.set_reading(true)
    }

    /// PTY transports: the same as `loseConnection`. Pipe transports: close
    /// every pipe too.
    #[pyo3(name = "stopProducing")]
    fn stop_producing(&self) {
        self.lose_connection()
    }

    /// Register a producer feeding stdin. A streaming producer is paused when
    /// more than 64 KiB are queued and resumed when the queue drains; a pull
    /// producer is asked for more each time it drains. Without a stdin pipe
    /// the producer is stopped at once. A second registration raises RuntimeError.
    #[pyo3(name = "registerProducer")]
    fn register_producer(&self, py: Python<'_>, producer: Py<PyAny>, streaming: &Bound<'_, PyAny>) -> PyResult<()> {
        let streaming = flag(streaming, "registerProducer: streaming")?;
        let held = Arc::new(producer.clone_ref(py));
        let r = self.act(move |c, x| {
            let r = c.register_producer(streaming);
            if let ProducerRegistered::Yes { generation } = r {
                x.producer = Some(Box::new((generation, held)));
            }
            r
        });
        match r {
            ProducerRegistered::Yes { .. } => Ok(()),
            ProducerRegistered::NoInput => producer.call_method0(py, intern!(py, "stopProducing")).map(drop),
            ProducerRegistered::Busy => {
                Err(PyRuntimeError::new_err("registerProducer: a producer is already registered; unregister it first"))
            }
        }
    }

    /// Forget the registered producer (if any).
    #[pyo3(name = "unregisterProducer")]
    fn unregister_producer(&self, py: Python<'_>) -> PyResult<()> {
        let (resume, producer) = self.cell.with(|c, x| (c.unregister_producer(), x.producer.take().map(|b| b.1)));
        // A streaming producer we paused (our queue was full) would stay
        // paused for good once we let go of it: nobody else resumes it. It is
        // resumed on the next turn.
        if let (true, Some(p), Some(shared)) = (resume, producer, Shared::get(&self.handle)) {
            let f = p.bind(py).getattr(intern!(py, "resumeProducing"))?.unbind();
            lock(&shared.calls).push(Call { f, args: PyTuple::empty(py).unbind(), kwargs: None });
            shared.lp.nudge();
        }
        Ok(())
    }

    /// Not available for processes (as in Twisted).
    #[pyo3(name = "getHost")]
    fn get_host(&self) -> PyResult<()> {
        Err(PyNotImplementedError::new_err("getHost is not available for a process transport"))
    }

    /// Not available for processes (as in Twisted).
    #[pyo3(name = "getPeer")]
    fn get_peer(&self) -> PyResult<()> {
        Err(PyNotImplementedError::new_err("getPeer is not available for a process transport"))
    }

    /// PTY transports: the master fd.
    fn fileno(&self) -> PyResult<i32> {
        use std::os::fd::AsRawFd;
        self.with_terminal("fileno", |fd| Ok(fd.as_raw_fd()))
    }

    /// ferroproc extension (PTY): resize the terminal; the child gets SIGWINCH.
    #[pyo3(name = "setWindowSize")]
    fn set_window_size(&self, rows: i64, cols: i64) -> PyResult<()> {
        let dim = |n: i64, what: &str| {
            u16::try_from(n)
                .map_err(|_| PyValueError::new_err(format!("setWindowSize: {what} must be 0..65535, not {n}")))
        };
        let (rows, cols) = (dim(rows, "rows")?, dim(cols, "cols")?);
        self.with_terminal("setWindowSize", move |fd| pty::set_window_size(fd, rows, cols))
    }

    /// ferroproc extension (PTY): the terminal's size as `(rows, cols)`.
    #[pyo3(name = "getWindowSize")]
    fn get_window_size(&self) -> PyResult<(u16, u16)> {
        self.with_terminal("getWindowSize", pty::window_size)
    }

    /// ferroproc extension (PTY): whether the terminal echoes input.
    #[pyo3(name = "getEcho")]
    fn get_echo(&self) -> PyResult<bool> {
        self.with_terminal("getEcho", pty::echo)
    }

    /// ferroproc extension (PTY): turn the terminal's echo on or off.
    #[pyo3(name = "setEcho")]
    fn set_echo(&self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let on = flag(enabled, "setEcho: enabled")?;
        self.with_terminal("setEcho", move |fd| pty::set_echo(fd, on))
    }

    /// ferroproc extension (PTY): whether the terminal is in raw mode.
    #[pyo3(name = "isRawMode")]
    fn is_raw_mode(&self) -> PyResult<bool> {
        self.with_terminal("isRawMode", pty::is_raw)
    }

    /// ferroproc extension (PTY): raw mode on (`cfmakeraw`), or off (the
    /// attributes the terminal had at spawn).
    #[pyo3(name = "setRawMode")]
    fn set_raw_mode(&self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let on = flag(enabled, "setRawMode: enabled")?;
        if on {
            return self.with_terminal("setRawMode", pty::make_raw);
        }
        let initial = self.cell.with(|_, x| x.terminal_attrs.clone());
        match initial {
            Some(t) => self.with_terminal("setRawMode", move |fd| pty::set_attrs(fd, &t)),
            None => Ok(()),
        }
    }

    /// For a host that shows processes as reactor entries (Twisted's
    /// `getReaders`, `getWriters`, `removeAll`): each open pipe as
    /// `(childFD, parentFD, kind, queued)`, kind `'r'`, `'w'` or `'pty'`
    /// (the terminal, under child fd 0), `queued` whether input waits to be written.
    #[pyo3(name = "_selectables")]
    fn selectables(&self) -> Vec<(i32, i32, &'static str, bool)> {
        self.cell.with(|c, _| {
            let list = c.pipes().map(|(fd, p)| (fd, p.raw_fd(), p.role(), c.has_queued(fd)));
            list.map(|(fd, raw, role, queued)| {
                let kind = match role {
                    Role::Read => "r",
                    Role::Write => "w",
                    Role::Terminal => "pty",
                };
                (fd, raw, kind, queued)
            })
            .collect()
        })
    }

    /// For the asyncio host: pause or resume reading child fd `childFD`
    /// alone (a pipe transport's `pause_reading`/`resume_reading`).
    #[pyo3(name = "_setFDReading")]
    fn set_fd_reading(&self, childFD: i32, reading: bool) -> PyResult<()> {
        let Some(shared) = Shared::get(&self.handle) else { return Ok(()) };
        let registry = shared.lp.registry();
        self.cell.with(|c, _| c.set_fd_reading(childFD, reading, registry)).map_err(|e| os_error(e, "resume_reading"))
    }

    /// For the asyncio host: whether child fd `childFD` is an open pipe
    /// being read.
    #[pyo3(name = "_isReading")]
    fn is_reading(&self, childFD: i32) -> bool {
        self.cell.with(|c, _| c.is_reading(childFD))
    }

    /// For the asyncio host: a registered streaming producer is paused above
    /// `high` queued input bytes and resumed at or below `low`.
    #[pyo3(name = "_setWriteLimits")]
    fn set_write_limits(&self, high: usize, low: usize) {
        self.act(|c, _| c.set_write_limits(WriteLimits { high, low }));
    }

    /// For the asyncio host: how many bytes are queued for child fd `childFD`.
    #[pyo3(name = "_queued")]
    fn queued(&self, childFD: i32) -> usize {
        self.cell.with(|c, _| c.queued(childFD))
    }

    /// For the asyncio host: close the input pipe of child fd `childFD` now,
    /// dropping what is queued (`abort`).
    #[pyo3(name = "_abortChildFD")]
    fn abort_child_fd(&self, childFD: i32) {
        self.act(|c, _| c.abort_fd(childFD));
    }

    /// For the asyncio host: whether stdin was lost with data still queued
    /// (the child closed its end: a broken pipe).
    #[pyo3(name = "_inputBroken")]
    fn input_broken(&self) -> bool {
        self.cell.with(|c, _| c.input_broken())
    }

    /// Take the process off its host's reactor (Twisted's `removeAll()`):
    /// its protocol gets no more calls, and the parent's ends of its pipes
    /// close at once (as a reactor's shutdown closes them), so nothing is
    /// left open; the child can still be signalled, and is reaped when it
    /// exits.
    #[pyo3(name = "_removeFromReactor")]
    fn remove_from_reactor(&self) {
        self.act(|c, x| {
            x.removed = true;
            c.detach_pipes()
        });
    }

    fn __repr__(&self) -> String {
        let kind = if self.cell.is_terminal() { "PTYProcess" } else { "Process" };
        let (pid, exit) = self.cell.with(|c, _| (c.pid(), c.exit()));
        let pid = pid.map_or("None".to_string(), |p| p.to_string());
        let status = match exit {
            None => "-1".to_string(),
            Some(e) => e.status.map_or("None".to_string(), |s| s.to_string()),
        };
        format!("<{kind} pid={pid} status={status}>")
    }

    /// The child's protocol and producer are visited here, and only here:
    /// the transport is the one Python object that holds the child (the
    /// engine holds it from Rust), so each reference is counted once.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        crate::host::traverse_child(&self.cell, &visit)
    }

    fn __clear__(&self) {
        let dropped = self.cell.with(|_, x| (x.proto.take(), x.producer.take()));
        drop(dropped);
    }
}

impl Process {
    /// Send `sig` to the child, or for `what` "signalGroup" to the group it
    /// leads, for `why` (the debug log's reason); errors as `what` raises them.
    fn send(&self, py: Python<'_>, what: &str, sig: i32, why: impl FnOnce() -> Why + Send) -> PyResult<()> {
        crate::debuglog::refresh(py);
        let shared = Shared::get(&self.handle);
        let r = match &shared {
            Some(_) if what == "signalGroup" => self.cell.with(|c, _| c.signal_group_because(sig, why)),
            Some(_) => self.cell.with(|c, _| c.signal_because(sig, why)),
            None => Err(SignalError::Gone),
        };
        crate::debuglog::drain(py);
        r.map_err(|e| signal_error(py, what, e, shared.as_ref().and_then(|s| s.exited_already.as_ref())))
    }

    /// Whether the host took it off its reactor.
    pub(crate) fn is_removed(&self) -> bool {
        self.cell.with(|_, x| x.removed)
    }

    fn set_reading(&self, on: bool) -> PyResult<()> {
        let Some(shared) = Shared::get(&self.handle) else { return Ok(()) };
        let registry = shared.lp.registry();
        self.cell
            .with(|c, _| c.set_reading(on, registry))
            .map_err(|e| os_error(e, if on { "resumeProducing" } else { "pauseProducing" }))
    }
}
