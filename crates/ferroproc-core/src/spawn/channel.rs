//! How the clone path hands a child its fds without the child copying the
//! parent's fd table.
//!
//! A child made with `CLONE_FILES` shares our fd table; its first step,
//! `close_range(keep + 1, ~0, CLOSE_RANGE_UNSHARE)`, gives it a private
//! table holding only the fds up to `keep` (the kernel copies no more than
//! that), so a spawn costs the same whether this process holds 10 fds or
//! 20,000 (the fd-table copy and the close of every inherited fd were what
//! made spawns slow with many children alive). The fds the child needs
//! arrive over this channel: a socket pair made while the process still has
//! few fds (so `keep` is a low number), over which the parent sends them
//! with `SCM_RIGHTS` just before the clone and the child receives them.
//!
//! One channel per process (a forked child makes its own), used under a
//! lock: one spawn at a time goes through it.

use std::ffi::c_int;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// At most this many fds go in one message (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 250;

/// The socket pair: the parent sends on `send`, the child receives on `recv`.
pub struct Channel {
    pid: u32,
    send: OwnedFd,
    recv: OwnedFd,
}

static CHANNEL: Mutex<Option<Channel>> = Mutex::new(None);

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair writes two fds into the array.
    super::super::sys::cvt(unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
    })?;
    // SAFETY: both fds are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The channel, locked; made (again, in a forked child) when needed.
///
/// # Errors
/// The socket pair cannot be made (out of fds).
pub fn lock() -> io::Result<MutexGuard<'static, Option<Channel>>> {
    let mut g = CHANNEL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if g.as_ref().is_none_or(|c| c.pid != pid) {
        let (send, recv) = socket_pair()?;
        // A forked child's inherited pair is the parent's: leave it alone
        // (its fds are closed on exec like every other).
        if let Some(old) = g.take() {
            std::mem::forget(old);
        }
        *g = Some(Channel { pid, send, recv });
    }
    Ok(g)
}

/// Make the channel now, while the process has few fds (an engine calls this
/// when it is created).
pub fn prepare() {
    drop(lock());
}

impl Channel {
    /// The fd the child receives on (the one it keeps through the unshare).
    pub fn recv_fd(&self) -> RawFd {
        self.recv.as_raw_fd()
    }

    /// Send `fds` to the child-to-be (at most [`MAX_FDS`]).
    ///
    /// # Errors
    /// EBADF when one of them is not open; ENOMEM/ENOBUFS.
    pub fn send(&self, fds: &[RawFd]) -> io::Result<()> {
        debug_assert!(fds.len() <= MAX_FDS);
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let data_len = std::mem::size_of_val(fds);
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
        let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
        // SAFETY: msghdr is plain data; the pointers set below outlive sendmsg.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            // SAFETY: the control buffer is CMSG_SPACE(data_len) bytes, enough
            // for one header and the fds; CMSG_FIRSTHDR/CMSG_DATA point into it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as usize;
                std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
            }
        }
        loop {
            // SAFETY: a valid msghdr for our own socket.
            let r = unsafe { libc::sendmsg(self.send.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Throw away a message a child did not take (it failed before), and
    /// the fds it carried.
    pub fn drain(&self) {
        loop {
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
            // SAFETY: CMSG_SPACE only computes a size.
            let space = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as u32) } as usize;
            let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
            // SAFETY: msghdr is plain data; its buffers outlive recvmsg.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            // SAFETY: a valid msghdr for our own socket; MSG_CMSG_CLOEXEC so
            // nothing leaks into a concurrent child.
            let r =
                unsafe { libc::recvmsg(self.recv.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
            if r < 0 {
                return;
            }
            // SAFETY: walking the control messages recvmsg filled in.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                        let n = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                        for i in 0..n {
                            libc::close(*data.add(i));
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
        }
    }
}

/// The child's side: receive the fds (their control message goes into
/// `control`, a buffer of `control_len` bytes the parent prepared). Returns
/// false (with errno set) if they did not all arrive.
///
/// # Safety
/// Async-signal-safe (one `recvmsg`); runs in the vfork-style child.
pub unsafe fn child_receive(recv: RawFd, control: *mut u8, control_len: usize) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.cast();
    msg.msg_controllen = control_len;
    loop {
        // SAFETY: a valid msghdr; the control buffer belongs to the parent's
        // stack frame, which stays put while we run (CLONE_VFORK).
        let r = unsafe { libc::recvmsg(recv, &mut msg, 0) };
        if r >= 0 {
            break;
        }
        // SAFETY: reading this thread's errno slot.
        if unsafe { *libc::__errno_location() } != libc::EINTR {
            return false;
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = libc::EMFILE };
        return false;
    }
    true
}

/// The size of the control buffer a child needs to receive `count` fds.
pub fn control_len(count: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((count * size_of::<RawFd>()) as u32) as usize }
}
