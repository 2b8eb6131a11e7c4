//! The scheduling rules, without children: slots, order, retries and their
//! delays, halts, cancel, the memory gate, capture limits.

use super::*;

fn limits(concurrency: usize) -> Limits {
    Limits { concurrency, ahead: concurrency * 2, retries: 0, retry_delay: 0.0, memfree: None }
}

fn filled(l: Limits, n: u64, halt: Option<HaltPolicy>) -> Scheduler<u64> {
    let mut s = Scheduler::new(l, halt);
    for seq in 1..=n {
        s.push(seq, seq * 10).unwrap();
    }
    s
}

const OK: Outcome = Outcome { ok: true, stopped: false };
const FAILED: Outcome = Outcome { ok: false, stopped: false };
const STOPPED: Outcome = Outcome { ok: false, stopped: true };

fn no_gate() -> Option<u64> {
    panic!("the memory gate is asked only when set")
}

#[test]
fn slots_bound_the_running_jobs_and_keep_input_order() {
    let mut s = filled(limits(2), 5, None);
    assert_eq!(s.next(0.0, no_gate).unwrap().seq, 1);
    assert_eq!(s.next(0.0, no_gate).unwrap().seq, 2);
    assert!(s.next(0.0, no_gate).is_none(), "both slots are taken");
    assert_eq!(s.end(1, OK, 0.0), Verdict::Final { halt: false });
    let third = s.next(0.0, no_gate).unwrap();
    assert_eq!((third.seq, third.attempt, third.payload), (3, 1, 30));
    assert_eq!(s.running(), 2);
    assert_eq!(s.started(), 3);
    assert_eq!(s.wanted(), 4 - 2);
}

#[test]
fn a_failed_job_is_retried_first_and_counted_once() {
    let l = Limits { retries: 2, ..limits(1) };
    let mut s = filled(l, 2, None);
    let job = s.next(0.0, no_gate).unwrap();
    let Verdict::Retry { at } = s.end(job.attempt, FAILED, 5.0) else { panic!("not retried") };
    assert_eq!(at, 5.0);
    s.retry(job, at).unwrap();
    let again = s.next(5.0, no_gate).unwrap();
    assert_eq!((again.seq, again.attempt), (1, 2), "the retry goes before job 2");
    assert!(matches!(s.end(again.attempt, FAILED, 6.0), Verdict::Retry { .. }));
    s.retry(again, 6.0).unwrap();
    let last = s.next(6.0, no_gate).unwrap();
    assert_eq!(last.attempt, 3);
    assert_eq!(s.end(last.attempt, FAILED, 7.0), Verdict::Final { halt: false });
    assert_eq!(s.counts(), Counts { succeeded: 0, failed: 1 }, "three attempts, one failed job");
    assert_eq!(s.started(), 3);
}

#[test]
fn retry_delays_park_the_job_and_say_when_to_wake() {
    let l = Limits { retries: 1, retry_delay: 2.0, ..limits(1) };
    let mut s = filled(l, 1, None);
    let job = s.next(0.0, no_gate).unwrap();
    let Verdict::Retry { at } = s.end(job.attempt, FAILED, 10.0) else { panic!() };
    s.retry(job, at).unwrap();
    assert_eq!(s.wake_at(), Some(12.0));
    assert!(s.next(11.0, no_gate).is_none(), "not yet");
    assert!(!s.is_idle());
    assert_eq!(s.next(12.0, no_gate).unwrap().attempt, 2);
    assert_eq!(s.wake_at(), None);
}

#[test]
fn stopped_jobs_are_never_retried() {
    let l = Limits { retries: 5, ..limits(1) };
    let mut s = filled(l, 1, None);
    let job = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(job.attempt, STOPPED, 0.0), Verdict::Final { halt: false });
}

#[test]
fn halt_soon_stops_starting_and_hands_back_the_queue() {
    let h = HaltPolicy { when: HaltWhen::Soon, on: HaltOn::Fail, threshold: Threshold::Count(2) };
    let mut s = filled(limits(2), 6, Some(h));
    let (a, b) = (s.next(0.0, no_gate).unwrap(), s.next(0.0, no_gate).unwrap());
    assert_eq!(s.end(a.attempt, FAILED, 0.0), Verdict::Final { halt: false });
    let c = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(b.attempt, FAILED, 0.0), Verdict::Final { halt: true });
    assert!(s.is_halted() && !s.halting_now());
    assert!(s.next(0.0, no_gate).is_none());
    assert_eq!(s.wanted(), 0);
    assert_eq!(s.drain().iter().map(|j| j.seq).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(s.push(7, 70).is_err());
    // The running job ends later: counted, no second trigger.
    assert_eq!(s.end(c.attempt, FAILED, 0.0), Verdict::Final { halt: false });
    assert!(s.is_idle());
}

