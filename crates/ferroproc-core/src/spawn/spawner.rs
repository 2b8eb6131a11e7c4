//! Spawner threads: for a process whose spawn channel sits above many fds.
//!
//! A child that shares our fd table keeps every fd up to its channel's
//! socket when it takes a private one ([`channel`]), so its cost grows with
//! that socket's number. The channel is made early (when the first engine
//! is), below the fds a program opens later, and a forked process keeps its
//! parent's numbers; but a program that opened its fds before it imported
//! ferroproc has only high numbers left. Such a spawn is handed to a
//! spawner thread instead: a thread of ours that took a private fd table
//! (`unshare(CLONE_FILES)`, one copy of ours, once) and closed all of it but
//! its socket, at fd 0. For each spawn it receives the child's fds over that
//! socket (`SCM_RIGHTS`, into its tiny table), starts the child with the
//! classic clone path there (the child copies a table of a few fds) and
//! sends the pidfd back. The child is still ours: threads share their
//! children, so reaping and signalling do not change. The request itself is
//! read in place (same memory); the caller waits until the spawner is done
//! with it.
//!
//! A spawner serves one spawn at a time, taken from a lock-free [`Pool`]
//! like the channels (a second spawn meanwhile gets, or starts, another; a
//! child stuck before its exec holds up only its own spawn). What a child
//! inherits from the thread that clones it (credentials, capabilities,
//! `no_new_privs`, seccomp mode, nice value, scheduling, CPU affinity:
//! [`ThreadState`]) is compared with the calling thread's before each
//! spawn; on a difference the spawner is retired and a fresh one started
//! from the calling thread. Not handed over: a spawn with a parent-death
//! signal (tied to the thread that clones the child, so it stays the
//! caller's) and one that keeps the caller's other fds. A forked process
//! never uses its parent's spawners (they are threads of the parent).

use std::cell::UnsafeCell;
use std::ffi::c_int;
use std::io;
use std::mem::{size_of, ManuallyDrop};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use super::channel::{self, Header};
use super::pool::Pool;
use super::thread_state::ThreadState;
use super::{clone, Request, Setup, SpawnError, Spawned, Stage, Stdio};
use crate::sys::{caps, cvt, file_id, spawn_thread_without_signals, FileId};

/// Where the channel's socket is above this fd number, a spawn goes to a
/// spawner thread: copying more fds than this costs more than the hand-off.
/// Measured on 2 cores (`/bin/true`, best of 30 batches): the hand-off adds
/// 50-80 µs, sharing the table adds about 0.11 µs per fd below the channel,
/// so the two meet between 500 and 700 fds.
pub(super) const SPAWNER_ABOVE: RawFd = 512;

/// The most fds one request carries (the kernel's `SCM_MAX_FD`).
const MAX_SENT: usize = 253;

/// What a spawner made of a job.
enum Outcome {
    Pending,
    /// The calling thread's state is not the spawner's: not started.
    Mismatch,
    Done(Result<libc::pid_t, SpawnError>),
}

/// One spawn handed to a spawner, on the caller's stack: the caller waits
/// (`done`) until the spawner has let go of it.
struct Job {
    req: *const Request<'static>,
    seq: u64,
    state: ThreadState,
    outcome: UnsafeCell<Outcome>,
    done: AtomicBool,
    caller: std::thread::Thread,
}

/// Where a caller leaves its job for the spawner (before it sends the fds).
struct Mailbox {
    job: AtomicPtr<Job>,
}

/// A spawner thread, seen from the callers' side.
struct Spawner {
    pid: u32,
    /// Our end of its socket pair (`SOCK_SEQPACKET`: closing it ends the thread).
    sock: ManuallyDrop<OwnedFd>,
    sock_id: FileId,
    mailbox: Arc<Mailbox>,
}

static SPAWNERS: Pool<Spawner, 4> = Pool::new();

