//! The lifecycle rules, on real pipes (and a real terminal), with the
//! child process itself stood in for: its exit is reported with `on_exit`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::{Poll, Token};

use super::*;
use crate::io::{read_available, VecAlloc};
use crate::reap::Exit;
use crate::sys::{pipe_cloexec, set_nonblocking};

pub(super) type Ev = Event<Vec<u8>>;

/// A `Child` with pipes on the given child fds, and the child's ends of them.
pub(super) struct Rig {
    pub(super) child: Child<Vec<u8>>,
    pub(super) poll: Poll,
    pub(super) theirs: BTreeMap<i32, OwnedFd>,
}

/// A pid no test signals: the state machine only stores it.
const FAKE_PID: libc::pid_t = i32::MAX;

pub(super) fn rig(fds: &[(i32, Role)]) -> Rig {
    let poll = Poll::new().unwrap();
    let mut child = Child::new(FAKE_PID, None, false);
    let mut theirs = BTreeMap::new();
    for (i, &(fd, role)) in fds.iter().enumerate() {
        let (r, w) = pipe_cloexec().unwrap();
        let (mine, their) = if role == Role::Read { (r, w) } else { (w, r) };
        set_nonblocking(mine.as_raw_fd(), true).unwrap();
        let token = Token(10 + i);
        poll.registry().register(&mut mio::unix::SourceFd(&mine.as_raw_fd()), token, role.interest()).unwrap();
        child.add_pipe(fd, mine, token, role);
        theirs.insert(fd, their);
    }
    Rig { child, poll, theirs }
}

impl Rig {
    pub(super) fn token(&self, fd: i32) -> Token {
        self.child.pipes.get(&fd).unwrap().token
    }

    /// The child writes `data` on `fd`; the parent reads it.
    pub(super) fn output(&mut self, fd: i32, data: &[u8]) {
        std::fs::File::from(self.theirs[&fd].try_clone().unwrap()).write_all(data).unwrap();
        self.read(fd);
    }

    /// The child closes its end of `fd`; the parent reads to EOF.
    pub(super) fn child_closes(&mut self, fd: i32) {
        self.theirs.remove(&fd);
        self.read(fd);
    }

    pub(super) fn read(&mut self, fd: i32) {
        let token = self.token(fd);
        let src = self.child.read_source(fd, token).expect("readable");
        let d = read_available(&src, true, &mut VecAlloc);
        self.child.on_read(fd, token, d.read, self.poll.registry());
    }

    /// What the child reads from `fd` (its end must be closed by us for EOF).
    pub(super) fn input(&mut self, fd: i32) -> Vec<u8> {
        let mut got = Vec::new();
        let their = self.theirs.remove(&fd).unwrap();
        set_nonblocking(their.as_raw_fd(), true).unwrap();
        let _ = std::fs::File::from(their).read_to_end(&mut got);
        got
    }

    pub(super) fn events(&mut self) -> Vec<Ev> {
        std::iter::from_fn(|| self.child.next_event()).collect()
    }
}

pub(super) fn data(fd: i32, s: &str) -> Ev {
    Event::Data { fd, data: s.as_bytes().to_vec() }
}

pub(super) const EXIT0: Exit = Exit { status: Some(0), usage: None };

#[test]
fn output_then_loss_then_exit_then_end() {
    let mut r = rig(&[(1, Role::Read), (2, Role::Read)]);
    r.output(1, b"out");
    r.output(2, b"err");
    r.child_closes(1);
    r.child_closes(2);
    assert_eq!(r.events(), [data(1, "out"), data(2, "err"), Event::Lost { fd: 1 }, Event::Lost { fd: 2 }]);
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited, Event::Ended]);
    assert_eq!(r.child.pid(), None, "a reaped pid is forgotten at once");
    assert!(r.child.is_ended());
}

#[test]
fn exit_before_eof_ends_only_after_every_pipe() {
    let mut r = rig(&[(1, Role::Read), (2, Role::Read)]);
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited]);
    r.output(1, b"late");
    r.child_closes(1);
    assert_eq!(r.events(), [data(1, "late"), Event::Lost { fd: 1 }]);
    r.child_closes(2);
    assert_eq!(r.events(), [Event::Lost { fd: 2 }, Event::Ended]);
}

#[test]
fn ended_is_emitted_exactly_once() {
    let mut r = rig(&[(1, Role::Read)]);
    r.child_closes(1);
    r.child.on_exit(EXIT0);
    r.child.on_exit(Exit::status(9));
    r.child.close_fd(1);
    r.child.lose_connection();
    r.child.flush(r.poll.registry());
    let evs = r.events();
    assert_eq!(evs.iter().filter(|e| **e == Event::Ended).count(), 1, "{evs:?}");
    assert_eq!(r.child.exit(), Some(EXIT0), "the first exit stands");
}