#[test]
fn halt_on_success_and_on_done() {
    let now = HaltPolicy { when: HaltWhen::Now, on: HaltOn::Success, threshold: Threshold::Count(1) };
    let mut s = filled(limits(1), 3, Some(now));
    let j = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(j.attempt, FAILED, 0.0), Verdict::Final { halt: false });
    let j = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(j.attempt, OK, 0.0), Verdict::Final { halt: true });
    assert!(s.halting_now());
    let done = HaltPolicy { when: HaltWhen::Soon, on: HaltOn::Done, threshold: Threshold::Count(2) };
    let mut s = filled(limits(1), 3, Some(done));
    let j = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(j.attempt, OK, 0.0), Verdict::Final { halt: false });
    let j = s.next(0.0, no_gate).unwrap();
    assert_eq!(s.end(j.attempt, FAILED, 0.0), Verdict::Final { halt: true });
}

#[test]
fn a_percentage_needs_the_total_and_is_not_rounded() {
    let h = HaltPolicy { when: HaltWhen::Soon, on: HaltOn::Fail, threshold: Threshold::Percent(25.0) };
    assert!(!h.reached(&Counts { succeeded: 0, failed: 5 }, None), "total unknown");
    assert!(!h.reached(&Counts { succeeded: 0, failed: 2 }, Some(10)));
    assert!(h.reached(&Counts { succeeded: 0, failed: 3 }, Some(10)), "3 >= 2.5");
    let three = HaltPolicy { threshold: Threshold::Percent(3.0), ..h };
    assert!(three.reached(&Counts { succeeded: 0, failed: 1 }, Some(10)), "GNU parallel: 1 >= 0.3");
    assert!(!three.reached(&Counts { succeeded: 5, failed: 0 }, Some(10)));
}

#[test]
fn cancel_hands_back_everything_queued() {
    let l = Limits { retries: 1, retry_delay: 9.0, ..limits(1) };
    let mut s = filled(l, 3, None);
    let j = s.next(0.0, no_gate).unwrap();
    let Verdict::Retry { at } = s.end(j.attempt, FAILED, 0.0) else { panic!() };
    s.retry(j, at).unwrap();
    let mut back: Vec<u64> = s.cancel().into_iter().map(|j| j.seq).collect();
    back.sort_unstable();
    assert_eq!(back, vec![1, 2, 3]);
    assert!(s.is_idle() && !s.is_open());
    assert_eq!(s.wake_at(), None);
    assert!(s.cancel().is_empty());
}

#[test]
fn the_memory_gate_holds_jobs_back_and_asks_again_later() {
    let l = Limits { memfree: Some(1000), ..limits(2) };
    let mut s = filled(l, 2, None);
    assert!(s.next(1.0, || Some(999)).is_none());
    assert_eq!(s.wake_at(), Some(1.0 + MEM_RECHECK));
    assert_eq!(s.next(1.5, || Some(1000)).unwrap().seq, 1);
    assert_eq!(s.wake_at(), None);
    assert_eq!(s.next(1.5, || None).unwrap().seq, 2, "unreadable: the gate lets jobs through");
}

#[test]
fn capture_keeps_at_most_the_limit_and_counts_everything() {
    let mut c: Capture<Vec<u8>> = Capture::new(Some(5), true);
    assert_eq!(c.offer(3), Keep::All);
    c.push(vec![1, 2, 3]);
    assert_eq!(c.offer(4), Keep::Prefix(2));
    c.push(vec![4, 5]);
    assert_eq!(c.offer(1), Keep::Nothing);
    assert_eq!((c.seen(), c.kept(), c.truncated()), (8, 5, true));
    assert_eq!(c.take_chunks().concat(), vec![1, 2, 3, 4, 5]);
    let mut counted: Capture<Vec<u8>> = Capture::new(None, false);
    assert_eq!(counted.offer(10), Keep::Nothing);
    assert_eq!((counted.seen(), counted.truncated()), (10, false));
    let mut zero: Capture<Vec<u8>> = Capture::new(Some(0), true);
    assert_eq!(zero.offer(1), Keep::Nothing);
    assert!(zero.truncated());
}

#[test]
fn a_job_put_back_is_next_and_was_not_started() {
    let mut s = filled(limits(2), 3, None);
    let first = s.next(0.0, no_gate).unwrap();
    let second = s.next(0.0, no_gate).unwrap();
    s.put_back(second);
    assert_eq!((s.running(), s.started()), (1, 1));
    let again = s.next(0.0, no_gate).unwrap();
    assert_eq!((again.seq, again.attempt), (2, 1));
    assert_eq!(s.end(first.attempt, OK, 0.0), Verdict::Final { halt: false });
}
