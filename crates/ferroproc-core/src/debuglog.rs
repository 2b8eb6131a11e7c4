//! Debug records: the children ferroproc starts, how each ended, and every
//! signal ferroproc sends with the reason it sent it, for a host to log
//! (the bindings: at `DEBUG` on the `ferroproc` logger).
//!
//! Off by default, and free when off: each place that could make a record
//! (a spawn, an exit, a signal) first reads one atomic flag, [`enabled`],
//! and does nothing more when it is clear. The host sets the flag from its
//! own logging configuration ([`set_enabled`]); nothing here knows how.
//!
//! When on, records are pushed onto a lock-free list from whichever thread
//! made them (the loop's, a transport caller's, the orphans thread; a spawn
//! made from Rust in the middle of a turn as well), often under a child's
//! lock, where the host may not run its own code. The host takes them all
//! with [`take`] where it may ([`pending`] tells it cheaply whether to). No
//! lock is involved, so a process forked while another thread pushes
//! inherits none held.
//!
//! A child started while the flag is set gets a [`Tag`] (when it started,
//! its argv), so that its exit and the signals sent to it can name it and
//! say how long it ran; one started while it was clear has none, and its
//! records give the pid alone.

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::child::{SignalError, TimedOut, TimeoutKind};
use crate::exec::ExecSpec;
use crate::reap::Exit;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether records are wanted (one relaxed load: the cost of the feature
/// when it is off).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Make records from now on, or stop making them (records already made are
/// still taken by [`take`]).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// What a child started while records were wanted is known by.
#[derive(Debug)]
pub struct Tag {
    pub started: Instant,
    /// Its argv (argv[0] included), shared with the records that name it.
    pub argv: Arc<[CString]>,
}

impl Tag {
    /// A tag for a child started now with `argv`.
    pub fn new(argv: &[CString]) -> Box<Tag> {
        Box::new(Tag { started: Instant::now(), argv: argv.into() })
    }
}

/// What a signal was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The child alone.
    Pid(libc::pid_t),
    /// The process group the child leads (this id).
    Group(libc::pid_t),
}

/// Why ferroproc sent a signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// A time limit ran out (its first signal: SIGTERM, or SIGKILL when
    /// there is no grace).
    TimeLimit { kind: TimeoutKind, limit: f64 },
    /// Still there `grace` seconds after a time limit's SIGTERM.
    Grace { kind: TimeoutKind, limit: f64, grace: f64 },
    /// The group's leader exited (`killGroupOnExit`).
    KillOnExit,
    /// The parent lost the connection to the child (`killGroupOnLost`).
    KillOnLost,
    /// The spawn failed after the child had started: it must not stay.
    SpawnFailed,
    /// The host's reason: a short code to filter on, and a sentence.
    Host { code: String, text: String },
}

/// One record.
#[derive(Debug)]
pub enum Record {
    /// A child started. `pgid` when it leads a group of its own.
    Spawned { pid: libc::pid_t, argv: Arc<[CString]>, executable: CString, pgid: Option<libc::pid_t> },
    /// A child's exit was seen: `timed_out` when a time limit ended it,
    /// `ran` and `argv` when it was started with records on.
    Exited {
        pid: libc::pid_t,
        exit: Exit,
        timed_out: Option<TimedOut>,
        ran: Option<Duration>,
        argv: Option<Arc<[CString]>>,
    },
    /// A signal was sent (or sending it failed with errno `error`, other
    /// than by there being nobody left to receive it).
    Signalled {
        pid: libc::pid_t,
        target: Target,
        signal: libc::c_int,
        why: Why,
        error: Option<i32>,
        argv: Option<Arc<[CString]>>,
    },
}

struct Node {
    record: Record,
    next: *mut Node,
}

/// The records not taken yet, newest first (a Treiber stack: pushes link a
/// node in with a compare-and-swap, [`take`] swaps the whole list out, so
/// no node is ever popped alone and ABA cannot arise).
static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());

/// How many records were ever made (tests check that none is made while off).
static MADE: AtomicU64 = AtomicU64::new(0);

/// How many records have been made since the process started.
pub fn made() -> u64 {
    MADE.load(Ordering::Relaxed)
}