#[test]
fn closing_an_output_pipe_withdraws_its_undelivered_output() {
    let mut r = rig(&[(1, Role::Read), (2, Role::Read)]);
    r.output(1, b"a");
    r.output(2, b"b");
    r.output(1, b"c");
    assert!(!r.child.close_fd(1), "no flush needed for an output pipe");
    assert_eq!(r.events(), [data(2, "b"), Event::Lost { fd: 1 }]);
    assert_eq!(r.child.take_trash().len(), 2, "the withdrawn chunks are handed back");
}

#[test]
fn output_read_for_a_pipe_closed_meanwhile_is_dropped() {
    let mut r = rig(&[(1, Role::Read)]);
    let token = r.token(1);
    let src = r.child.read_source(1, token).unwrap();
    r.child.close_fd(1);
    std::fs::File::from(r.theirs[&1].try_clone().unwrap()).write_all(b"x").unwrap();
    let d = read_available(&src, false, &mut VecAlloc);
    r.child.on_read(1, token, d.read, r.poll.registry());
    assert_eq!(r.events(), [Event::Lost { fd: 1 }]);
    assert_eq!(r.child.take_trash().len(), 1);
}

#[test]
fn closing_input_waits_until_the_queue_is_written() {
    let mut r = rig(&[(0, Role::Write)]);
    let q = r.child.write(INPUT_FD, b"hello ".to_vec(), false).unwrap();
    assert!(q.needs_flush);
    assert!(r.child.close_fd(0), "closing input needs a flush");
    // Twisted accepts writes until the close has happened.
    assert!(!r.child.write(INPUT_FD, b"world".to_vec(), false).unwrap().needs_flush);
    assert_eq!(r.events(), []);
    assert!(!r.child.flush(r.poll.registry()));
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.input(0), b"hello world");
    // After the close, writes are dropped quietly (or refused when strict).
    assert!(r.child.write(INPUT_FD, b"x".to_vec(), false).is_ok());
    assert_eq!(r.child.write(INPUT_FD, b"x".to_vec(), true), Err(NotOpen));
}

#[test]
fn writes_of_one_turn_leave_in_one_flush() {
    let mut r = rig(&[(0, Role::Write)]);
    let first = r.child.write(INPUT_FD, b"a".to_vec(), false).unwrap();
    let second = r.child.write(INPUT_FD, b"b".to_vec(), false).unwrap();
    assert!(first.needs_flush && !second.needs_flush);
    // Nothing reaches the child before the flush.
    let their = r.theirs[&0].try_clone().unwrap();
    set_nonblocking(their.as_raw_fd(), true).unwrap();
    let mut buf = [0u8; 8];
    assert!(std::fs::File::from(their).read(&mut buf).is_err(), "EAGAIN: nothing written yet");
    assert!(r.child.wants_flush());
    r.child.flush(r.poll.registry());
    assert!(!r.child.wants_flush());
    r.child.close_fd(0);
    r.child.flush(r.poll.registry());
    assert_eq!(r.input(0), b"ab");
}

#[test]
fn writes_to_output_pipes_and_unknown_fds() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    assert_eq!(r.child.write(1, b"x".to_vec(), true), Ok(Queued::default()), "accepted, never sent");
    assert_eq!(r.child.write(7, b"x".to_vec(), true), Err(NotOpen));
    assert_eq!(r.child.write(7, b"x".to_vec(), false), Ok(Queued::default()));
    assert_eq!(r.child.take_trash().len(), 3);
    assert!(!r.child.write(0, Vec::new(), false).unwrap().needs_flush, "an empty write is nothing");
}

#[test]
fn a_write_to_a_gone_reader_loses_the_pipe_and_discards_the_queue() {
    // SAFETY: the test process ignores SIGPIPE (the loop's shield does this for hosts).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    drop(r.theirs.remove(&0));
    r.child.write(INPUT_FD, b"nobody".to_vec(), false).unwrap();
    r.child.flush(r.poll.registry());
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.child.take_trash().len(), 1);
    assert!(r.child.input_broken(), "lost with data unsent");
}

#[test]
fn lose_connection_closes_outputs_now_and_input_after_its_queue() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read), (2, Role::Read), (3, Role::Read)]);
    r.child.write(INPUT_FD, b"bye".to_vec(), false).unwrap();
    assert!(r.child.lose_connection());
    assert_eq!(r.events(), [Event::Lost { fd: 2 }, Event::Lost { fd: 1 }, Event::Lost { fd: 3 }]);
    r.child.flush(r.poll.registry());
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.input(0), b"bye");
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited, Event::Ended]);
}

#[test]
fn detach_gives_the_child_up_without_further_events() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    r.output(1, b"pending");
    r.child.write(INPUT_FD, b"q".to_vec(), false).unwrap();
    let (pid, pidfd) = r.child.detach().unwrap();
    assert_eq!((pid, pidfd.is_none()), (FAKE_PID, true));
    assert_eq!(r.events(), []);
    assert!(matches!(r.child.signal(0), Err(SignalError::Gone)));
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited], "no Ended after a detach");
    assert!(r.child.detach().is_none());
}

