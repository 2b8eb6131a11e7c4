//! How the clone path hands a child its fds without the child copying the
//! parent's fd table.
//!
//! A child made with `CLONE_FILES` shares our fd table; its first step,
//! `close_range(keep + 1, ~0, CLOSE_RANGE_UNSHARE)`, gives it a private
//! table holding only the fds up to `keep` (the kernel copies no more than
//! that), so a spawn costs the same whether this process holds 10 fds or
//! 20,000. The fds the child needs arrive over a channel: a socket pair,
//! over which the parent sends them with `SCM_RIGHTS` just before the clone
//! and the child receives them.
//!
//! A child must get exactly its own fds, whatever happens to any spawn:
//! - a channel belongs to one spawn at a time ([`take`] hands it out from a
//!   lock-free [`Pool`], so spawns never wait for one another, nor for a
//!   child stuck before its exec, and a process forked meanwhile inherits
//!   no lock);
//! - every message carries a [`Header`] (the spawning process, a
//!   process-wide sequence number, the fd count); the child receives
//!   without blocking (the message was sent before the clone) and checks
//!   the header, the size and the control message before it uses anything,
//!   failing its spawn otherwise ([`child_receive`]);
//! - whatever happens after the send (the child killed before it received,
//!   the clone failing, anything unwinding), the [`Lease`] drains the
//!   channel when it is dropped, closing the fds left in it. By then the
//!   child has exec'd or is gone (`CLONE_VFORK`), so nothing can receive
//!   from the channel any more, and once drained it is as new: it is kept
//!   (its low fd number is what keeps spawns cheap). A channel whose socket
//!   misbehaves (a send or a drain failing other than as expected) is
//!   closed instead.
//!
//! After `fork()` the pool holds the parent's channels: the same sockets,
//! which the forked process must never use. A channel knows the process
//! that made it; a forked process that takes one of its parent's makes a new
//! socket pair and moves it onto the same fd numbers (low ones, where the
//! parent made its channel early), so its spawns stay as cheap, provided
//! those numbers still hold the parent's sockets (a daemon may have closed
//! and reused them; then it leaves them alone and makes a new pair).

use std::ffi::c_int;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::pool::Pool;
use crate::sys::{cvt, file_id, FileId};

/// At most this many fds go in one message (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS: usize = 250;

/// What a message says about itself (its payload): the child compares it
/// with what it expects before it uses the fds.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Header {
    /// The process that sent it.
    pub pid: u32,
    /// How many fds it carries.
    pub count: u32,
    /// The spawn it is for (process-wide, never reused).
    pub seq: u64,
}

/// The socket pair: the parent sends on `send`, the child receives on `recv`.
pub(super) struct Channel {
    /// The process that made (or took over) the pair.
    pid: u32,
    send: OwnedFd,
    recv: OwnedFd,
    /// What `send` and `recv` are (to recognise them after a fork).
    ids: [FileId; 2],
}

/// Idle channels; one per concurrent spawn is made on demand.
static CHANNELS: Pool<Channel, 4> = Pool::new();
/// The next spawn's sequence number.
static SEQ: AtomicU64 = AtomicU64::new(1);

/// A sequence number no other spawn of this process has.
pub(super) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn my_pid() -> u32 {
    std::process::id()
}

fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair writes two fds into the array.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both fds are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Channel {
    fn new() -> io::Result<Box<Channel>> {
        let (send, recv) = socket_pair()?;
        let ids = [file_id(send.as_raw_fd())?, file_id(recv.as_raw_fd())?];
        Ok(Box::new(Channel { pid: my_pid(), send, recv, ids }))
    }

    /// A channel the process we were forked from made: ours from now on,
    /// on the same numbers when they still hold its sockets.
    fn take_over(self) -> io::Result<Box<Channel>> {
        let Channel { send, recv, ids, .. } = self;
        let ours = [file_id(send.as_raw_fd()).ok() == Some(ids[0]), file_id(recv.as_raw_fd()).ok() == Some(ids[1])];
        if ours != [true, true] {
            // A number that no longer holds the parent's socket is not ours
            // any more (closed, or reused for something else): left alone.
            for (fd, ours) in [(send, ours[0]), (recv, ours[1])] {
                if ours {
                    drop(fd);
                } else {
                    let _ = fd.into_raw_fd();
                }
            }
            return Channel::new();
        }
        let (new_send, new_recv) = match socket_pair() {
            Ok(p) => p,
            Err(e) => {
                // Our copies of the parent's sockets: never to be used, and
                // ours to close.
                drop((send, recv));
                return Err(e);
            }
        };
        let moves = [(new_send.as_raw_fd(), send.as_raw_fd()), (new_recv.as_raw_fd(), recv.as_raw_fd())];
        for (new, old) in moves {
            // SAFETY: dup3 onto a number we own (it holds our copy of the
            // parent's socket, checked above), replacing it atomically.
            if unsafe { libc::dup3(new, old, libc::O_CLOEXEC) } < 0 {
                let e = io::Error::last_os_error();
                drop((send, recv));
                return Err(e);
            }
        }
        // `send` and `recv` now hold the new pair; the fds it was made on go.
        drop((new_send, new_recv));
        let ids = [file_id(send.as_raw_fd())?, file_id(recv.as_raw_fd())?];
        Ok(Box::new(Channel { pid: my_pid(), send, recv, ids }))
    }
}

/// A channel taken for one spawn; see [`take`].
pub(super) struct Lease {
    ch: Option<Box<Channel>>,
    /// A message may be in the channel: drain it before giving it back.
    sent: bool,
    /// Something unexpected happened: close the channel instead.
    spoiled: bool,
}

