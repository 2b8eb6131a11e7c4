//! The poll loop's machinery, for any host: one mio `Poll` holding every
//! pipe, terminal master and pidfd of the host's children; the lists of
//! children with events to deliver and with writes to flush; a waker for
//! other threads, and a pipe for signal wake-ups.
//!
//! A host turns the loop like this (the bindings' `Engine` does):
//!
//! 1. [`Loop::enter_turn`], then [`Loop::poll`] (a host that holds a global
//!    lock, such as the GIL, releases it around this call);
//! 2. [`Loop::handle`] the readiness: reads (into the host's buffers), reaps,
//!    flushes of pipes that became writable;
//! 3. deliver events: [`Loop::next_ready`] children, each's events in order;
//! 4. [`Loop::flush`]: what the turn wrote leaves now, one `writev` per fd.
//!
//! Work queued from outside a turn (another thread, or code a foreign loop
//! runs between turns) wakes the poll, so a host that watches
//! [`Loop::fileno`] sees it.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::child::cell::{ChildCell, Host};
use crate::child::{Child, Role};
use crate::io::{read_available, ChunkAlloc};
use crate::orphans;
use crate::reap::{self, Exit};
use crate::spawn::Spawned;
use crate::sys::{self, SigpipeShield};

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CHILD_TOKEN: usize = 2;

/// The longest single poll: epoll takes an `int` of milliseconds, and a timer
/// days away may as well be looked at again then.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The loop this thread is turning (its address), if any.
    static TURNING: Cell<usize> = const { Cell::new(0) };
}

/// One fd's readiness, as the poll reported it.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    token: Token,
    readable: bool,
    writable: bool,
    error: bool,
    read_closed: bool,
    write_closed: bool,
}

/// What one poll returned.
#[derive(Debug, Default)]
pub struct Polled {
    pub ready: Vec<Readiness>,
    /// A signal arrived (the host runs its signal handlers).
    pub signals: bool,
}

/// The parent's end of one of a child's pipes: child fd, fd, role.
pub type PipeEnd = (i32, OwnedFd, Role);

/// Why [`Loop::add_child`] failed, with the pipes it was given back.
#[derive(Debug)]
pub struct AddError {
    pub error: io::Error,
    pub pipes: Vec<PipeEnd>,
}

/// Something that went wrong on the loop's side that no caller can be
/// told about: the host logs it.
#[derive(Debug)]
pub struct LoopError {
    pub pid: libc::pid_t,
    pub what: &'static str,
    pub error: io::Error,
}

/// A child and which of its fds a token stands for.
type Watch<H> = (Arc<ChildCell<H>>, Watched);

/// A read cut short by the per-turn cap: the child, its fd, the pipe's token.
type Reread<H> = (Arc<ChildCell<H>>, i32, Token);

#[derive(Clone, Copy)]
enum Watched {
    Exit,
    Fd(i32),
}

/// Exits seen by the no-pidfd waiter threads, for the loop to reap.
struct ExitInbox<H: Host> {
    cells: Mutex<(Vec<Arc<ChildCell<H>>>, bool)>,
    waker: Arc<Waker>,
}

impl<H: Host> ExitInbox<H> {
    /// Hand an exited (not yet reaped) child to the loop; once the loop has
    /// gone, reap it here.
    fn post(&self, cell: Arc<ChildCell<H>>) {
        let mut g = lock(&self.cells);
        if g.1 {
            drop(g);
            let _ = cell.with(|c, _| c.try_reap(true));
            return;
        }
        g.0.push(cell);
        drop(g);
        let _ = self.waker.wake();
    }
}

