//! Starting jobs: a job's spawn arguments (the queue's template with the
//! job's argv, environment, directory and limits), its stdio (a shared
//! `/dev/null`, or a pipe for its input; pipes, files or a caller's fd for
//! its output), and the loop that fills free slots. And stopping them.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Weak};
use std::time::Instant;

use ferroproc_core::child::TimeLimits;
use ferroproc_core::jobs::{files, Queued};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::run::JobRun;
use super::{Config, Inner, Payload};
use crate::handle::{lock, Shared};
use crate::host::{Cell, ChildSink, PyChild, PyChunk};
use crate::spawn::{self, SpawnArgs};
use crate::timers::{finite, now, watch_deadline};

/// A job as the queue keeps it: `args` when the job has options of its own
/// (checked in Python), else the template with its argv, env and cwd.
#[allow(clippy::too_many_arguments)]
pub(super) fn payload(
    config: &Config,
    job: Py<PyAny>,
    argv: Option<Vec<Vec<u8>>>,
    envp: Option<Vec<Vec<u8>>>,
    cwd: Option<Vec<u8>>,
    stdin: Option<Py<PyBytes>>,
    timeout: Option<f64>,
    idle: Option<f64>,
    args: Option<SpawnArgs>,
) -> PyResult<Payload> {
    let mut args = match (args, argv) {
        (Some(args), _) => args,
        (None, Some(argv)) if !argv.is_empty() => {
            // (The template holds no environment: cheap to copy.)
            let mut args = config.template.clone();
            args.executable = argv[0].clone();
            if args.executable.contains(&b'/') {
                args.parent_path = None;
            }
            args.argv = argv;
            args.envp = envp.unwrap_or_else(|| config.environ.clone());
            args.cwd = cwd;
            args
        }
        _ => return Err(pyo3::exceptions::PyValueError::new_err("JobQueue.push: give argv or args")),
    };
    args.timeout = timeout.map(|t| finite(t, "timeout")).transpose()?;
    args.idle_timeout = idle.map(|t| finite(t, "idleTimeout")).transpose()?;
    args.kill_grace = config.kill_grace;
    Ok(Payload { job, args, stdin, last: None })
}

/// Start jobs while slots are free and jobs may start. A job that cannot
/// be started ends at once (failed, or retried) and frees its slot for the
/// next one, so this loops rather than recursing.
pub(super) fn start_more(py: Python<'_>, inner: &Arc<Inner>) {
    // (`spawn::start` refuses a forked engine: no need to ask here too.)
    let Some(shared) = inner.shared.upgrade() else { return };
    loop {
        let next = {
            let mut st = lock(&inner.state);
            if st.closed {
                return;
            }
            match st.sched.next(now(), files::mem_available) {
                Some(q) => Ok((q, st.devnull.as_ref().map(AsRawFd::as_raw_fd))),
                None => Err(st.sched.wake_at().is_some()),
            }
        };
        match next {
            Ok((job, devnull)) => {
                if !start_one(py, inner, &shared, job, devnull.unwrap_or(-1)) {
                    // Out of fds or processes: the jobs that run hold them;
                    // the next one to end tries again.
                    return;
                }
            }
            Err(wake) => {
                // A retry's delay or the memory gate: Python schedules the
                // `kick()` (it learns when from `take()`).
                if wake {
                    inner.notify_soon(py);
                }
                return;
            }
        }
    }
}

/// The child fds of a job: stdin from `/dev/null` or a pipe for its input;
/// stdout and stderr into pipes, a caller's fds, or the job's files.
fn stdio(
    config: &Config,
    has_input: bool,
    devnull: RawFd,
    files: Option<&files::ResultFiles>,
) -> Vec<(i32, String, i32)> {
    let out = |fd: i32, theirs: Option<RawFd>, file: Option<&OwnedFd>| match (file, theirs) {
        (Some(f), _) => (fd, "fd".to_string(), f.as_raw_fd()),
        (None, Some(t)) => (fd, "fd".to_string(), t),
        (None, None) => (fd, "r".to_string(), -1),
    };
    vec![
        if has_input { (0, "w".to_string(), -1) } else { (0, "fd".to_string(), devnull) },
        out(1, config.stdout, files.map(|f| &f.out)),
        out(2, config.stderr, files.map(|f| &f.err)),
    ]
}

/// Whether a failed start is for want of what the running jobs hold (fds,
/// processes, memory), so that the job is better tried again once one ends.
fn for_want(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM))
}

/// Put a job that could not start for want of resources back in the queue
/// when other jobs run (one of them ending frees them); else hand it back.
fn put_back_if_others_run(inner: &Inner, seq: u64, attempt: u32, payload: Payload) -> Option<Payload> {
    let mut st = lock(&inner.state);
    if st.sched.running() <= 1 {
        return Some(payload);
    }
    st.sched.put_back(Queued { seq, attempt, payload });
    None
}