/// A channel for one spawn: no other spawn can use it until the lease is
/// dropped, which drains it.
///
/// # Errors
/// The socket pair cannot be made (out of fds).
pub(super) fn take() -> io::Result<Lease> {
    let me = my_pid();
    let ch = match CHANNELS.take() {
        Some(ch) if ch.pid == me => ch,
        Some(ch) => (*ch).take_over()?,
        None => Channel::new()?,
    };
    Ok(Lease { ch: Some(ch), sent: false, spoiled: false })
}

/// Make a channel now, while the process has few fds (an engine calls this
/// when it is created), and probe the capabilities (so that a process
/// forked later never waits for a probe another thread had begun).
pub fn prepare() {
    let _ = crate::sys::caps();
    drop(take());
}

/// Make sure `concurrent` spawns at once find a channel ready (as many as
/// the pool keeps): for a caller about to spawn from that many threads (the
/// jobs runner's spawners), so the channels are made now, while the
/// process still has few fds, rather than one by one as spawns overlap.
pub fn prepare_for(concurrent: usize) {
    let _ = crate::sys::caps();
    let leases: Vec<Lease> = (0..concurrent).map_while(|_| take().ok()).collect();
    drop(leases);
}

impl Lease {
    fn ch(&self) -> &Channel {
        self.ch.as_ref().expect("a lease holds its channel until dropped")
    }

    /// The fd the child receives on (the one it keeps through the unshare).
    pub(super) fn recv_fd(&self) -> RawFd {
        self.ch().recv.as_raw_fd()
    }

    /// Send `fds` to the child-to-be (at most [`MAX_FDS`]); the header the
    /// child must find with them.
    ///
    /// # Errors
    /// EBADF when one of them is not open; ENOMEM/ENOBUFS. Nothing was sent.
    pub(super) fn send(&mut self, fds: &[RawFd]) -> io::Result<Header> {
        debug_assert!(fds.len() <= MAX_FDS);
        let header = Header { pid: my_pid(), count: fds.len() as u32, seq: next_seq() };
        let mut payload = header;
        let mut iov = libc::iovec { iov_base: (&mut payload as *mut Header).cast(), iov_len: size_of::<Header>() };
        let data_len = std::mem::size_of_val(fds);
        let space = control_len(fds.len());
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
            let r = unsafe { libc::sendmsg(self.ch().send.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if r >= 0 {
                self.sent = true;
                return Ok(header);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // A caller's closed fd: the channel is as it was.
                Some(libc::EBADF) => return Err(e),
                _ => {
                    self.spoiled = true;
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(ch) = self.ch.take() else { return };
        if self.sent && !drain(ch.recv.as_raw_fd()) {
            self.spoiled = true;
        }
        if !self.spoiled {
            drop(CHANNELS.give(ch));
        }
    }
}

/// Throw away whatever is queued on `recv` (a message its child did not
/// take: it died or failed first), closing the fds it carried. Whether the
/// channel ended empty (false: the socket failed otherwise than EAGAIN).
fn drain(recv: RawFd) -> bool {
    loop {
        let mut payload = [0u8; size_of::<Header>()];
        let mut iov = libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: payload.len() };
        let space = control_len(MAX_FDS);
        let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
        // SAFETY: msghdr is plain data; its buffers outlive recvmsg.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: a valid msghdr for our own socket; MSG_CMSG_CLOEXEC so
        // nothing leaks into a concurrent child.
        let r = unsafe { libc::recvmsg(recv, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return true,
                _ => return false,
            }
        }
        // SAFETY: walking the control messages recvmsg filled in.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let n = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                    let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    for i in 0..n {
                        drop(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
}

/// The child's side: receive the fds the parent sent it (their control
/// message goes into `control`, a buffer of `control_len` bytes the parent
/// prepared), never waiting. Returns false (with errno set) unless exactly
/// the message described by `expect` was there: EAGAIN when none was,
/// EBADMSG when it was another (a different sender, spawn or count), EMFILE
/// when its fds could not all be installed.
///
/// # Safety
/// Async-signal-safe (one raw `recvmsg`, which is no cancellation point);
/// runs in the vfork-style child, whose stack holds the buffers.
pub(super) unsafe fn child_receive(recv: RawFd, control: *mut u8, control_len: usize, expect: &Header) -> bool {
    let fail = |e: c_int| {
        // SAFETY: writing this thread's errno slot.
        unsafe { *libc::__errno_location() = e };
        false
    };
    let mut got = Header::default();
    let mut iov = libc::iovec { iov_base: (&mut got as *mut Header).cast(), iov_len: size_of::<Header>() };
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.cast();
    msg.msg_controllen = control_len;
    let r = loop {
        // SAFETY: a valid msghdr; the buffers stay put while we run.
        let r = unsafe { libc::syscall(libc::SYS_recvmsg, recv, &mut msg as *mut libc::msghdr, libc::MSG_DONTWAIT) };
        // SAFETY: reading this thread's errno slot.
        if r >= 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
            break r;
        }
    };
    if r < 0 {
        return false;
    }
    if r as usize != size_of::<Header>() || msg.msg_flags & libc::MSG_TRUNC != 0 || got != *expect {
        return fail(libc::EBADMSG);
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return fail(libc::EMFILE);
    }
    // Exactly one control message, carrying exactly `count` fds.
    // SAFETY: CMSG_* walk the buffer recvmsg filled in (within msg_controllen).
    let right = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
            && (*cmsg).cmsg_len == libc::CMSG_LEN(expect.count * size_of::<RawFd>() as u32) as usize
            && libc::CMSG_NXTHDR(&msg, cmsg).is_null()
    };
    if !right {
        return fail(libc::EBADMSG);
    }
    true
}

/// The size of the control buffer a child needs to receive `count` fds.
pub(super) fn control_len(count: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((count * size_of::<RawFd>()) as u32) as usize }
}
