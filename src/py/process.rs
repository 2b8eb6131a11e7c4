//! One child's state in the engine, its pipe I/O, and the transport class
//! (`ferroproc._core.Process`) that protocols hold as `self.transport`.
//!
//! Locking rule: a process's state lives behind one `Mutex`; it is never held
//! while Python code runs (a callback, or a `__del__` triggered by dropping a
//! Python reference), so a protocol may call back into its transport freely.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use pyo3::exceptions::{PyKeyError, PyNotImplementedError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3::{ffi, intern};

use crate::core::pty;
use crate::core::reap::Exit;

use super::engine::{close_child_fd, Engine, Work};
use super::errors::{os_error, process_exited_already};

/// Above this many queued bytes a registered streaming producer is paused
/// (Twisted's `FileDescriptor.bufferSize`).
const HIGH_WATER: usize = 64 * 1024;
/// Bytes read from one fd per loop turn before others get their turn.
const READ_CAP: usize = 4 << 20;
/// Pipes that carry bulk data are grown to this size (where the user's pipe
/// quota allows): fewer wakeups and larger reads.
const BIG_PIPE: libc::c_int = 1 << 20;
const SMALL_READ: usize = 64 * 1024;

/// Whether SIGPIPE was ignored when last looked at (each loop turn and each
/// spawn): writes skip the SIGPIPE guard while it is, which is the usual case.
pub(crate) static SIGPIPE_IGNORED: AtomicBool = AtomicBool::new(false);

pub(crate) fn refresh_sigpipe() {
    SIGPIPE_IGNORED.store(crate::core::sys::sigpipe_ignored(), Ordering::Relaxed);
}

/// [`refresh_sigpipe`] at most every 100 ms: a syscall per loop turn would
/// add a quarter to the syscalls of a small round trip. (Each spawn refreshes
/// too, so a program that restores SIGPIPE's default before it spawns is
/// always covered.)
pub(crate) fn refresh_sigpipe_now_and_then() {
    use std::sync::atomic::AtomicU64;
    use std::time::{SystemTime, UNIX_EPOCH};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    if now.wrapping_sub(LAST_MS.load(Ordering::Relaxed)) >= 100 {
        LAST_MS.store(now, Ordering::Relaxed);
        refresh_sigpipe();
    }
}

fn write_guarded(f: impl FnOnce() -> isize) -> isize {
    crate::core::sys::without_sigpipe(SIGPIPE_IGNORED.load(Ordering::Relaxed), f)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes queued for a child, written in order as the pipe drains.
#[derive(Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<(Py<PyBytes>, usize)>,
    pub(crate) queued: usize,
    /// Flush, then close (closeChildFD / loseConnection on a writer).
    pub(crate) closing: bool,
}

pub(crate) enum PipeKind {
    Reader,
    Writer(WriteQueue),
}

/// The parent's end of one pipe (or the PTY master).
pub(crate) struct Pipe {
    pub(crate) fd: OwnedFd,
    pub(crate) token: Token,
    pub(crate) kind: PipeKind,
    /// The PTY master reads and writes on one fd.
    pub(crate) pty_queue: Option<WriteQueue>,
    grown: bool,
}

impl Pipe {
    pub(crate) fn new(fd: OwnedFd, token: Token, kind: PipeKind, is_pty: bool) -> Self {
        Pipe { fd, token, kind, pty_queue: is_pty.then(WriteQueue::default), grown: false }
    }

    /// Where writes to this fd queue: a writer's queue, or the PTY master's.
    pub(crate) fn queue(&mut self) -> Option<&mut WriteQueue> {
        match (&mut self.kind, &mut self.pty_queue) {
            (_, Some(q)) => Some(q),
            (PipeKind::Writer(q), None) => Some(q),
            (PipeKind::Reader, None) => None,
        }
    }

    fn grow(&mut self) {
        if !self.grown {
            self.grown = true;
            // SAFETY: fcntl on our own fd; failure (EPERM past the user's pipe quota) is harmless.
            unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_SETPIPE_SZ, BIG_PIPE) };
        }
    }
}

/// Where a token's events go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Pid,
    Pipe(i32),
    /// The PTY master (reported to the protocol as fd 1).
    Pty,
}

/// A registered streaming or pull producer feeding the child's stdin.
pub(crate) struct Producer {
    pub(crate) obj: Py<PyAny>,
    pub(crate) streaming: bool,
    pub(crate) paused: bool,
}

