//! Bytes waiting to be written to one of a child's pipes.
//!
//! The queue holds the caller's own buffers (a host passes its immutable
//! byte objects, so nothing is copied) and writes them in order with
//! `writev` when the fd takes data. Buffers that have been written are not
//! dropped here but handed back through `done`, so a host can release them
//! where it chooses (Python objects must not be released under a lock).

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

/// At most this many buffers go into one `writev` (well under `IOV_MAX`).
const MAX_IOV: usize = 64;

/// A queue (or a child's event list) that has emptied keeps room for this
/// many entries and lets go of the rest: one burst of writes or output
/// would otherwise stay allocated for the child's whole life.
pub(crate) const KEEP_SLOTS: usize = 8;

/// The buffers queued for one fd, in order, and how many bytes they hold.
#[derive(Debug)]
pub struct WriteQueue<C> {
    chunks: VecDeque<C>,
    /// Bytes of the front chunk already written.
    offset: usize,
    queued: usize,
}

impl<C> Default for WriteQueue<C> {
    fn default() -> Self {
        WriteQueue { chunks: VecDeque::new(), offset: 0, queued: 0 }
    }
}

/// What a [`WriteQueue::flush`] achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued has been written.
    All,
    /// The fd is full (EAGAIN): the rest waits for it to become writable.
    Partly,
}

impl<C: AsRef<[u8]>> WriteQueue<C> {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queue `chunk` (an empty one is handed straight back through `done`).
    pub fn push(&mut self, chunk: C, done: &mut Vec<C>) {
        let len = chunk.as_ref().len();
        if len == 0 {
            done.push(chunk);
            return;
        }
        self.queued += len;
        self.chunks.push_back(chunk);
    }

    /// Give every queued buffer back through `done` without writing it.
    pub fn discard(&mut self, done: &mut Vec<C>) {
        done.extend(self.chunks.drain(..));
        self.offset = 0;
        self.queued = 0;
        self.release_room();
    }

    /// Once empty, no more room than [`KEEP_SLOTS`].
    fn release_room(&mut self) {
        if self.chunks.capacity() > KEEP_SLOTS {
            self.chunks = VecDeque::new();
        }
    }

    /// Write as much as `fd` takes now, in order, with `writev`. Written
    /// buffers go to `done`.
    ///
    /// # Errors
    /// What `writev` reported other than EAGAIN/EINTR (EPIPE once the child's
    /// end is closed); the unwritten rest stays queued.
    pub fn flush(&mut self, fd: RawFd, done: &mut Vec<C>) -> io::Result<Flushed> {
        while self.queued > 0 {
            let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOV];
            let mut n = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let bytes = chunk.as_ref();
                let bytes = if i == 0 { &bytes[self.offset..] } else { bytes };
                iov[n] = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
                n += 1;
            }
            // SAFETY: every iovec points into a buffer owned by this queue,
            // which outlives the call; n <= MAX_IOV.
            let r = unsafe { libc::writev(fd, iov.as_ptr(), n as libc::c_int) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(Flushed::Partly),
                    Some(libc::EINTR) => continue,
                    _ => {
                        crate::sys::SigpipeShield::note_write_error(&e);
                        return Err(e);
                    }
                }
            }
            self.consume(r as usize, done);
        }
        self.release_room();
        Ok(Flushed::All)
    }

    /// Account for `written` bytes taken from the front.
    fn consume(&mut self, mut written: usize, done: &mut Vec<C>) {
        self.queued -= written;
        while written > 0 {
            let front = self.chunks.front().expect("written bytes came from queued chunks");
            let left = front.as_ref().len() - self.offset;
            if written >= left {
                written -= left;
                self.offset = 0;
                done.extend(self.chunks.pop_front());
            } else {
                self.offset += written;
                written = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{pipe_cloexec, set_nonblocking};
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn flushes_in_order_and_hands_back_written_chunks() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut q = WriteQueue::default();
        let mut done = Vec::new();
        for s in ["ab", "", "cde", "f"] {
            q.push(s.as_bytes().to_vec(), &mut done);
        }
        assert_eq!((q.len(), done.len()), (6, 1), "the empty chunk comes straight back");
        assert_eq!(q.flush(w.as_raw_fd(), &mut done).unwrap(), Flushed::All);
        assert!(q.is_empty());
        assert_eq!(done.len(), 4);
        drop(w);
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "abcdef");
    }

    #[test]
    fn an_emptied_queue_lets_go_of_a_bursts_room() {
        let (_r, w) = pipe_cloexec().unwrap();
        let mut q = WriteQueue::default();
        let mut done = Vec::new();
        for _ in 0..100 {
            q.push(b"x".to_vec(), &mut done);
        }
        assert!(q.chunks.capacity() >= 100);
        assert_eq!(q.flush(w.as_raw_fd(), &mut done).unwrap(), Flushed::All);
        assert!(q.chunks.capacity() <= KEEP_SLOTS, "kept room for {}", q.chunks.capacity());
        for _ in 0..100 {
            q.push(b"x".to_vec(), &mut done);
        }
        q.discard(&mut done);
        assert!(q.chunks.capacity() <= KEEP_SLOTS, "kept room for {}", q.chunks.capacity());
    }

    #[test]
    fn a_full_pipe_keeps_the_rest_queued_from_the_right_offset() {
        let (r, w) = pipe_cloexec().unwrap();
        set_nonblocking(w.as_raw_fd(), true).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut q = WriteQueue::default();
        let mut done = Vec::new();
        q.push(big.clone(), &mut done);
        q.push(b"tail".to_vec(), &mut done);
        assert_eq!(q.flush(w.as_raw_fd(), &mut done).unwrap(), Flushed::Partly);
        assert!(q.len() > 4 && q.len() < big.len() + 4);
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            std::fs::File::from(r).read_to_end(&mut all).unwrap();
            all
        });
        set_nonblocking(w.as_raw_fd(), false).unwrap();
        assert_eq!(q.flush(w.as_raw_fd(), &mut done).unwrap(), Flushed::All);
        drop(w);
        let mut want = big;
        want.extend_from_slice(b"tail");
        assert_eq!(reader.join().unwrap(), want);
        assert_eq!(done.len(), 2);
    }

    #[test]
    fn a_closed_reader_is_an_error_and_nothing_is_lost_from_the_queue() {
        let (r, w) = pipe_cloexec().unwrap();
        drop(r);
        let mut q = WriteQueue::default();
        let mut done = Vec::new();
        q.push(b"x".to_vec(), &mut done);
        // SIGPIPE is the caller's business (the event loop guards it); here it is ignored.
        // SAFETY: setting a standard disposition for this test process.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let e = q.flush(w.as_raw_fd(), &mut done).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        assert_eq!(q.len(), 1);
        q.discard(&mut done);
        assert!(q.is_empty() && done.len() == 1);
    }
}
