//! The queue's spawner threads: with more than one slot, jobs are started
//! here rather than on the loop's thread.
//!
//! A spawn blocks its thread until the child has exec'd (`CLONE_VFORK`), and
//! on a busy machine the child may wait a while for a CPU before it gets
//! there: a loop that spawned every job itself would sit idle through each
//! of those waits, its free slots and finished jobs waiting too. Here the
//! loop's thread hands a job over in the same turn (no Python in between),
//! and a few threads, without the GIL, overlap their waits (measured with
//! the C runner of S10 under load: 2.3× the jobs per second of one thread).
//!
//! A thread does only what blocks: the job's files and its spawn. The loop's
//! thread then takes the child in (registers it, sets its group and limits),
//! at the end of its next turn, with no Python in between: the loop's own
//! state is only ever changed by the loop's thread.
//!
//! A job's child gets its `parentDeathSignal` when the thread that started
//! it exits: the threads live until the queue is closed, which it is only
//! once every job has been reaped (or when it is dropped, which no running
//! job allows: each holds the queue).

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ferroproc_core::jobs::Queued;

use pyo3::Python;

use super::start::{fail, launch, start_more, take_in};
use super::{Inner, Payload};
use crate::handle::{lock, AfterTurn, Shared};
use crate::host::PyChunk;
use crate::spawn::WithoutGil;

/// A job to start: everything the thread needs, prepared on the loop's thread.
pub(super) struct Work {
    pub(super) inner: Arc<Inner>,
    pub(super) shared: Arc<Shared>,
    pub(super) job: Queued<Payload>,
    pub(super) devnull: RawFd,
    /// Its input, as the buffer the child's stdin pipe is given.
    pub(super) stdin: Option<PyChunk>,
}

/// The threads and the way to them.
pub(super) struct Spawners {
    tx: Mutex<Option<Sender<Box<Work>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Spawners {
    /// `count` threads, waiting for work.
    ///
    /// # Errors
    /// A thread could not be made (those made are stopped again).
    pub(super) fn new(count: usize) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Box<Work>>();
        let rx = Arc::new(Mutex::new(rx));
        let spawners = Spawners { tx: Mutex::new(Some(tx)), threads: Mutex::new(Vec::new()) };
        for i in 0..count {
            let rx = rx.clone();
            let thread = std::thread::Builder::new().name(format!("ferroproc-jobs-{i}")).spawn(move || serve(&rx));
            match thread {
                Ok(t) => lock(&spawners.threads).push(t),
                Err(e) => {
                    spawners.close();
                    return Err(e);
                }
            }
        }
        Ok(spawners)
    }

    /// Hand `work` to a thread; it is given back once the threads have gone.
    pub(super) fn submit(&self, work: Box<Work>) -> Result<(), Box<Work>> {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(work).map_err(|e| e.0),
            None => Err(work),
        }
    }

    /// Stop the threads (they finish what they were given) and wait for them.
    pub(super) fn close(&self) {
        drop(lock(&self.tx).take());
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Spawners {
    fn drop(&mut self) {
        // Dropped with the queue, so no job runs: no child loses its thread.
        drop(lock(&self.tx).take());
    }
}

fn serve(rx: &Mutex<Receiver<Box<Work>>>) {
    loop {
        let work = lock(rx).recv();
        let Ok(work) = work else { return };
        let Work { inner, shared, job, devnull, stdin } = *work;
        match launch(&WithoutGil, &inner, &shared, job, devnull, stdin) {
            Ok(launched) => {
                // The loop's thread takes the child in (it alone registers
                // children), at the end of its next turn.
                let (i, sh) = (inner.clone(), shared.clone());
                let take = move |py: Python<'_>| {
                    if let Err(failed) = take_in(&i, &sh, launched) {
                        fail(py, &i, *failed);
                        start_more(py, &i);
                    }
                    sh.starting.fetch_sub(1, Ordering::AcqRel);
                };
                lock(&shared.after_turn).push(AfterTurn::Run(Box::new(take)));
                shared.lp.wake();
            }
            Err(failed) => {
                // Reported from the loop's thread, with the GIL (see `take`).
                lock(&inner.state).failed.push(*failed);
                inner.notify_from_thread();
                shared.starting.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}