/// The loop: see the module documentation.
pub struct Loop<H: Host> {
    poll: Mutex<(Poll, Events)>,
    poll_fd: RawFd,
    registry: Registry,
    waker: Arc<Waker>,
    signal_r: OwnedFd,
    signal_w: OwnedFd,
    watches: Mutex<HashMap<Token, Watch<H>>>,
    next_token: AtomicUsize,
    ready: Mutex<VecDeque<Arc<ChildCell<H>>>>,
    dirty: Mutex<Vec<Arc<ChildCell<H>>>>,
    rereads: Mutex<Vec<Reread<H>>>,
    exits: Arc<ExitInbox<H>>,
    /// Children started whose `Ended` has not been delivered yet.
    live: AtomicUsize,
    /// This process is a fork of the one that made the loop: its children
    /// are not ours, and nothing here may be touched any more.
    forked: AtomicBool,
    /// The process that made the loop (a fork is detected even where no
    /// host hook called [`Loop::forget_after_fork`]).
    owner: libc::pid_t,
}

/// Marks the calling thread as turning a loop, until dropped.
pub struct TurnGuard<'a, H: Host> {
    lp: &'a Loop<H>,
    previous: usize,
}

impl<H: Host> Drop for TurnGuard<'_, H> {
    fn drop(&mut self) {
        TURNING.with(|t| t.set(self.previous));
        // Work left for the next turn (events a flush produced): a host that
        // only turns the loop when its fd is readable must see the fd ready.
        if self.lp.has_work() {
            self.lp.wake();
        }
    }
}

impl<H: Host> Loop<H> {
    /// A loop with no children.
    ///
    /// # Errors
    /// The poll, waker or signal pipe cannot be created (out of fds).
    pub fn new() -> io::Result<Self> {
        // While the process still has few fds (see `spawn::channel`).
        crate::spawn::channel::prepare();
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(Waker::new(&registry, WAKER)?);
        let (signal_r, signal_w) = sys::pipe_cloexec()?;
        sys::set_nonblocking(signal_r.as_raw_fd(), true)?;
        sys::set_nonblocking(signal_w.as_raw_fd(), true)?;
        registry.register(&mut SourceFd(&signal_r.as_raw_fd()), SIGNALS, Interest::READABLE)?;
        let poll_fd = poll.as_raw_fd();
        Ok(Loop {
            poll: Mutex::new((poll, Events::with_capacity(1024))),
            poll_fd,
            registry,
            exits: Arc::new(ExitInbox { cells: Mutex::new((Vec::new(), false)), waker: waker.clone() }),
            waker,
            signal_r,
            signal_w,
            watches: Mutex::new(HashMap::new()),
            next_token: AtomicUsize::new(FIRST_CHILD_TOKEN),
            ready: Mutex::new(VecDeque::new()),
            dirty: Mutex::new(Vec::new()),
            rereads: Mutex::new(Vec::new()),
            live: AtomicUsize::new(0),
            forked: AtomicBool::new(false),
            // SAFETY: getpid only reads.
            owner: unsafe { libc::getpid() },
        })
    }

    /// The poll's fd: readable whenever the loop has something to do.
    pub fn fileno(&self) -> RawFd {
        self.poll_fd
    }

    /// The write end of the signal wake-up pipe (for `signal.set_wakeup_fd`).
    pub fn signal_fd(&self) -> RawFd {
        self.signal_w.as_raw_fd()
    }

    /// The registry, for (re)registering a child's fds under its lock.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Wake the poll (from any thread).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    /// Wake the poll unless the calling thread is turning this loop (it will
    /// see the new work before the turn ends).
    pub fn nudge(&self) {
        if !self.in_turn() {
            self.wake();
        }
    }

    /// Whether the calling thread is inside a turn of this loop.
    pub fn in_turn(&self) -> bool {
        TURNING.with(|t| t.get() == self as *const Self as usize)
    }