impl Drop for Spawner {
    fn drop(&mut self) {
        // SAFETY: dropped once, here.
        let sock = unsafe { ManuallyDrop::take(&mut self.sock) };
        // Closing our end ends the thread. In a forked process (no thread)
        // the number is closed only if it still holds our copy of the
        // socket: a daemon may have closed it and reused the number.
        if self.pid == std::process::id() || file_id(sock.as_raw_fd()).ok() == Some(self.sock_id) {
            drop(sock);
        } else {
            let _ = sock.into_raw_fd();
        }
    }
}

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair writes two fds into the array.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both fds are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whether a spawn of `req` may be handed to a spawner at all.
pub(super) fn suits(req: &Request<'_>) -> bool {
    let entries = match req.stdio {
        Stdio::Fds(entries) => entries.len(),
        Stdio::Pty(_) => 0,
    };
    req.setup.parent_death_signal.is_none()
        && !req.setup.keep_fds
        && entries + usize::from(req.setup.cgroup.is_some()) <= MAX_SENT
}

/// Start the child of `req` on a spawner thread. `None`: no spawner could
/// be had (the caller starts the child itself).
pub(super) fn spawn(req: &Request<'_>) -> Option<Result<Spawned, SpawnError>> {
    let mut spawner = take()?;
    for fresh in [false, true] {
        if let Some(result) = spawner.run(req) {
            drop(SPAWNERS.give(Box::new(spawner)));
            return Some(result);
        }
        // Made by a thread whose state differs from ours: retire it and
        // start one from this thread (which then is as this thread is).
        drop(spawner);
        if fresh {
            break;
        }
        spawner = Spawner::start().ok()?;
    }
    None
}

/// A spawner of this process: an idle one, or a new one started from the
/// calling thread.
fn take() -> Option<Spawner> {
    let me = std::process::id();
    while let Some(s) = SPAWNERS.take() {
        if s.pid == me {
            return Some(*s);
        }
        // The parent's (we are a forked process): its thread is not here.
    }
    Spawner::start().ok()
}

impl Spawner {
    fn start() -> io::Result<Spawner> {
        let (ours, theirs) = seqpacket_pair()?;
        let sock_id = file_id(ours.as_raw_fd())?;
        let mailbox = Arc::new(Mailbox { job: AtomicPtr::new(std::ptr::null_mut()) });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (theirs_fd, mb) = (theirs.as_raw_fd(), mailbox.clone());
        spawn_thread_without_signals("ferroproc-spawn", move || serve(theirs_fd, &mb, &ready_tx))?;
        // Once it has its own table (holding its copy of `theirs`), ours goes.
        let ready = ready_rx.recv().unwrap_or_else(|_| Err(io::Error::from_raw_os_error(libc::EIO)));
        drop(theirs);
        ready?;
        Ok(Spawner { pid: std::process::id(), sock: ManuallyDrop::new(ours), sock_id, mailbox })
    }