/// Start one job; false when it was put back for want of fds or processes
/// (stop starting more until a running job ends).
fn start_one(py: Python<'_>, inner: &Arc<Inner>, shared: &Arc<Shared>, job: Queued<Payload>, devnull: RawFd) -> bool {
    let Queued { seq, attempt, mut payload } = job;
    let config = &inner.config;
    let started_at = now();
    let started = Instant::now();
    let files = match &config.results {
        Some(dir) => match files::open_results(dir, seq) {
            Ok(f) => Some(f),
            Err(e) => {
                let payload = if for_want(e.raw_os_error()) {
                    match put_back_if_others_run(inner, seq, attempt, payload) {
                        None => return false,
                        Some(payload) => payload,
                    }
                } else {
                    payload
                };
                let msg = format!("ferroproc.jobs: cannot open the job's output files: {e}\n");
                JobRun::not_started(py, inner, seq, attempt, payload, started_at, 126, msg);
                return true;
            }
        },
        None => None,
    };
    payload.args.fds = stdio(config, payload.stdin.is_some(), devnull, files.as_ref());
    let paths = files.as_ref().map(|f| (f.out_path.clone(), f.err_path.clone()));
    let run = Arc::new(JobRun::new(inner, shared, seq, attempt, started_at, started, paths));
    let ext = PyChild {
        proto: None,
        producer: None,
        direct_data: false,
        terminal_attrs: None,
        removed: false,
        sink: Some(run.clone() as Arc<dyn ChildSink>),
    };
    let cell = match spawn::start(py, shared, &payload.args, ext) {
        Ok(cell) => cell,
        Err(e) => {
            drop(files);
            drop(run);
            let (code, msg, errno) = start_failure(py, &e);
            let payload = if for_want(errno) {
                match put_back_if_others_run(inner, seq, attempt, payload) {
                    None => return false,
                    Some(payload) => payload,
                }
            } else {
                payload
            };
            JobRun::not_started(py, inner, seq, attempt, payload, started_at, code, msg);
            return true;
        }
    };
    // The child has its copies of the files.
    drop(files);
    if let Some(data) = &payload.stdin {
        let chunk = PyChunk::new(data.bind(py).clone());
        let flush = cell.with(move |c, _| {
            let _ = c.write(ferroproc_core::child::INPUT_FD, chunk, false);
            c.close_fd(ferroproc_core::child::INPUT_FD);
            c.wants_flush()
        });
        if flush {
            shared.lp.mark_dirty(&cell);
        }
    }
    run.hold(payload);
    let mut st = lock(&inner.state);
    st.running.insert(seq, (Arc::downgrade(&cell), Arc::downgrade(&run)));
    // A `now` halt or a cancel may have come while this job started.
    let stop = !st.sched.is_open() && (st.sched.halting_now() || !st.sched.is_halted());
    drop(st);
    if stop {
        stop_all(inner, vec![(Arc::downgrade(&cell), Arc::downgrade(&run))]);
    }
    true
}

/// A job that could not start, as a shell reports it: 127 when its
/// program was not found, 126 otherwise, and the reason (the message
/// `spawnProcess` would raise, without its prefix) for its stderr; and the
/// errno.
fn start_failure(py: Python<'_>, e: &PyErr) -> (i32, String, Option<i32>) {
    let value = e.value(py);
    let errno = value.getattr("errno").ok().and_then(|n| n.extract::<i32>().ok());
    let text =
        value.getattr("strerror").ok().and_then(|s| s.extract::<String>().ok()).unwrap_or_else(|| value.to_string());
    let text = text.strip_prefix("spawnProcess: ").unwrap_or(&text);
    let code = if errno == Some(libc::ENOENT) { 127 } else { 126 };
    (code, format!("ferroproc.jobs: {text}\n"), errno)
}

/// Stop running jobs: each is marked stopped by the runner, and its group
/// (or the child, without one) gets SIGTERM, then SIGKILL after the grace,
/// through the child's own time-limit machinery; once it is killed our ends
/// of its pipes close, so nothing its grandchildren hold keeps it from
/// ending. A job already past its exit (a grandchild holding its pipes)
/// just loses its pipes.
pub(super) fn stop_all(inner: &Inner, jobs: Vec<(Weak<Cell>, Weak<JobRun>)>) {
    if jobs.is_empty() {
        return;
    }
    let Some(shared) = Shared::get(&inner.shared) else { return };
    let grace = inner.config.kill_grace;
    for (cell, run) in jobs {
        let (Some(cell), Some(run)) = (cell.upgrade(), run.upgrade()) else { continue };
        let t = now();
        let (mine, next, events, flush) = cell.with(move |c, _| {
            if c.is_ended() {
                return (false, None, false, false);
            }
            if c.exit().is_some() {
                c.lose_connection();
                return (true, None, c.has_events(), c.wants_flush());
            }
            if c.timed_out().is_some() {
                // Its own time limit is stopping it already.
                return (false, None, false, false);
            }
            // A wall limit that ran out just now: SIGTERM (SIGKILL at once
            // without a grace), SIGKILL after the grace.
            c.set_time_limits(TimeLimits { wall: Some(f64::MIN_POSITIVE), idle: None, grace }, t - 1.0);
            let next = c.on_deadline(t);
            (true, next, c.has_events(), c.wants_flush())
        });
        if mine {
            run.mark_stopped();
        }
        if let Some(at) = next {
            watch_deadline(&shared, &cell, at);
        }
        if flush {
            shared.lp.mark_dirty(&cell);
        }
        if events {
            shared.lp.mark_ready(&cell);
        }
    }
}
