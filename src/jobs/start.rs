//! Starting jobs: a job's spawn arguments (the queue's template with the
//! job's argv, environment, directory and limits), its stdio (a shared
//! `/dev/null`, or a pipe for its input; pipes, files or a caller's fd for
//! its output), and the loop that fills free slots. And stopping them.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use ferroproc_core::child::Stop;
use ferroproc_core::jobs::{files, Queued};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::run::JobRun;
use super::spawner::Work;
use super::{Config, Inner, Payload, Stopping};
use crate::handle::{lock, Shared};
use crate::host::{Cell, ChildSink, PyChild, PyChunk};
use crate::spawn::{self, SpawnArgs, Spawning, Unblock};
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
    Ok(Payload { job, args: Arc::new(args), stdin, last: None })
}

/// Start jobs while slots are free and jobs may start: on the spawner
/// threads when there are some (handed over now, started there), else here.
/// A job that cannot be started ends at once (failed, or retried) and frees
/// its slot for the next one, so this loops rather than recursing.
pub(super) fn start_more(py: Python<'_>, inner: &Arc<Inner>) {
    // (`spawn::start_on` refuses a forked engine: no need to ask here too.)
    let Some(shared) = inner.shared.upgrade() else { return };
    loop {
        if inner.starved.load(Ordering::Acquire) {
            // Out of fds or processes: the running jobs hold them; the next
            // one to end tries again.
            return;
        }
        let next = {
            let mut st = lock(&inner.state);
            if st.closed {
                return;
            }
            match st.sched.next(now(), files::mem_available) {
                Some(q) => Ok((q, st.devnull.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1))),
                None => Err(st.sched.wake_at().is_some()),
            }
        };
        let (job, devnull) = match next {
            Ok(next) => next,
            Err(wake) => {
                // A retry's delay or the memory gate: Python schedules the
                // `kick()` (it learns when from `take()`).
                if wake {
                    inner.notify_soon();
                }
                return;
            }
        };
        let stdin = job.payload.stdin.as_ref().map(|data| PyChunk::new(data.bind(py).clone()));
        let job = match &inner.spawners {
            Some(spawners) => {
                shared.starting.fetch_add(1, Ordering::AcqRel);
                let work = Box::new(Work { inner: inner.clone(), shared: shared.clone(), job, devnull, stdin });
                match spawners.submit(work) {
                    Ok(()) => continue,
                    Err(work) => {
                        shared.starting.fetch_sub(1, Ordering::AcqRel);
                        (work.job, work.stdin)
                    }
                }
            }
            None => (job, stdin),
        };
        if let Err(failed) = begin(&py, inner, &shared, job.0, devnull, job.1) {
            fail(py, inner, *failed);
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

/// Why a job could not be started.
pub(super) enum StartError {
    /// Its output files could not be made.
    Files(std::io::Error),
    /// The spawn failed (the exception `spawnProcess` would raise).
    Spawn(PyErr),
}

/// A job that could not be started, to report (or put back) with the GIL.
pub(super) struct Failed {
    job: Queued<Payload>,
    started_at: f64,
    error: StartError,
}

/// Start one job on the loop's thread: [`launch`], then [`take_in`].
///
/// # Errors
/// The job and why it could not start, for [`fail`].
pub(super) fn begin(
    gil: &impl Unblock,
    inner: &Arc<Inner>,
    shared: &Arc<Shared>,
    job: Queued<Payload>,
    devnull: RawFd,
    stdin: Option<PyChunk>,
) -> Result<(), Box<Failed>> {
    take_in(inner, shared, launch(gil, inner, shared, job, devnull, stdin)?)
}

/// A job whose child has been started and is not in the loop yet.
pub(super) struct Launched {
    seq: u64,
    attempt: u32,
    started_at: f64,
    run: Arc<JobRun>,
    spawning: Spawning,
    stdin: Option<PyChunk>,
}

/// The half of a job's start that may run on any thread (`gil` says whether
/// this one holds the GIL): its files, its run (which holds the job from
/// now on), its spawn (the thread waits for the child's exec).
///
/// # Errors
/// The job and why it could not start, for [`fail`].
pub(super) fn launch(
    gil: &impl Unblock,
    inner: &Arc<Inner>,
    shared: &Arc<Shared>,
    job: Queued<Payload>,
    devnull: RawFd,
    stdin: Option<PyChunk>,
) -> Result<Launched, Box<Failed>> {
    let Queued { seq, attempt, mut payload } = job;
    let config = &inner.config;
    let started_at = now();
    let started = Instant::now();
    let files = match &config.results {
        Some(dir) => match files::open_results(dir, seq) {
            Ok(f) => Some(f),
            Err(e) => {
                let job = Queued { seq, attempt, payload };
                return Err(Box::new(Failed { job, started_at, error: StartError::Files(e) }));
            }
        },
        None => None,
    };
    Arc::make_mut(&mut payload.args).fds = stdio(config, payload.stdin.is_some(), devnull, files.as_ref());
    let args = payload.args.clone();
    let paths = files.as_ref().map(|f| (f.out_path.clone(), f.err_path.clone()));
    let run = Arc::new(JobRun::new(inner, shared, seq, attempt, started_at, started, paths));
    run.hold(payload);
    let ext = PyChild {
        proto: None,
        producer: None,
        direct_data: false,
        terminal_attrs: None,
        removed: false,
        sink: Some(run.clone() as Arc<dyn ChildSink>),
    };
    let spawned = spawn::spawn_child(gil, shared, &args, ext);
    // The child has exec'd with its copies of the files (or failed).
    drop((files, args));
    match spawned {
        Ok(spawning) => Ok(Launched { seq, attempt, started_at, run, spawning, stdin }),
        Err(e) => {
            let payload = run.release().expect("no child: nothing ended it");
            let job = Queued { seq, attempt, payload };
            Err(Box::new(Failed { job, started_at, error: StartError::Spawn(e) }))
        }
    }
}

/// The half of a job's start on the loop's thread: its child into the loop
/// (with its group and limits, before the loop can see it end), its input
/// written, its place among the running jobs.
///
/// # Errors
/// The job and why its child could not be taken in (it has been killed
/// and reaped), for [`fail`].
pub(super) fn take_in(inner: &Arc<Inner>, shared: &Arc<Shared>, launched: Launched) -> Result<(), Box<Failed>> {
    let Launched { seq, attempt, started_at, run, spawning, stdin } = launched;
    let cell = match spawning.adopt(shared) {
        Ok(cell) => cell,
        Err(e) => {
            let payload = run.release().expect("not in the loop: nothing ended it");
            let job = Queued { seq, attempt, payload };
            return Err(Box::new(Failed { job, started_at, error: StartError::Spawn(e) }));
        }
    };
    if let Some(chunk) = stdin {
        let flush = cell.with(move |c, _| {
            let _ = c.write(ferroproc_core::child::INPUT_FD, chunk, false);
            c.close_fd(ferroproc_core::child::INPUT_FD);
            c.wants_flush()
        });
        if flush {
            shared.lp.mark_dirty(&cell);
        }
    }
    let mut st = lock(&inner.state);
    st.running.insert(seq, (Arc::downgrade(&cell), Arc::downgrade(&run)));
    // A `now` halt or a cancel may have come while this job started.
    let stopping = st.stopping.clone();
    drop(st);
    if let Some(stopping) = stopping {
        stop_all(inner, vec![(Arc::downgrade(&cell), Arc::downgrade(&run))], &stopping);
    }
    Ok(())
}

/// Whether a failed start is for want of what the running jobs hold (fds,
/// processes, memory), so that the job is better tried again once one ends.
fn for_want(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM))
}

