//! Flow control: producers and their water marks, paused reading.

use mio::Token;

use super::tests::{rig, EXIT0};
use super::*;

#[test]
fn a_streaming_producer_is_paused_over_the_high_water_mark_and_resumed_when_drained() {
    let mut r = rig(&[(0, Role::Write)]);
    let ProducerRegistered::Yes { generation } = r.child.register_producer(true) else { panic!() };
    assert_eq!(r.events(), [], "a streaming producer is not asked for data");
    let q = r.child.write(INPUT_FD, vec![b'x'; HIGH_WATER], false).unwrap();
    assert_eq!(q.pause_producer, None, "at the mark, not over it");
    let q = r.child.write(INPUT_FD, b"y".to_vec(), false).unwrap();
    assert_eq!(q.pause_producer, Some(generation));
    assert_eq!(r.child.write(INPUT_FD, b"z".to_vec(), false).unwrap().pause_producer, None, "paused once");
    r.child.flush(r.poll.registry());
    assert_eq!(r.events(), [Event::ResumeProducer { generation }]);
    assert_eq!(r.input(0).len(), HIGH_WATER + 2);
}

#[test]
fn a_pull_producer_is_asked_when_registered_idle_and_after_each_drain() {
    let mut r = rig(&[(0, Role::Write)]);
    let ProducerRegistered::Yes { generation } = r.child.register_producer(false) else { panic!() };
    assert_eq!(r.events(), [Event::ResumeProducer { generation }]);
    assert_eq!(r.child.register_producer(true), ProducerRegistered::Busy);
    r.child.write(INPUT_FD, b"chunk".to_vec(), false).unwrap();
    r.child.flush(r.poll.registry());
    assert_eq!(r.events(), [Event::ResumeProducer { generation }]);
    assert!(!r.child.unregister_producer(), "a pull producer needs no resume");
    r.child.write(INPUT_FD, b"more".to_vec(), false).unwrap();
    r.child.flush(r.poll.registry());
    assert_eq!(r.events(), []);
}

#[test]
fn unregistering_a_paused_streaming_producer_asks_for_its_resume() {
    let mut r = rig(&[(0, Role::Write)]);
    r.child.register_producer(true);
    r.child.write(INPUT_FD, vec![0; HIGH_WATER + 1], false).unwrap();
    assert!(r.child.unregister_producer());
    assert!(matches!(r.child.register_producer(true), ProducerRegistered::Yes { generation: 2 }));
}

#[test]
fn the_producer_is_stopped_before_its_input_is_lost() {
    let mut r = rig(&[(0, Role::Write)]);
    let ProducerRegistered::Yes { generation } = r.child.register_producer(true) else { panic!() };
    r.child.write(INPUT_FD, b"lost".to_vec(), false).unwrap();
    let token = r.token(0);
    drop(r.theirs.remove(&0));
    r.child.on_write_closed(0, token);
    assert_eq!(r.events(), [Event::StopProducer { generation }, Event::Lost { fd: 0 }]);
    assert!(!r.child.wants_flush(), "the queue went with the pipe");
    assert_eq!(r.child.register_producer(true), ProducerRegistered::NoInput);
}

#[test]
fn paused_reading_hands_out_no_fd_until_resumed() {
    let mut r = rig(&[(1, Role::Read)]);
    let token = r.token(1);
    r.child.set_reading(false, r.poll.registry()).unwrap();
    assert!(r.child.read_source(1, token).is_none());
    r.child.set_reading(false, r.poll.registry()).unwrap();
    r.child.set_reading(true, r.poll.registry()).unwrap();
    assert!(r.child.read_source(1, token).is_some());
    assert!(r.child.read_source(1, Token(999)).is_none(), "a stale token finds nothing");
}

#[test]
fn custom_marks_pause_over_high_and_resume_at_or_below_low() {
    let mut r = rig(&[(0, Role::Write)]);
    r.child.set_write_limits(WriteLimits { high: 10, low: 4 });
    let ProducerRegistered::Yes { generation } = r.child.register_producer(true) else { panic!() };
    assert_eq!(r.child.write(INPUT_FD, vec![1; 10], false).unwrap().pause_producer, None);
    assert_eq!(r.child.write(INPUT_FD, vec![2; 1], false).unwrap().pause_producer, Some(generation));
    assert_eq!(r.child.queued(INPUT_FD), 11);
    r.child.flush(r.poll.registry());
    assert_eq!(r.child.queued(INPUT_FD), 0);
    assert_eq!(r.events(), [Event::ResumeProducer { generation }]);
}