pub(crate) struct ProcState {
    pub(crate) pid: Option<libc::pid_t>,
    pub(crate) exit: Option<Exit>,
    pub(crate) pidfd: Option<(OwnedFd, Token)>,
    /// Open pipes by child fd; the PTY master lives under fd 1 with `is_pty`.
    pub(crate) pipes: BTreeMap<i32, Pipe>,
    /// Child fds whose output the protocol must no longer see (closed locally).
    pub(crate) muted: Vec<i32>,
    /// `childConnectionLost` notifications queued but not yet delivered.
    pub(crate) pending_lost: usize,
    pub(crate) exited_delivered: bool,
    pub(crate) ended: bool,
    pub(crate) reading_paused: bool,
    pub(crate) producer: Option<Producer>,
    pub(crate) proto: Option<Py<PyAny>>,
    /// PTY: the master after EIO, kept open (unwatched) until the child is
    /// reaped. Closing it at once would hang up the terminal and SIGHUP a
    /// child that has closed its fds but not yet exited.
    pub(crate) held_master: Option<Pipe>,
    /// PTY: the attributes at spawn, restored by `setRawMode(False)`.
    pub(crate) pty_initial_attrs: Option<libc::termios>,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<ProcState>,
    pub(crate) is_pty: bool,
    /// The protocol keeps `ProcessProtocol.childDataReceived`, so output can
    /// go straight to `outReceived`/`errReceived` (one Python frame less per
    /// chunk, with the same result).
    pub(crate) direct_data: bool,
}

impl Shared {
    pub(crate) fn new(pid: libc::pid_t, is_pty: bool, proto: Option<Py<PyAny>>, direct_data: bool) -> Self {
        Shared {
            state: Mutex::new(ProcState {
                pid: Some(pid),
                exit: None,
                pidfd: None,
                pipes: BTreeMap::new(),
                muted: Vec::new(),
                pending_lost: 0,
                exited_delivered: false,
                ended: false,
                reading_paused: false,
                producer: None,
                proto,
                held_master: None,
                pty_initial_attrs: None,
            }),
            is_pty,
            direct_data,
        }
    }
}

/// What reading one fd produced.
pub(crate) struct ReadOutcome {
    pub(crate) chunks: Vec<Py<PyBytes>>,
    pub(crate) eof: bool,
    /// The per-turn cap was hit: read again next turn.
    pub(crate) more: bool,
}

/// Read a pipe (or PTY master) until it is drained, at EOF, or the cap.
/// Data goes straight from the kernel into Python `bytes` objects: a small
/// read is copied once from a stack buffer, a large one is read directly into
/// a `bytes` sized by `FIONREAD`, with the GIL released around the copy.
pub(crate) fn read_fd(py: Python<'_>, pipe: &mut Pipe, drain_fully: bool) -> ReadOutcome {
    let fd = pipe.fd.as_raw_fd();
    let is_pty = pipe.pty_queue.is_some();
    let mut out = ReadOutcome { chunks: Vec::new(), eof: false, more: false };
    let mut total = 0usize;
    // Uninitialised on purpose: zero-filling 64 KiB per event would cost more
    // than the read itself on the latency path. Only `buf[..n]` is ever read.
    let mut storage = std::mem::MaybeUninit::<[u8; SMALL_READ]>::uninit();
    loop {
        // SAFETY: read(2) writes at most SMALL_READ bytes into our stack buffer.
        let n = unsafe { libc::read(fd, storage.as_mut_ptr().cast(), SMALL_READ) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => break,
                Some(libc::EINTR) => continue,
                // EIO is how a PTY master says every slave holder has gone.
                _ => {
                    out.eof = true;
                    break;
                }
            }
        }
        if n == 0 {
            out.eof = true;
            break;
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the first n bytes.
        let buf: &[u8] = unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), n) };
        if n < SMALL_READ {
            out.chunks.push(PyBytes::new(py, buf).unbind());
            total += n;
            // A short read from a pipe means it is empty now, and the next
            // write raises a new edge; a PTY or a closed writer needs EOF seen.
            if !is_pty && !drain_fully {
                break;
            }
        } else {
            pipe.grow();
            let mut avail: libc::c_int = 0;
            // SAFETY: FIONREAD writes an int.
            unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail) };
            let avail = (avail.max(0) as usize).min(READ_CAP);
            let chunk = read_big(py, fd, buf, avail);
            total += chunk.as_bytes(py).len();
            out.chunks.push(chunk);
        }
        if total >= READ_CAP {
            out.more = true;
            break;
        }
    }
    out
}