/// A job that could not start: put back when it was for want of what other
/// running jobs hold (no job starts until one of them ends), else ended at
/// once, as a shell would report it (127: not found, 126: anything else),
/// the reason as its stderr.
pub(super) fn fail(py: Python<'_>, inner: &Arc<Inner>, failed: Failed) {
    let Failed { job, started_at, error } = failed;
    let (code, msg, errno) = match &error {
        StartError::Files(e) => {
            (126, format!("ferroproc.jobs: cannot open the job's output files: {e}\n"), e.raw_os_error())
        }
        StartError::Spawn(e) => start_failure(py, e),
    };
    let job = if for_want(errno) {
        let mut st = lock(&inner.state);
        if st.sched.running() > 1 {
            st.sched.put_back(job);
            inner.starved.store(true, Ordering::Release);
            return;
        }
        job
    } else {
        job
    };
    let Queued { seq, attempt, payload } = job;
    JobRun::not_started(py, inner, seq, attempt, payload, started_at, code, msg);
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

/// Stop running jobs (`Child::stop`): each job's group (or its child, without
/// one) gets SIGTERM, then SIGKILL after the grace (at once without one), and
/// once it is killed our ends of its pipes close, so nothing its grandchildren
/// hold keeps it from ending. A job already past its exit (a grandchild holding
/// its pipes) just loses its pipes. Each is reported as stopped by the runner,
/// unless a time limit was stopping it already (it timed out; a shorter grace
/// still brings its SIGKILL forward).
pub(super) fn stop_all(inner: &Inner, jobs: Vec<(Weak<Cell>, Weak<JobRun>)>, stopping: &Stopping) {
    if jobs.is_empty() {
        return;
    }
    let Some(shared) = Shared::get(&inner.shared) else { return };
    for (cell, run) in jobs {
        let (Some(cell), Some(run)) = (cell.upgrade(), run.upgrade()) else { continue };
        let t = now();
        let (mine, next, events, flush) = cell.with(|c, _| {
            let (mine, next) = match c.stop(stopping.grace, t, &stopping.why) {
                Stop::Began(next) => (true, next),
                Stop::PipesClosed => (true, None),
                Stop::Hastened(next) => (false, next),
                Stop::Unchanged | Stop::Ended => (false, None),
            };
            (mine, next, c.has_events(), c.wants_flush())
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