#[test]
fn a_partial_flush_resumes_once_the_queue_is_at_or_below_low() {
    // Nobody reads the pipe: 3 MiB cannot all go, whatever size it grows to.
    let mut r = rig(&[(0, Role::Write)]);
    let ProducerRegistered::Yes { generation } = r.child.register_producer(true) else { panic!() };
    assert!(r.child.write(INPUT_FD, vec![0; 3 << 20], false).unwrap().pause_producer.is_some());
    assert!(r.child.flush(r.poll.registry()), "the pipe is full");
    let left = r.child.queued(INPUT_FD);
    assert!(left > 0);
    assert_eq!(r.events(), [], "Twisted's rule (low 0): no resume until drained");
    r.child.set_write_limits(WriteLimits { high: 4 << 20, low: left });
    assert!(r.child.flush(r.poll.registry()));
    assert_eq!(r.events(), [Event::ResumeProducer { generation }], "at the low mark");
}

#[test]
fn a_low_mark_above_the_high_one_is_the_high_one() {
    let mut r = rig(&[(0, Role::Write)]);
    r.child.set_write_limits(WriteLimits { high: 5, low: 50 });
    assert_eq!(r.child.write_limits(), WriteLimits { high: 5, low: 5 });
}

#[test]
fn one_pipe_can_be_paused_alone() {
    let mut r = rig(&[(1, Role::Read), (2, Role::Read)]);
    let (t1, t2) = (r.token(1), r.token(2));
    r.child.set_fd_reading(1, false, r.poll.registry()).unwrap();
    assert!(r.child.read_source(1, t1).is_none());
    assert!(r.child.read_source(2, t2).is_some(), "the other pipe is still read");
    assert!(!r.child.is_reading(1) && r.child.is_reading(2));
    // Pausing everything and resuming it leaves the one pipe paused.
    r.child.set_reading(false, r.poll.registry()).unwrap();
    r.child.set_reading(true, r.poll.registry()).unwrap();
    assert!(r.child.read_source(1, t1).is_none());
    r.child.set_fd_reading(1, true, r.poll.registry()).unwrap();
    assert!(r.child.read_source(1, t1).is_some());
    r.child.set_fd_reading(7, false, r.poll.registry()).unwrap();
}

#[test]
fn output_of_a_paused_pipe_waits_in_the_pipe() {
    let mut r = rig(&[(1, Role::Read)]);
    r.child.set_fd_reading(1, false, r.poll.registry()).unwrap();
    std::io::Write::write_all(&mut std::fs::File::from(r.theirs[&1].try_clone().unwrap()), b"kept").unwrap();
    assert!(r.child.read_source(1, r.token(1)).is_none());
    r.child.set_fd_reading(1, true, r.poll.registry()).unwrap();
    r.output(1, b"");
    assert_eq!(r.events(), [super::tests::data(1, "kept")]);
}

#[test]
fn abort_closes_the_input_now_and_drops_its_queue() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    r.child.write(INPUT_FD, b"never sent".to_vec(), false).unwrap();
    assert!(r.child.abort_fd(INPUT_FD));
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.input(0), b"", "the child sees EOF, not the queued data");
    assert!(!r.child.abort_fd(1), "only an input pipe is aborted");
    assert!(!r.child.input_broken(), "we closed it: not a broken pipe");
    r.child.on_exit(EXIT0);
}

/// The events `poll` has for `token` now.
fn events_for(poll: &mut mio::Poll, token: Token) -> usize {
    let mut events = mio::Events::with_capacity(8);
    poll.poll(&mut events, Some(std::time::Duration::ZERO)).unwrap();
    events.iter().filter(|e| e.token() == token).count()
}

#[test]
fn an_idle_input_pipe_wakes_nobody_and_a_stuck_one_is_watched_until_it_drains() {
    let mut r = rig(&[(0, Role::Write)]);
    let token = r.token(0);
    assert_eq!(events_for(&mut r.poll, token), 0, "no wake-up for a pipe with nothing to write");
    r.child.write(INPUT_FD, vec![7; 3 << 20], false).unwrap();
    assert!(r.child.flush(r.poll.registry()), "more than the pipe holds");
    assert!(r.child.pipes[&0].stalled);
    // The child reads: the pipe has room again, and says so.
    let their = r.theirs[&0].try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(their), &mut sink).unwrap();
        sink.len()
    });
    let mut rounds = 0;
    while r.child.queued(INPUT_FD) > 0 {
        let mut events = mio::Events::with_capacity(8);
        r.poll.poll(&mut events, Some(std::time::Duration::from_secs(5))).unwrap();
        assert!(events.iter().any(|e| e.token() == token && e.is_writable()), "a stuck pipe is watched");
        r.child.flush_fd(INPUT_FD, r.poll.registry());
        rounds += 1;
    }
    assert!(rounds > 0 && !r.child.pipes[&0].stalled, "drained: no longer watched for writing");
    assert!(r.child.abort_fd(INPUT_FD));
    r.theirs.remove(&0);
    assert_eq!(reader.join().unwrap(), 3 << 20);
    assert_eq!(events_for(&mut r.poll, token), 0);
}