    /// Run `req` on this spawner; `None` when the calling thread's state is
    /// not the spawner's.
    fn run(&self, req: &Request<'_>) -> Option<Result<Spawned, SpawnError>> {
        let entries: &[(c_int, c_int)] = match req.stdio {
            Stdio::Fds(entries) => entries,
            Stdio::Pty(_) => &[],
        };
        let sources: Vec<RawFd> = entries.iter().map(|e| e.1).chain(req.setup.cgroup).collect();
        let header = Header { pid: std::process::id(), count: sources.len() as u32, seq: channel::next_seq() };
        let job = Job {
            // The spawner reads it only until `done`, while we wait here.
            req: (req as *const Request<'_>).cast(),
            seq: header.seq,
            state: ThreadState::current(),
            outcome: UnsafeCell::new(Outcome::Pending),
            done: AtomicBool::new(false),
            caller: std::thread::current(),
        };
        self.mailbox.job.store((&job as *const Job).cast_mut(), Ordering::Release);
        if let Err(e) = send(self.sock.as_raw_fd(), header, &sources, libc::MSG_NOSIGNAL) {
            // Nothing was sent: the job was never the spawner's.
            self.mailbox.job.store(std::ptr::null_mut(), Ordering::Release);
            let entry = entries.iter().position(|e| !crate::sys::fd_is_open(e.1));
            let stage = if entry.is_none() && req.setup.cgroup.is_some() { Stage::Cgroup } else { Stage::Fds };
            return Some(Err(SpawnError { stage, errno: e.raw_os_error().unwrap_or(libc::EIO), path: None, entry }));
        }
        while !job.done.load(Ordering::Acquire) {
            std::thread::park();
        }
        match job.outcome.into_inner() {
            Outcome::Mismatch => None,
            Outcome::Done(Ok(pid)) => {
                // Its pidfd, sent before `done` was set (none without pidfds).
                let reply = caps().pidfd.then(|| receive(self.sock.as_raw_fd(), 1, false).ok()).flatten();
                let pidfd = reply.and_then(|(h, mut fds)| (h.seq == header.seq).then(|| fds.pop()).flatten());
                Some(Ok(Spawned::new(pid, pidfd)))
            }
            Outcome::Done(Err(e)) => Some(Err(e)),
            Outcome::Pending => Some(Err(SpawnError::at(Stage::Spawn, libc::EIO))),
        }
    }
}

// SAFETY: a Job is shared between its caller and one spawner: `outcome` is
// written by the spawner alone and read by the caller only after `done`
// (release/acquire); `req` points at data the caller keeps alive and
// unchanged until then.
unsafe impl Sync for Job {}

/// Send `header` and `fds` on `sock`.
fn send(sock: RawFd, header: Header, fds: &[RawFd], flags: c_int) -> io::Result<()> {
    let mut payload = header;
    let mut iov = libc::iovec { iov_base: (&mut payload as *mut Header).cast(), iov_len: size_of::<Header>() };
    let space = channel::control_len(fds.len());
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; the pointers set below outlive sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the buffer holds one header and the fds (CMSG_SPACE).
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        }
    }
    loop {
        // SAFETY: a valid msghdr for our own socket.
        if unsafe { libc::sendmsg(sock, &msg, flags) } >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receive one message of at most `max` fds on `sock` (close-on-exec),
/// waiting for it or not. `UnexpectedEof` when the other end has gone.
fn receive(sock: RawFd, max: usize, wait: bool) -> io::Result<(Header, Vec<OwnedFd>)> {
    let mut header = Header::default();
    let mut iov = libc::iovec { iov_base: (&mut header as *mut Header).cast(), iov_len: size_of::<Header>() };
    let space = channel::control_len(max);
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; its buffers outlive recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    let flags = libc::MSG_CMSG_CLOEXEC | if wait { 0 } else { libc::MSG_DONTWAIT };
    let n = loop {
        // SAFETY: a valid msghdr for our own socket.
        let n = unsafe { libc::recvmsg(sock, &mut msg, flags) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages recvmsg filled in; each fd is new and ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                fds.extend((0..count).map(|i| OwnedFd::from_raw_fd(data.add(i).read_unaligned())));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if n as usize != size_of::<Header>() || msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADMSG));
    }
    Ok((header, fds))
}

