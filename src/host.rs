//! What the Python bindings put into the core: `bytes` objects as the byte
//! buffers (written to children without a copy, and read into straight from
//! the pipe), and, per child, the protocol and producer objects.

use std::os::fd::RawFd;
use std::sync::Arc;

use ferroproc_core::child::cell::{ChildCell, Host};
use ferroproc_core::io::{read_full, ChunkAlloc};
use ferroproc_core::pty::Termios;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The bindings as a core host.
pub(crate) struct PyHost;

impl Host for PyHost {
    type Chunk = PyChunk;
    type Ext = PyChild;
}

/// A child as the bindings see it.
pub(crate) type Cell = ChildCell<PyHost>;

/// An exact `bytes` object and a view of its buffer.
///
/// Only exact `bytes` are stored (a subclass is copied first), so releasing
/// one never runs Python code. The view is valid as long as the object
/// lives, which this value guarantees: `bytes` are immutable.
pub(crate) struct PyChunk {
    obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is into an immutable buffer owned by `obj`, which is
// `Send`; reading it from another thread is reading immutable memory.
unsafe impl Send for PyChunk {}

impl PyChunk {
    /// Wrap an exact `bytes` object.
    pub(crate) fn new(b: Bound<'_, PyBytes>) -> Self {
        let bytes = b.as_bytes();
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        PyChunk { obj: b.unbind(), ptr, len }
    }

    /// The `bytes` object.
    pub(crate) fn into_object(self) -> Py<PyBytes> {
        self.obj
    }

    /// The `bytes` object, borrowed.
    pub(crate) fn object(&self) -> &Py<PyBytes> {
        &self.obj
    }
}

impl AsRef<[u8]> for PyChunk {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the type's documentation.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Reads output straight into new `bytes` objects: a small read is copied
/// once from the loop's stack buffer; a large one is read directly into a
/// `bytes` of the right size, with the GIL released for the `read` calls
/// (no lock is held: see `ferroproc_core::io`).
pub(crate) struct PyAlloc<'py>(pub(crate) Python<'py>);

impl ChunkAlloc<PyChunk> for PyAlloc<'_> {
    fn copy(&mut self, data: &[u8]) -> PyChunk {
        PyChunk::new(PyBytes::new(self.0, data))
    }

    fn read_into(&mut self, head: &[u8], fd: RawFd, more: usize) -> PyChunk {
        let py = self.0;
        let len = head.len() + more;
        // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new,
        // uninitialised bytes of length n (or NULL on MemoryError), which we
        // fill before anyone else can see it.
        let obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t) };
        if obj.is_null() {
            PyErr::fetch(py);
            return self.copy(head);
        }
        // SAFETY: a new reference to a bytes object.
        let bytes: Bound<'_, PyBytes> = unsafe { Bound::from_owned_ptr(py, obj).cast_into_unchecked() };
        // SAFETY: the buffer of a bytes object nobody else has seen yet.
        let buf: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(ffi::PyBytes_AsString(obj).cast::<u8>(), len) };
        buf[..head.len()].copy_from_slice(head);
        let tail = &mut buf[head.len()..];
        let (tail_ptr, tail_len) = (tail.as_mut_ptr() as usize, tail.len());
        let got = py.detach(move || {
            // SAFETY: the buffer stays alive (we hold `bytes`) and unseen.
            read_full(fd, unsafe { std::slice::from_raw_parts_mut(tail_ptr as *mut u8, tail_len) })
        });
        if got == more {
            PyChunk::new(bytes)
        } else {
            self.copy(&bytes.as_bytes()[..head.len() + got])
        }
    }
}

/// What the bindings keep per child, under the child's lock.
///
/// Python objects are held as `Arc<Py<..>>`, so a closure under the lock
/// can hand a reference out without touching Python; they leave the lock
/// only by being taken (`Option::take`) and returned, so none is ever
/// released under it.
pub(crate) struct PyChild {
    /// The protocol, until `processEnded` has been delivered.
    pub(crate) proto: Option<Arc<Py<PyAny>>>,
    /// The registered producer and its generation (see
    /// `ferroproc_core::child::Event::ResumeProducer`); boxed, as few
    /// children have one (a live child's record is kept small: issue 23).
    pub(crate) producer: Option<Box<(u64, Arc<Py<PyAny>>)>>,
    /// The protocol keeps `ProcessProtocol.childDataReceived`, so output can
    /// go straight to `outReceived`/`errReceived` (one Python frame less per
    /// chunk, with the same result).
    pub(crate) direct_data: bool,
    /// A terminal's attributes at spawn, restored by `setRawMode(False)`;
    /// boxed, since most children have no terminal (a `Termios` is over 100
    /// bytes, kept for every live child).
    pub(crate) terminal_attrs: Option<Box<Termios>>,
    /// No events are delivered any more (Twisted's `removeAll()` took the
    /// process off the reactor); the child is still reaped.
    pub(crate) removed: bool,
    /// Where the child's events go instead of a protocol (a job of the jobs
    /// runner): the loop hands the child to it whenever it has events.
    pub(crate) sink: Option<Arc<dyn ChildSink>>,
}

/// Rust code that takes a child's events itself, with no protocol and no
/// transport (the jobs runner). It delivers under the same rule as the
/// protocols' dispatch: the child's lock is taken only to take each event.
pub(crate) trait ChildSink: Send + Sync {
    /// Deliver the events `cell` has. `Err` only for what must stop the loop.
    fn deliver(&self, py: Python<'_>, cell: &Arc<Cell>) -> PyResult<()>;
}

impl PyChild {
    /// The registered producer, if it is of `generation`.
    pub(crate) fn producer_of(&self, generation: u64) -> Option<Arc<Py<PyAny>>> {
        self.producer.as_deref().filter(|(g, _)| *g == generation).map(|(_, p)| p.clone())
    }
}

/// Visit the Python objects a child holds (for `__traverse__`).
pub(crate) fn traverse_child(cell: &Cell, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
    cell.try_peek(|_, x| {
        if let Some(p) = &x.proto {
            visit.call(&**p)?;
        }
        if let Some((_, p)) = x.producer.as_deref() {
            visit.call(&**p)?;
        }
        Ok(())
    })
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live child's record as the bindings make it (issue 23): the
    /// `Arc<Cell>` fits malloc's 224-byte chunk. Rarely used parts (a
    /// terminal's attributes, 128 bytes, and a producer) are boxed.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_live_childs_cell_stays_compact() {
        let ext = std::mem::size_of::<PyChild>();
        let arc_inner = 16 + std::mem::size_of::<Cell>();
        assert!(ext <= 48, "PyChild is {ext} bytes");
        assert!(arc_inner <= 216, "an Arc<Cell> allocates {arc_inner} bytes");
    }
}