/// `head` plus up to `avail` more bytes read directly into one new `bytes`.
fn read_big(py: Python<'_>, fd: RawFd, head: &[u8], avail: usize) -> Py<PyBytes> {
    if avail == 0 {
        return PyBytes::new(py, head).unbind();
    }
    let len = head.len() + avail;
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new, uninitialised
    // bytes of length n (or NULL on MemoryError), which we fill before anyone
    // else can see it.
    unsafe {
        let obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t);
        if obj.is_null() {
            PyErr::fetch(py);
            return PyBytes::new(py, head).unbind();
        }
        let bytes: Bound<'_, PyBytes> = Bound::from_owned_ptr(py, obj).cast_into_unchecked();
        let base = ffi::PyBytes_AsString(obj) as *mut u8;
        std::ptr::copy_nonoverlapping(head.as_ptr(), base, head.len());
        let dst = base.add(head.len()) as usize;
        let got = py.detach(move || {
            let mut done = 0usize;
            while done < avail {
                let r = libc::read(fd, (dst + done) as *mut libc::c_void, avail - done);
                if r <= 0 {
                    break;
                }
                done += r as usize;
            }
            done
        });
        if got == avail {
            bytes.unbind()
        } else {
            PyBytes::new(py, &bytes.as_bytes()[..head.len() + got]).unbind()
        }
    }
}

/// Write as much of the queue as the pipe takes now (`writev`, in order).
/// `Err` means the child's end is gone (EPIPE) or another error.
pub(crate) fn flush(py: Python<'_>, fd: RawFd, q: &mut WriteQueue) -> io::Result<()> {
    const MAX_IOV: usize = 64;
    while q.queued > 0 {
        let mut iov: [libc::iovec; MAX_IOV] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOV];
        let mut n = 0;
        for (b, off) in q.chunks.iter().take(MAX_IOV) {
            let s = &b.as_bytes(py)[*off..];
            iov[n] = libc::iovec { iov_base: s.as_ptr() as *mut libc::c_void, iov_len: s.len() };
            n += 1;
        }
        // SAFETY: the iovecs point into bytes objects kept alive by the queue.
        let r = write_guarded(|| unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) });
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(()),
                Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
        let mut left = r as usize;
        q.queued -= left;
        while left > 0 {
            let (b, off) = q.chunks.front_mut().expect("queued bytes are in chunks");
            let len = b.as_bytes(py).len() - *off;
            if left >= len {
                left -= len;
                q.chunks.pop_front();
            } else {
                *off += left;
                left = 0;
            }
        }
    }
    Ok(())
}

/// The transport a protocol gets: ferroproc's `IProcessTransport`.
///
/// `pid` is the child's pid until it is reaped, then `None`; `status` is -1
/// while it runs, then the raw wait status.
#[pyclass(frozen, dict, weakref, module = "ferroproc._core", name = "Process")]
pub struct Process {
    pub(crate) shared: Arc<Shared>,
    pub(crate) engine: Py<Engine>,
}