/// Add a record (from any thread).
pub fn push(record: Record) {
    MADE.fetch_add(1, Ordering::Relaxed);
    let node = Box::into_raw(Box::new(Node { record, next: ptr::null_mut() }));
    let mut head = HEAD.load(Ordering::Relaxed);
    loop {
        // SAFETY: `node` is ours alone until the exchange below publishes it.
        unsafe { (*node).next = head };
        match HEAD.compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// Record the start of child `pid` (`exec`; `leads_group` when it leads a
/// process group of its own) and return its tag.
pub fn spawned(pid: libc::pid_t, exec: &ExecSpec, leads_group: bool) -> Box<Tag> {
    let tag = Tag::new(&exec.argv);
    let executable = exec.candidates.first().cloned().unwrap_or_default();
    push(Record::Spawned { pid, argv: tag.argv.clone(), executable, pgid: leads_group.then_some(pid) });
    tag
}

/// Whether records are waiting to be taken (one load).
#[inline]
pub fn pending() -> bool {
    !HEAD.load(Ordering::Relaxed).is_null()
}

/// Every record waiting, oldest first.
pub fn take() -> Vec<Record> {
    let mut p = HEAD.swap(ptr::null_mut(), Ordering::Acquire);
    let mut out = Vec::new();
    while !p.is_null() {
        // SAFETY: the swap made the whole list ours; each node was made by
        // `Box::into_raw` in `push` and is freed here exactly once.
        let node = unsafe { Box::from_raw(p) };
        p = node.next;
        out.push(node.record);
    }
    out.reverse();
    out
}

/// Record the outcome of sending `signal` to `target` for `why`: nothing
/// when records are off, or when nothing was signalled (nobody was left,
/// or there was no group to signal: the caller hears of that).
pub fn signalled(
    pid: libc::pid_t,
    target: Target,
    signal: libc::c_int,
    why: impl FnOnce() -> Why,
    result: &Result<(), SignalError>,
    tag: Option<&Tag>,
) {
    if !enabled() {
        return;
    }
    let error = match result {
        Ok(()) => None,
        Err(SignalError::Os(e)) if e.raw_os_error() != Some(libc::ESRCH) => Some(e.raw_os_error().unwrap_or(0)),
        Err(_) => return,
    };
    push(Record::Signalled { pid, target, signal, why: why(), error, argv: tag.map(|t| t.argv.clone()) });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The flag and the list are process-wide: tests that turn records on
    /// hold this, take only the records they made (other tests may spawn
    /// meanwhile), and leave the flag off.
    pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn host(code: &str) -> Why {
        Why::Host { code: code.into(), text: "a test".into() }
    }

    fn signal(pid: libc::pid_t, code: &str) -> Record {
        Record::Signalled {
            pid,
            target: Target::Pid(pid),
            signal: libc::SIGTERM,
            why: host(code),
            error: None,
            argv: None,
        }
    }

    /// The records with the reason `code`.
    fn with_code(records: Vec<Record>, code: &str) -> Vec<Record> {
        records
            .into_iter()
            .filter(|r| matches!(r, Record::Signalled { why: Why::Host { code: c, .. }, .. } if c == code))
            .collect()
    }

    fn pid_of(r: &Record) -> libc::pid_t {
        match r {
            Record::Spawned { pid, .. } | Record::Exited { pid, .. } | Record::Signalled { pid, .. } => *pid,
        }
    }

    #[test]
    fn records_come_out_oldest_first_once() {
        let _g = serial();
        for pid in 1..=3 {
            push(signal(pid, "order"));
        }
        assert!(pending());
        let pids: Vec<_> = with_code(take(), "order").iter().map(pid_of).collect();
        assert_eq!(pids, [1, 2, 3]);
        assert!(with_code(take(), "order").is_empty());
    }

    #[test]
    fn pushes_from_many_threads_all_arrive() {
        let _g = serial();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..500 {
                        push(signal(t * 1000 + i, "threads"));
                    }
                })
            })
            .collect();
        let mut got = with_code(take(), "threads");
        for t in threads {
            t.join().unwrap();
        }
        got.extend(with_code(take(), "threads"));
        let mut pids: Vec<_> = got.iter().map(pid_of).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), 2000);
    }

    #[test]
    fn signalled_records_nothing_when_off_or_when_nothing_was_signalled() {
        let _g = serial();
        set_enabled(false);
        signalled(1, Target::Pid(1), libc::SIGTERM, || host("outcomes"), &Ok(()), None);
        set_enabled(true);
        signalled(2, Target::Pid(2), libc::SIGTERM, || host("outcomes"), &Err(SignalError::Gone), None);
        signalled(3, Target::Group(3), libc::SIGTERM, || host("outcomes"), &Err(SignalError::NoGroup), None);
        let denied = SignalError::Os(std::io::Error::from_raw_os_error(libc::EPERM));
        signalled(4, Target::Group(4), libc::SIGKILL, || host("outcomes"), &Err(denied), None);
        signalled(5, Target::Pid(5), libc::SIGKILL, || host("outcomes"), &Ok(()), None);
        set_enabled(false);
        let records = with_code(take(), "outcomes");
        assert_eq!(records.iter().map(pid_of).collect::<Vec<_>>(), [4, 5]);
        assert!(matches!(records[0], Record::Signalled { error: Some(libc::EPERM), target: Target::Group(4), .. }));
        assert!(matches!(records[1], Record::Signalled { error: None, .. }));
    }
}