/// The spawner thread: take a table of its own holding only `sock` (moved
/// to 0) and the process's stdout and stderr (1 and 2, or /dev/null there),
/// say so on `ready`, then serve jobs until the other end closes. Fds 1 and
/// 2 stay taken so that nothing this thread might print (a panic message)
/// can land in a child's fd received at that number.
fn serve(sock: RawFd, mailbox: &Mailbox, ready: &std::sync::mpsc::Sender<io::Result<()>>) {
    // SAFETY: (this block) this thread's own fd table: unshared first, so
    // every close, dup and open below touches no fd of the process's.
    let setup = unsafe {
        if libc::unshare(libc::CLONE_FILES) < 0 {
            Err(io::Error::last_os_error())
        } else {
            let close_range = |first: RawFd, last: RawFd| {
                if first <= last {
                    libc::syscall(libc::SYS_close_range, first as libc::c_uint, last as libc::c_uint, 0);
                }
            };
            close_range(3, sock - 1);
            close_range(sock.max(2) + 1, RawFd::MAX);
            // Our socket at 0, so that only a few numbers are ever in use
            // here (a child copies the table up to the highest).
            let moved = sock == 0 || libc::dup3(sock, 0, libc::O_CLOEXEC) == 0;
            if moved && sock != 0 {
                libc::close(sock);
            }
            for fd in [1, 2] {
                if libc::fcntl(fd, libc::F_GETFD) < 0 {
                    // The lowest free number: `fd` itself.
                    libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                }
            }
            if moved {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
    };
    let failed = setup.is_err();
    let _ = ready.send(setup);
    if failed {
        return;
    }
    const SOCK: RawFd = 0;
    let me = std::process::id();
    loop {
        let Ok((header, fds)) = receive(SOCK, MAX_SENT, true) else { return };
        if header.pid != me {
            // Not from this process (a forked one writing to what it
            // inherited): its fds go, the mailbox is left alone.
            continue;
        }
        let job = mailbox.job.swap(std::ptr::null_mut(), Ordering::Acquire);
        if job.is_null() {
            continue;
        }
        // SAFETY: the caller keeps the job alive until we set `done`.
        let job = unsafe { &*job };
        if job.seq != header.seq || header.count as usize != fds.len() {
            // Not this job's message (never seen: each caller sends its
            // own, once): the job waits for its own.
            mailbox.job.store((job as *const Job).cast_mut(), Ordering::Release);
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_one(SOCK, job, &fds)))
            .unwrap_or(Outcome::Done(Err(SpawnError::at(Stage::Spawn, libc::EIO))));
        drop(fds);
        let caller = job.caller.clone();
        // SAFETY: the caller reads `outcome` only after `done`, set below.
        unsafe { *job.outcome.get() = outcome };
        job.done.store(true, Ordering::Release);
        caller.unpark();
    }
}

/// Start the job's child here, on the fds received for it; send back its pidfd.
fn serve_one(sock: RawFd, job: &Job, fds: &[OwnedFd]) -> Outcome {
    if ThreadState::current() != job.state {
        return Outcome::Mismatch;
    }
    // SAFETY: the caller keeps the request alive and unchanged until `done`.
    let req: &Request<'_> = unsafe { &*job.req };
    let received: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let (entries, cgroup) = match req.stdio {
        Stdio::Fds(entries) => {
            let ours: Vec<(c_int, c_int)> = entries.iter().zip(&received).map(|(e, &fd)| (e.0, fd)).collect();
            (Some(ours), req.setup.cgroup.map(|_| received[entries.len()]))
        }
        Stdio::Pty(_) => (None, req.setup.cgroup.map(|_| received[0])),
    };
    let setup = Setup { cgroup, ..*req.setup };
    let local = Request { stdio: entries.as_deref().map_or(req.stdio, Stdio::Fds), setup: &setup, ..*req };
    match clone::run_copied(&local) {
        Ok(mut spawned) => {
            let pid = spawned.pid();
            let pidfd = spawned.take_pidfd();
            if let Some(fd) = &pidfd {
                let header = Header { pid: std::process::id(), count: 1, seq: job.seq };
                if let Err(e) = send(sock, header, &[fd.as_raw_fd()], libc::MSG_NOSIGNAL) {
                    // The guard kills and reaps it (by pid: it is unreaped).
                    drop(spawned);
                    return Outcome::Done(Err(SpawnError::at(Stage::Spawn, e.raw_os_error().unwrap_or(libc::EIO))));
                }
            }
            spawned.disarm();
            Outcome::Done(Ok(pid))
        }
        Err(e) => Outcome::Done(Err(e)),
    }
}