impl Process {
    fn st(&self) -> MutexGuard<'_, ProcState> {
        lock(&self.shared.state)
    }

    fn set_reading(&self, on: bool) -> PyResult<()> {
        let eng = self.engine.get();
        let mut st = self.st();
        if st.reading_paused != on {
            return Ok(());
        }
        st.reading_paused = !on;
        let reg = eng.registry();
        for pipe in st.pipes.values() {
            let fd = pipe.fd.as_raw_fd();
            let interest = match (&pipe.kind, pipe.pty_queue.is_some(), on) {
                (PipeKind::Reader, false, true) => Some(Interest::READABLE),
                (PipeKind::Reader, false, false) => None,
                (_, true, true) => Some(Interest::READABLE | Interest::WRITABLE),
                (_, true, false) => Some(Interest::WRITABLE),
                (PipeKind::Writer(_), false, _) => continue,
            };
            // Re-adding a ready fd raises a fresh edge, so nothing buffered is missed.
            let _ = reg.deregister(&mut SourceFd(&fd));
            if let Some(i) = interest {
                reg.register(&mut SourceFd(&fd), pipe.token, i).map_err(|e| os_error(e, "resumeProducing"))?;
            }
        }
        Ok(())
    }

    fn write_bytes(&self, py: Python<'_>, fd: i32, data: &Bound<'_, PyAny>, strict: bool) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "data must be bytes, not {}",
                data.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        let len = data.as_bytes().len();
        let mut st = self.st();
        let Some(pipe) = st.pipes.get_mut(&fd) else {
            if strict {
                return Err(PyKeyError::new_err(format!("writeToChild: child fd {fd} is not an open pipe")));
            }
            return Ok(());
        };
        let raw = pipe.fd.as_raw_fd();
        if len == 0 {
            return Ok(());
        }
        let Some(q) = pipe.queue() else {
            // Twisted accepts (and never sends) writes to a read pipe.
            return Ok(());
        };
        let mut off = 0;
        if q.queued == 0 {
            // SAFETY: writing from the bytes buffer, which outlives the call.
            let r = write_guarded(|| unsafe { libc::write(raw, data.as_bytes().as_ptr().cast(), len) });
            if r > 0 {
                off = r as usize;
            }
        }
        if off == len {
            // Nothing left queued: a pull producer is asked for more on the
            // next turn, as Twisted does each time the write buffer empties.
            let pull = match &st.producer {
                Some(p) if !p.streaming && (fd == 0 || self.shared.is_pty) => Some(p.obj.clone_ref(py)),
                _ => None,
            };
            drop(st);
            if let Some(obj) = pull {
                self.engine.get().push(Work::ProducerResume { obj });
            }
            return Ok(());
        }
        q.chunks.push_back((data.clone().unbind(), off));
        q.queued += len - off;
        let over = q.queued > HIGH_WATER;
        pipe.grow();
        let pause = match &mut st.producer {
            Some(p) if over && p.streaming && !p.paused && fd == 0 => {
                p.paused = true;
                Some(p.obj.clone_ref(py))
            }
            _ => None,
        };
        drop(st);
        if let Some(p) = pause {
            p.call_method0(py, intern!(py, "pauseProducing"))?;
        }
        Ok(())
    }

    fn pty_fd(&self) -> PyResult<RawFd> {
        let st = self.st();
        match st.pipes.get(&1) {
            Some(p) if self.shared.is_pty => Ok(p.fd.as_raw_fd()),
            _ if self.shared.is_pty => Err(PyValueError::new_err("the terminal is closed")),
            _ => Err(PyNotImplementedError::new_err("not a PTY transport (spawned without usePTY)")),
        }
    }
}

fn not_for_pty(what: &str) -> PyErr {
    PyNotImplementedError::new_err(format!("{what} is not supported on a PTY transport"))
}

#[pymethods]
#[allow(non_snake_case)] // Twisted's keyword names are public API
impl Process {
    /// The child's pid, or None once it has been reaped.
    #[getter]
    fn pid(&self) -> Option<i32> {
        self.st().pid
    }

    /// -1 while the child runs; then its raw wait status (None if someone
    /// else reaped it and the status is unknown).
    #[getter]
    fn status(&self) -> Option<i32> {
        match self.st().exit {
            None => Some(-1),
            Some(Exit::Status(s)) => Some(s),
            Some(Exit::Unknown) => None,
        }
    }

    /// The protocol, until `processEnded` has been delivered.
    #[getter]
    fn proto(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.st().proto.as_ref().map(|p| p.clone_ref(py))
    }