// -- a terminal --------------------------------------------------------------

fn terminal_rig() -> (Child<Vec<u8>>, Poll, OwnedFd) {
    let poll = Poll::new().unwrap();
    let pty = crate::pty::open(None).unwrap();
    crate::pty::make_raw(pty.master.as_fd()).unwrap();
    let slave = crate::pty::open_slave(&pty.slave_path).unwrap();
    let mut child = Child::new(FAKE_PID, None, true);
    let token = Token(5);
    poll.registry()
        .register(&mut mio::unix::SourceFd(&pty.master.as_raw_fd()), token, Role::Terminal.interest())
        .unwrap();
    child.add_pipe(INPUT_FD, pty.master, token, Role::Terminal);
    (child, poll, slave)
}

fn read_terminal(child: &mut Child<Vec<u8>>, poll: &Poll) {
    let src = child.read_source(INPUT_FD, Token(5)).unwrap();
    assert!(src.terminal);
    let d = read_available(&src, false, &mut VecAlloc);
    child.on_read(INPUT_FD, Token(5), d.read, poll.registry());
}

#[test]
fn a_terminal_reports_output_as_fd_1_and_ends_without_losses() {
    let (mut child, poll, slave) = terminal_rig();
    std::fs::File::from(slave.try_clone().unwrap()).write_all(b"tty out").unwrap();
    read_terminal(&mut child, &poll);
    drop(slave);
    read_terminal(&mut child, &poll);
    let evs: Vec<Ev> = std::iter::from_fn(|| child.next_event()).collect();
    assert_eq!(evs, [data(TERMINAL_OUTPUT_FD, "tty out")]);
    assert!(child.held_master.is_some(), "held open until the child is reaped");
    assert_eq!(child.terminal_fd(), None);
    child.on_exit(EXIT0);
    assert!(child.held_master.is_none());
    let evs: Vec<Ev> = std::iter::from_fn(|| child.next_event()).collect();
    assert_eq!(evs, [Event::Exited, Event::Ended]);
}

#[test]
fn terminal_input_goes_to_the_master_and_its_producer_stops_with_it() {
    let (mut child, poll, slave) = terminal_rig();
    let ProducerRegistered::Yes { generation } = child.register_producer(true) else { panic!() };
    let q = child.write(INPUT_FD, b"typed".to_vec(), false).unwrap();
    assert!(q.needs_flush);
    child.flush(poll.registry());
    let mut got = [0u8; 5];
    std::fs::File::from(slave).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"typed");
    child.write(INPUT_FD, vec![b'x'; HIGH_WATER + 1], false).unwrap();
    child.close_terminal();
    let evs: Vec<Ev> = std::iter::from_fn(|| child.next_event()).collect();
    assert_eq!(evs, [Event::StopProducer { generation }], "no loss for a terminal");
    assert!(!child.wants_flush());
}

#[test]
fn detached_pipes_end_quietly_once_the_child_exits() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    r.output(1, b"dropped");
    r.child.register_producer(true);
    r.child.detach_pipes();
    assert_eq!(r.events(), [], "no output, losses or producer calls");
    assert!(r.child.pid().is_some(), "still ours: signalled and reaped as usual");
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited, Event::Ended]);
}

// -- process groups and time limits, on real children ---------------------------

// -- what a live child costs the parent --------------------------------------

/// The record every live child keeps stays compact (issue 23: S6 keeps
/// 10,000 children alive). What most children never use (time limits, a
/// producer and write marks, a held group leader, the exit until it comes)
/// is boxed, and so are the events and the buffers to release until there
/// are some; the poll tokens are a range, not a list. 328 bytes for the `Child` (360 for the
/// cell) and a boxed token list before. A new field that pushes past these bounds belongs in a box too.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_live_childs_record_stays_compact() {
    use std::mem::size_of;

    struct Bare;
    impl cell::Host for Bare {
        type Chunk = Vec<u8>;
        type Ext = ();
    }
    let child = size_of::<Child<Vec<u8>>>();
    assert!(child <= 120, "Child is {child} bytes");
    let cell = size_of::<cell::ChildCell<Bare>>();
    assert!(cell <= 152, "ChildCell is {cell} bytes (Child {child})");
}

/// A burst of output leaves no room behind once delivered: the event list
/// keeps at most `KEEP_SLOTS` entries' worth for the rest of the child's life.
#[test]
fn delivered_events_leave_no_burst_room_behind() {
    let mut r = rig(&[(1, Role::Read)]);
    let token = r.token(1);
    let chunks = (0..100).map(|i| vec![i as u8]).collect();
    r.child.on_read(1, token, ReadResult { chunks, eof: false }, r.poll.registry());
    assert!(r.child.outbox.capacity() >= 100);
    assert_eq!(r.events().len(), 100);
    assert!(r.child.outbox.capacity() <= queue::KEEP_SLOTS, "kept room for {}", r.child.outbox.capacity());
}