    /// Start a turn on this thread (see [`TurnGuard`]).
    pub fn enter_turn(&self) -> TurnGuard<'_, H> {
        let previous = TURNING.with(|t| t.replace(self as *const Self as usize));
        TurnGuard { lp: self, previous }
    }

    /// Whether events, flushes, re-reads or exits are waiting (the next poll
    /// must not sleep).
    pub fn has_work(&self) -> bool {
        !lock(&self.ready).is_empty()
            || !lock(&self.dirty).is_empty()
            || !lock(&self.rereads).is_empty()
            || !lock(&self.exits.cells).0.is_empty()
    }

    /// Whether children have events to deliver.
    pub fn has_ready(&self) -> bool {
        !lock(&self.ready).is_empty()
    }

    /// Children started whose `Ended` has not been delivered yet.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Whether this process is a fork of the loop's owner.
    pub fn is_forked(&self) -> bool {
        // SAFETY: getpid only reads.
        self.forked.load(Ordering::Acquire) || unsafe { libc::getpid() } != self.owner
    }

    /// In a forked child: the children and fds here belong to the parent.
    /// From now on nothing is touched (no lock is taken: another thread may
    /// have held one when the process forked), and dropping the loop only
    /// closes this process's copies of the fds.
    pub fn forget_after_fork(&self) {
        self.forked.store(true, Ordering::Release);
    }

    // -- children ---------------------------------------------------------------

    /// Take a started child into the loop: its pipes (child fd, the parent's
    /// end, role; a terminal's master under [`crate::child::INPUT_FD`]) and
    /// its pidfd are registered, or, without pidfds, a thread waits for it.
    /// Until all of that has succeeded `spawned` keeps its guard: on an
    /// error it is dropped, which kills and reaps the child, and the pipes
    /// come back with the error (a caller's own fd stays the caller's).
    ///
    /// # Errors
    /// A registration or thread-creation failure (out of memory or fds).
    pub fn add_child(&self, spawned: Spawned, pipes: Vec<PipeEnd>, ext: H::Ext) -> Result<Arc<ChildCell<H>>, AddError> {
        let mut spawned = spawned;
        let terminal = pipes.iter().any(|(_, _, role)| *role == Role::Terminal);
        let count = pipes.len() + 1;
        let base = self.next_token.fetch_add(count, Ordering::Relaxed);
        let tokens: Vec<Token> = (base..base + count).map(Token).collect();
        let exit_token = tokens[count - 1];
        let mut registered: Vec<RawFd> = Vec::new();
        let undo = |registered: &[RawFd]| {
            for fd in registered {
                let _ = self.registry.deregister(&mut SourceFd(fd));
            }
        };
        let mut watch = pipes
            .iter()
            .zip(&tokens)
            .map(|((_, end, role), t)| (end.as_raw_fd(), *t, role.interest()))
            .collect::<Vec<_>>();
        if let Some(pidfd) = spawned.pidfd_raw() {
            watch.push((pidfd, exit_token, Interest::READABLE));
        }
        for (fd, token, interest) in watch {
            if let Err(error) = self.registry.register(&mut SourceFd(&fd), token, interest) {
                undo(&registered);
                return Err(AddError { error, pipes });
            }
            registered.push(fd);
        }
        let pid = spawned.pid();
        // Without pidfds a thread waits for the child; it is started before
        // anything is handed over, and gets the child once it exists.
        let waiter = if spawned.pidfd_raw().is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Arc<ChildCell<H>>>();
            let inbox = self.exits.clone();
            let started = std::thread::Builder::new().name(format!("fp-wait-{pid}")).spawn(move || {
                let Ok(cell) = rx.recv() else { return };
                // Waits without reaping: the loop reaps under the child's
                // lock, so the pid is never signalled after it was freed.
                let _ = reap::wait_exited_nowait(pid);
                inbox.post(cell);
            });
            match started {
                Ok(_) => Some(tx),
                Err(error) => {
                    undo(&registered);
                    return Err(AddError { error, pipes });
                }
            }
        } else {
            None
        };
        let mut child = Child::new(pid, spawned.take_pidfd(), terminal);
        child.set_tag(spawned.take_tag());
        let mut watched = Vec::with_capacity(count);
        child.reserve_pipes(pipes.len());
        for ((fd, end, role), token) in pipes.into_iter().zip(&tokens) {
            child.add_pipe(fd, end, *token, role);
            watched.push((*token, Watched::Fd(fd)));
        }
        watched.push((exit_token, Watched::Exit));
        let cell = Arc::new(ChildCell::new(child, ext, base..base + count));
        if let Some(tx) = waiter {
            let _ = tx.send(cell.clone());
        }
        spawned.disarm();
        let mut w = lock(&self.watches);
        for (token, what) in watched {
            w.insert(token, (cell.clone(), what));
        }
        drop(w);
        self.live.fetch_add(1, Ordering::AcqRel);
        Ok(cell)
    }

    /// A child's `Ended` has been delivered: forget it.
    pub fn retire(&self, cell: &Arc<ChildCell<H>>) {
        let mut w = lock(&self.watches);
        for t in cell.tokens() {
            w.remove(&t);
        }
        drop(w);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// No host will turn this loop again, though its children's transports
    /// may live on (an asyncio loop that closed while the program keeps its
    /// `Process` objects): their pipes are closed, and each is reaped as it
    /// exits (see [`orphans::settle`]). The loop forgets them; they come back
    /// for the host to release what it keeps for each.
    pub fn abandon(&self) -> Vec<Arc<ChildCell<H>>> {
        if self.is_forked() {
            return Vec::new();
        }
        let posted = {
            let mut inbox = lock(&self.exits.cells);
            // Waiter threads reap from now on (see `ExitInbox::post`).
            inbox.1 = true;
            std::mem::take(&mut inbox.0)
        };
        for cell in &posted {
            let _ = cell.with(|c, _| c.try_reap(true));
        }
        let watched = std::mem::take(&mut *lock(&self.watches)).into_values().map(|(cell, _)| cell);
        let mut seen = std::collections::HashSet::new();
        let cells: Vec<_> = watched.chain(posted).filter(|c| seen.insert(Arc::as_ptr(c) as usize)).collect();
        self.live.store(0, Ordering::Release);
        orphans::settle(&cells);
        cells
    }

    /// `cell` has events to deliver.
    pub fn mark_ready(&self, cell: &Arc<ChildCell<H>>) {
        if ChildCell::<H>::claim(&cell.in_ready) {
            lock(&self.ready).push_back(cell.clone());
            self.nudge();
        }
    }

    /// `cell` has writes to flush at the end of the turn.
    pub fn mark_dirty(&self, cell: &Arc<ChildCell<H>>) {
        if ChildCell::<H>::claim(&cell.in_dirty) {
            lock(&self.dirty).push(cell.clone());
            self.nudge();
        }
    }

    /// The next child with events to deliver (taken off the list; a host
    /// that stops half-way puts it back with [`Loop::mark_ready`]).
    pub fn next_ready(&self) -> Option<Arc<ChildCell<H>>> {
        let cell = lock(&self.ready).pop_front()?;
        cell.in_ready.store(false, Ordering::Release);
        Some(cell)
    }

    // -- a turn -----------------------------------------------------------------

    /// Wait for readiness, at most `timeout` (`None`: until something
    /// happens), no wait at all if work is pending. A host holding a global
    /// lock releases it around this call.
    ///
    /// # Errors
    /// EINTR (a signal: the host runs its handlers) and other epoll errors.
    pub fn poll(&self, timeout: Option<Duration>) -> io::Result<Polled> {
        let timeout = if self.has_work() { Some(Duration::ZERO) } else { timeout.map(|t| t.min(MAX_WAIT)) };
        let mut g = lock(&self.poll);
        let (poll, events) = &mut *g;
        poll.poll(events, timeout)?;
        let mut out = Polled::default();
        for e in events.iter() {
            match e.token() {
                WAKER => {}
                SIGNALS => {
                    let mut buf = [0u8; 64];
                    while matches!(sys::read(self.signal_r.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
                    out.signals = true;
                }
                token => out.ready.push(Readiness {
                    token,
                    readable: e.is_readable(),
                    writable: e.is_writable(),
                    error: e.is_error(),
                    read_closed: e.is_read_closed(),
                    write_closed: e.is_write_closed(),
                }),
            }
        }
        Ok(out)
    }

    /// Do the I/O and reaping that `ready` (and the last turn's leftovers)
    /// call for. Reads go into `alloc`'s buffers with no lock held. Returns
    /// what went wrong that only a log can report.
    pub fn handle(&self, ready: &[Readiness], alloc: &mut impl ChunkAlloc<H::Chunk>) -> Vec<LoopError> {
        let mut errors = Vec::new();
        let rereads = std::mem::take(&mut *lock(&self.rereads));
        for (cell, fd, token) in rereads {
            self.read(&cell, fd, token, true, alloc);
        }
        for ev in ready {
            let Some((cell, what)) = lock(&self.watches).get(&ev.token).map(|(c, w)| (c.clone(), *w)) else {
                continue;
            };
            match what {
                Watched::Exit => match cell.with(|c, _| c.try_reap(false)) {
                    Ok(true) => self.mark_ready(&cell),
                    Ok(false) => {}
                    Err(error) => errors.push(LoopError { pid: cell.started_pid(), what: "reaping", error }),
                },
                Watched::Fd(fd) => {
                    if ev.readable || ev.read_closed || ev.error {
                        self.read(&cell, fd, ev.token, ev.read_closed || ev.error, alloc);
                    }
                    if ev.writable || ev.write_closed || ev.error {
                        let events = cell.with(|c, _| {
                            if ev.write_closed || ev.error {
                                c.on_write_closed(fd, ev.token);
                            }
                            if ev.writable && c.has_queued(fd) {
                                let _shield = SigpipeShield::raise();
                                c.flush_fd(fd, &self.registry);
                            }
                            c.has_events()
                        });
                        if events {
                            self.mark_ready(&cell);
                        }
                    }
                }
            }
        }
        let exited = std::mem::take(&mut lock(&self.exits.cells).0);
        for cell in exited {
            match cell.with(|c, _| c.try_reap(true)) {
                Ok(true) => self.mark_ready(&cell),
                Ok(false) => {}
                Err(error) => errors.push(LoopError { pid: cell.started_pid(), what: "reaping", error }),
            }
        }
        errors
    }

    fn read(
        &self,
        cell: &Arc<ChildCell<H>>,
        fd: i32,
        token: Token,
        drain: bool,
        alloc: &mut impl ChunkAlloc<H::Chunk>,
    ) {
        let Some(src) = cell.with(|c, _| c.read_source(fd, token)) else { return };
        let drained = read_available(&src, drain, alloc);
        let registry = &self.registry;
        let read = drained.read;
        let events = cell.with(move |c, _| {
            c.on_read(fd, token, read, registry);
            c.has_events()
        });
        // Last: if the pipe closed meanwhile, this closes its fd.
        drop(src);
        if drained.more {
            lock(&self.rereads).push((cell.clone(), fd, token));
        }
        if events {
            self.mark_ready(cell);
        }
    }

    /// Write what the turn queued: one pass over the children with queued
    /// writes, each pipe's queue in one `writev`, with SIGPIPE kept away.
    pub fn flush(&self) {
        let cells = std::mem::take(&mut *lock(&self.dirty));
        if cells.is_empty() {
            return;
        }
        let _shield = SigpipeShield::raise();
        for cell in cells {
            cell.in_dirty.store(false, Ordering::Release);
            let registry = &self.registry;
            if cell.with(move |c, _| {
                c.flush(registry);
                c.has_events()
            }) {
                self.mark_ready(&cell);
            }
        }
    }
}

impl<H: Host> Drop for Loop<H> {
    /// The host has gone: close every pipe (the children see EOF), and hand
    /// the children that still run to a reaper thread, so none is left a
    /// zombie. In a forked process nothing is touched (see
    /// [`Loop::forget_after_fork`]): the fields are dropped, which only closes
    /// this process's copies of the fds.
    fn drop(&mut self) {
        if self.is_forked() {
            return;
        }
        lock(&self.exits.cells).1 = true;
        let mut seen = std::collections::HashSet::new();
        let mut orphans = Vec::new();
        for (cell, _) in lock(&self.watches).values() {
            if seen.insert(Arc::as_ptr(cell) as usize) {
                if let Some(child) = cell.with(|c, _| c.detach()) {
                    orphans.push(child);
                }
            }
        }
        reap::reap_in_background(orphans);
    }
}

/// An exit as a host sees it (re-exported for hosts that only depend on the loop).
pub type ChildExit = Exit;
