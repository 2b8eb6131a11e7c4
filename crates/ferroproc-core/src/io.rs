//! Reading a child's output into the host's buffers.
//!
//! Runs without any lock: the loop takes the fd out of the child
//! ([`crate::child::ReadSource`]), reads, then hands the result back. The
//! host decides what a buffer is ([`ChunkAlloc`]); the bindings read straight
//! into Python `bytes`, so output is copied at most once on its way to a
//! protocol.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::child::{ReadResult, ReadSource};
use crate::sys;

/// Reads into a stack buffer of this size first; a full one means more is
/// waiting, and the rest is read straight into one buffer of the right size.
pub const SMALL_READ: usize = 64 * 1024;

/// Bytes read from one fd per loop turn before other fds get their turn.
pub const READ_CAP: usize = 4 << 20;

/// How a host makes its byte buffers.
pub trait ChunkAlloc<C> {
    /// A buffer holding a copy of `data`.
    fn copy(&mut self, data: &[u8]) -> C;

    /// A buffer holding `head` and then up to `more` bytes read from `fd`
    /// straight into it (fewer if a read comes up short).
    fn read_into(&mut self, head: &[u8], fd: RawFd, more: usize) -> C;
}

/// Plain `Vec<u8>` buffers (tests, and hosts without buffers of their own).
pub struct VecAlloc;

impl ChunkAlloc<Vec<u8>> for VecAlloc {
    fn copy(&mut self, data: &[u8]) -> Vec<u8> {
        data.to_vec()
    }

    fn read_into(&mut self, head: &[u8], fd: RawFd, more: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(head.len() + more);
        v.extend_from_slice(head);
        v.resize(head.len() + more, 0);
        let got = read_full(fd, &mut v[head.len()..]);
        v.truncate(head.len() + got);
        v
    }
}

/// Read into `buf` until it is full, the fd is drained, or EOF; returns the
/// bytes read.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match sys::read(fd, &mut buf[done..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => done += n,
        }
    }
    done
}

/// What [`read_available`] found, besides the data.
#[derive(Debug)]
pub struct Drained<C> {
    pub read: ReadResult<C>,
    /// The per-turn cap was reached: read again next turn.
    pub more: bool,
}

/// Read what `src` has: until EAGAIN, end of stream, or [`READ_CAP`].
///
/// A short read from a pipe means it is empty now (the next write raises a
/// new edge), unless `drain` (the poll reported a hang-up, so EOF must be
/// seen) or the source is a terminal.
pub fn read_available<C: AsRef<[u8]>>(src: &ReadSource, drain: bool, alloc: &mut impl ChunkAlloc<C>) -> Drained<C> {
    let fd = src.fd.as_raw_fd();
    let mut chunks = Vec::new();
    let mut eof = false;
    let mut total = 0usize;
    // Uninitialised on purpose: zero-filling 64 KiB per event would cost more
    // than the read itself on the latency path. Only `buf[..n]` is ever read.
    let mut storage = std::mem::MaybeUninit::<[u8; SMALL_READ]>::uninit();
    loop {
        let n = match sys::read_uninit(fd, &mut storage) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // EIO is how a terminal's master says every slave holder has gone;
            // any other error ends the stream too.
            Err(_) => {
                eof = true;
                break;
            }
        };
        // SAFETY: the kernel initialised the first n bytes.
        let head: &[u8] = unsafe { std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), n) };
        let chunk = if n < SMALL_READ {
            alloc.copy(head)
        } else {
            let more = sys::bytes_available(fd).min(READ_CAP);
            if more == 0 {
                alloc.copy(head)
            } else {
                alloc.read_into(head, fd, more)
            }
        };
        total += chunk.as_ref().len();
        chunks.push(chunk);
        if total >= READ_CAP {
            return Drained { read: ReadResult { chunks, eof }, more: true };
        }
        if n < SMALL_READ && !drain && !src.terminal {
            break;
        }
    }
    Drained { read: ReadResult { chunks, eof }, more: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{pipe_cloexec, set_nonblocking};
    use std::io::Write;
    use std::sync::Arc;

    fn source(fd: std::os::fd::OwnedFd) -> ReadSource {
        set_nonblocking(fd.as_raw_fd(), true).unwrap();
        ReadSource { fd: Arc::new(fd), terminal: false }
    }

    #[test]
    fn small_and_large_reads_keep_every_byte_in_order() {
        let (r, w) = pipe_cloexec().unwrap();
        let src = source(r);
        crate::sys::set_pipe_size(w.as_raw_fd(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut f = std::fs::File::from(w);
        f.write_all(&data).unwrap();
        let d = read_available(&src, false, &mut VecAlloc);
        assert!(!d.read.eof && !d.more);
        assert_eq!(d.read.chunks.concat(), data);
        assert!(d.read.chunks.len() <= 2, "a full first read is followed by one sized read");
        drop(f);
        // A child spawned meanwhile by another test may hold a copy of the
        // write end until its exec (as after any fork): wait for the EOF.
        let mut pfd = libc::pollfd { fd: src.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 5000) };
        let d = read_available(&src, true, &mut VecAlloc);
        assert!(d.read.eof && d.read.chunks.is_empty());
    }

    #[test]
    fn empty_pipe_is_neither_data_nor_eof() {
        let (r, _w) = pipe_cloexec().unwrap();
        let d = read_available(&source(r), true, &mut VecAlloc);
        assert!(!d.read.eof && d.read.chunks.is_empty());
    }
}