    /// Open pipes: child fd → the parent's fd number.
    #[getter]
    fn pipes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if !self.shared.is_pty {
            for (fd, p) in self.st().pipes.iter() {
                d.set_item(fd, p.fd.as_raw_fd())?;
            }
        }
        Ok(d)
    }

    /// Write `data` (bytes) to the child's stdin, queueing what the pipe
    /// cannot take now. Dropped silently once stdin is closed, as in Twisted.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.write_bytes(py, if self.shared.is_pty { 1 } else { 0 }, data, false)
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
                    item.get_type().name().map(|n| n.to_string()).unwrap_or_default()
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
        if self.shared.is_pty {
            return Err(not_for_pty("writeToChild"));
        }
        let Ok(fd) = i32::try_from(childFD) else {
            return Err(PyKeyError::new_err(format!("writeToChild: child fd {childFD} is not an open pipe")));
        };
        self.write_bytes(py, fd, data, true)
    }

    /// Close the pipe on child fd `childFD`: an input pipe after its queued
    /// data is written (the child sees EOF), an output pipe at once. Closing
    /// an fd that is not open does nothing.
    #[pyo3(name = "closeChildFD")]
    fn close_child_fd(&self, #[pyo3(from_py_with = child_fd)] childFD: i64) -> PyResult<()> {
        if self.shared.is_pty {
            return Err(not_for_pty("closeChildFD"));
        }
        let Ok(childFD) = i32::try_from(childFD) else { return Ok(()) };
        close_child_fd(self.engine.get(), &self.shared, childFD);
        Ok(())
    }

    /// Close the child's stdin once queued data is written (no-op on a PTY).
    #[pyo3(name = "closeStdin")]
    fn close_stdin(&self) {
        if !self.shared.is_pty {
            close_child_fd(self.engine.get(), &self.shared, 0);
        }
    }

    /// Stop reading the child's stdout and close it (no-op on a PTY).
    #[pyo3(name = "closeStdout")]
    fn close_stdout(&self) {
        if !self.shared.is_pty {
            close_child_fd(self.engine.get(), &self.shared, 1);
        }
    }

    /// Stop reading the child's stderr and close it (no-op on a PTY).
    #[pyo3(name = "closeStderr")]
    fn close_stderr(&self) {
        if !self.shared.is_pty {
            close_child_fd(self.engine.get(), &self.shared, 2);
        }
    }

    /// Close every pipe (stdin after flushing, then stderr, stdout and any
    /// others). On a PTY: flush, then close the master; the child usually
    /// gets SIGHUP. The child is not signalled otherwise.
    #[pyo3(name = "loseConnection")]
    fn lose_connection(&self) {
        if self.shared.is_pty {
            let eng = self.engine.get();
            let mut st = self.st();
            let Some(pipe) = st.pipes.get_mut(&1) else { return };
            if let Some(q) = pipe.pty_queue.as_mut() {
                if q.queued > 0 {
                    q.closing = true;
                    return;
                }
            }
            let pipe = st.pipes.remove(&1).expect("checked above");
            drop(st);
            eng.forget(&pipe);
            drop(pipe);
            eng.push(Work::MaybeEnd { proc: self.shared.clone() });
            return;
        }
        let fds: Vec<i32> = {
            let st = self.st();
            let mut v: Vec<i32> = vec![0, 2, 1];
            v.extend(st.pipes.keys().copied().filter(|fd| *fd > 2));
            v
        };
        for fd in fds {
            close_child_fd(self.engine.get(), &self.shared, fd);
        }
    }

    /// Send a signal: a name with or without "SIG" ("TERM", "SIGKILL",
    /// "USR1" ...) or a number. Raises ValueError for an unknown name and
    /// ProcessExitedAlready once the child has been reaped.
    #[pyo3(name = "signalProcess")]
    fn signal_process(&self, py: Python<'_>, signalID: &Bound<'_, PyAny>) -> PyResult<()> {
        let sig = super::errors::parse_signal(signalID)?;
        let st = self.st();
        let Some(pid) = st.pid else {
            return Err(process_exited_already(py, self.engine.get().exited_already.as_ref()));
        };
        let r = match &st.pidfd {
            Some((fd, _)) => crate::core::sys::pidfd_send_signal(fd.as_raw_fd(), sig),
            // SAFETY: kill with our own, not yet reaped child's pid.
            None => crate::core::sys::cvt(unsafe { libc::kill(pid, sig) }).map(|_| ()),
        };
        drop(st);
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                Err(process_exited_already(py, self.engine.get().exited_already.as_ref()))
            }
            Err(e) => Err(os_error(e, "signalProcess")),
        }
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
        let mut st = self.st();
        if st.producer.is_some() {
            return Err(PyRuntimeError::new_err(
                "registerProducer: a producer is already registered; unregister it first",
            ));
        }
        let stdin = if self.shared.is_pty { 1 } else { 0 };
        if !st.pipes.contains_key(&stdin) {
            drop(st);
            producer.call_method0(py, intern!(py, "stopProducing"))?;
            return Ok(());
        }
        let idle = st.pipes.get_mut(&stdin).and_then(|p| p.queue()).is_none_or(|q| q.queued == 0);
        st.producer = Some(Producer { obj: producer.clone_ref(py), streaming, paused: false });
        drop(st);
        if !streaming && idle {
            self.engine.get().push(Work::ProducerResume { obj: producer });
        }
        Ok(())
    }

    /// Forget the registered producer (if any).
    #[pyo3(name = "unregisterProducer")]
    fn unregister_producer(&self) {
        // Taken out first: the producer is released after the lock.
        let p = self.st().producer.take();
        // A streaming producer we paused (our queue was full) would stay paused
        // for good once we let go of it: nobody else resumes it. Resume it on
        // the next turn. (Relaying one process into another's stdin hung that
        // way: the upstream's other pipes were never read to EOF.)
        if let Some(p) = p {
            if p.streaming && p.paused {
                self.engine.get().push(Work::ProducerResume { obj: p.obj });
            }
        }
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
        self.pty_fd()
    }

    /// ferroproc extension (PTY): resize the terminal; the child gets SIGWINCH.
    #[pyo3(name = "setWindowSize")]
    fn set_window_size(&self, rows: i64, cols: i64) -> PyResult<()> {
        let dim = |n: i64, what: &str| {
            u16::try_from(n)
                .map_err(|_| PyValueError::new_err(format!("setWindowSize: {what} must be 0..65535, not {n}")))
        };
        let (rows, cols) = (dim(rows, "rows")?, dim(cols, "cols")?);
        pty::set_window_size(self.pty_fd()?, rows, cols).map_err(|e| os_error(e, "setWindowSize"))
    }

    /// ferroproc extension (PTY): the terminal's size as `(rows, cols)`.
    #[pyo3(name = "getWindowSize")]
    fn get_window_size(&self) -> PyResult<(u16, u16)> {
        pty::window_size(self.pty_fd()?).map_err(|e| os_error(e, "getWindowSize"))
    }

    /// ferroproc extension (PTY): whether the terminal echoes input.
    #[pyo3(name = "getEcho")]
    fn get_echo(&self) -> PyResult<bool> {
        pty::echo(self.pty_fd()?).map_err(|e| os_error(e, "getEcho"))
    }

    /// ferroproc extension (PTY): turn the terminal's echo on or off.
    #[pyo3(name = "setEcho")]
    fn set_echo(&self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        pty::set_echo(self.pty_fd()?, flag(enabled, "setEcho: enabled")?).map_err(|e| os_error(e, "setEcho"))
    }

    /// ferroproc extension (PTY): whether the terminal is in raw mode.
    #[pyo3(name = "isRawMode")]
    fn is_raw_mode(&self) -> PyResult<bool> {
        pty::is_raw(self.pty_fd()?).map_err(|e| os_error(e, "isRawMode"))
    }

    /// ferroproc extension (PTY): raw mode on (`cfmakeraw`), or off (the
    /// attributes the terminal had at spawn).
    #[pyo3(name = "setRawMode")]
    fn set_raw_mode(&self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        let fd = self.pty_fd()?;
        if flag(enabled, "setRawMode: enabled")? {
            return pty::make_raw(fd).map_err(|e| os_error(e, "setRawMode"));
        }
        let initial = self.st().pty_initial_attrs;
        match initial {
            Some(t) => pty::set_attrs(fd, &t).map_err(|e| os_error(e, "setRawMode")),
            None => Ok(()),
        }
    }

    fn __repr__(&self) -> String {
        let st = self.st();
        let kind = if self.shared.is_pty { "PTYProcess" } else { "Process" };
        let pid = st.pid.map_or("None".to_string(), |p| p.to_string());
        let status = match st.exit {
            None => "-1".to_string(),
            Some(Exit::Status(s)) => s.to_string(),
            Some(Exit::Unknown) => "None".to_string(),
        };
        format!("<{kind} pid={pid} status={status}>")
    }
}

/// A bool, or an int as Twisted code often passes (`registerProducer(p, 1)`).
fn flag(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    if ob.is_instance_of::<pyo3::types::PyInt>() {
        return ob.is_truthy();
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a bool, not {}",
        ob.get_type().name().map(|n| n.to_string()).unwrap_or_default()
    )))
}

fn child_fd(ob: &Bound<'_, PyAny>) -> PyResult<i64> {
    if ob.is_instance_of::<pyo3::types::PyBool>() || !ob.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "childFD must be an int, not {}",
            ob.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        )));
    }
    // Any int: one beyond i64 (or i32) simply names no pipe.
    Ok(ob.extract::<i64>().unwrap_or(i64::MAX))
}

pub(crate) fn args_tuple<'py>(py: Python<'py>, args: Option<&Py<PyTuple>>) -> Bound<'py, PyTuple> {
    args.map_or_else(|| PyTuple::empty(py), |a| a.bind(py).clone())
}
