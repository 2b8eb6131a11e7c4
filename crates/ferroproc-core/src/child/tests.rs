//! The lifecycle rules, on real pipes (and a real terminal), with the
//! child process itself stood in for: its exit is reported with `on_exit`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use mio::{Poll, Token};

use super::*;
use crate::io::{read_available, VecAlloc};
use crate::reap::Exit;
use crate::sys::{pipe_cloexec, set_nonblocking};

type Ev = Event<Vec<u8>>;

/// A `Child` with pipes on the given child fds, and the child's ends of them.
struct Rig {
    child: Child<Vec<u8>>,
    poll: Poll,
    theirs: BTreeMap<i32, OwnedFd>,
}

/// A pid no test signals: the state machine only stores it.
const FAKE_PID: libc::pid_t = i32::MAX;

fn rig(fds: &[(i32, Role)]) -> Rig {
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
    fn token(&self, fd: i32) -> Token {
        self.child.pipes.get(&fd).unwrap().token
    }

    /// The child writes `data` on `fd`; the parent reads it.
    fn output(&mut self, fd: i32, data: &[u8]) {
        std::fs::File::from(self.theirs[&fd].try_clone().unwrap()).write_all(data).unwrap();
        self.read(fd);
    }

    /// The child closes its end of `fd`; the parent reads to EOF.
    fn child_closes(&mut self, fd: i32) {
        self.theirs.remove(&fd);
        self.read(fd);
    }

    fn read(&mut self, fd: i32) {
        let token = self.token(fd);
        let src = self.child.read_source(fd, token).expect("readable");
        let d = read_available(&src, true, &mut VecAlloc);
        self.child.on_read(fd, token, d.read, self.poll.registry());
    }

    /// What the child reads from `fd` (its end must be closed by us for EOF).
    fn input(&mut self, fd: i32) -> Vec<u8> {
        let mut got = Vec::new();
        let their = self.theirs.remove(&fd).unwrap();
        set_nonblocking(their.as_raw_fd(), true).unwrap();
        let _ = std::fs::File::from(their).read_to_end(&mut got);
        got
    }

    fn events(&mut self) -> Vec<Ev> {
        std::iter::from_fn(|| self.child.next_event()).collect()
    }
}

fn data(fd: i32, s: &str) -> Ev {
    Event::Data { fd, data: s.as_bytes().to_vec() }
}

const EXIT0: Exit = Exit { status: Some(0), usage: None };

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
    r.child.flush();
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
    assert!(!r.child.flush());
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
    r.child.flush();
    assert!(!r.child.wants_flush());
    r.child.close_fd(0);
    r.child.flush();
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
fn a_streaming_producer_is_paused_over_the_high_water_mark_and_resumed_when_drained() {
    let mut r = rig(&[(0, Role::Write)]);
    let ProducerRegistered::Yes { generation } = r.child.register_producer(true) else { panic!() };
    assert_eq!(r.events(), [], "a streaming producer is not asked for data");
    let q = r.child.write(INPUT_FD, vec![b'x'; HIGH_WATER], false).unwrap();
    assert_eq!(q.pause_producer, None, "at the mark, not over it");
    let q = r.child.write(INPUT_FD, b"y".to_vec(), false).unwrap();
    assert_eq!(q.pause_producer, Some(generation));
    assert_eq!(r.child.write(INPUT_FD, b"z".to_vec(), false).unwrap().pause_producer, None, "paused once");
    r.child.flush();
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
    r.child.flush();
    assert_eq!(r.events(), [Event::ResumeProducer { generation }]);
    assert!(!r.child.unregister_producer(), "a pull producer needs no resume");
    r.child.write(INPUT_FD, b"more".to_vec(), false).unwrap();
    r.child.flush();
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
fn a_write_to_a_gone_reader_loses_the_pipe_and_discards_the_queue() {
    // SAFETY: the test process ignores SIGPIPE (the loop's shield does this for hosts).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut r = rig(&[(0, Role::Write), (1, Role::Read)]);
    drop(r.theirs.remove(&0));
    r.child.write(INPUT_FD, b"nobody".to_vec(), false).unwrap();
    r.child.flush();
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.child.take_trash().len(), 1);
}

#[test]
fn lose_connection_closes_outputs_now_and_input_after_its_queue() {
    let mut r = rig(&[(0, Role::Write), (1, Role::Read), (2, Role::Read), (3, Role::Read)]);
    r.child.write(INPUT_FD, b"bye".to_vec(), false).unwrap();
    assert!(r.child.lose_connection());
    assert_eq!(r.events(), [Event::Lost { fd: 2 }, Event::Lost { fd: 1 }, Event::Lost { fd: 3 }]);
    r.child.flush();
    assert_eq!(r.events(), [Event::Lost { fd: 0 }]);
    assert_eq!(r.input(0), b"bye");
    r.child.on_exit(EXIT0);
    assert_eq!(r.events(), [Event::Exited, Event::Ended]);
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

use std::os::fd::AsFd;

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
    let (mut child, _poll, slave) = terminal_rig();
    let ProducerRegistered::Yes { generation } = child.register_producer(true) else { panic!() };
    let q = child.write(INPUT_FD, b"typed".to_vec(), false).unwrap();
    assert!(q.needs_flush);
    child.flush();
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

use crate::spawn::{self, Request, Session, Setup, Spawned, Stdio};

/// `sh -c script` in a new process group, its stdout on a pipe the test keeps.
fn grouped(script: &str) -> (Spawned, OwnedFd) {
    let spec = crate::exec::ExecSpec::new(
        b"/bin/sh",
        &[b"sh".to_vec(), b"-c".to_vec(), script.as_bytes().to_vec()],
        &[b"PATH=/usr/bin:/bin".to_vec()],
        None,
        None,
    )
    .unwrap();
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let setup = Setup::default();
    let req = Request {
        exec: &spec,
        cwd: None,
        stdio: Stdio::Fds(&plan),
        creds: None,
        session: Session::NewGroup,
        setup: &setup,
        method: None,
    };
    (spawn::spawn(&req).unwrap(), r)
}

/// Live (not zombie) processes in group `pgid`. (A killed grandchild is
/// reparented, and this sandbox's init may leave it a zombie a while.)
fn group_members(pgid: libc::pid_t) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .count()
}

fn wait_reaped(child: &mut Child<Vec<u8>>) {
    for _ in 0..1000 {
        if child.try_reap(false).unwrap() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("not reaped");
}

#[test]
fn the_group_is_killed_when_the_child_exits() {
    // A grandchild that left the pipes behind (and would run for 30 s).
    let (mut spawned, _out) = grouped("sleep 30 </dev/null >/dev/null 2>&1 & exit 0");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { pgid: Some(pid), kill_on_exit: true, kill_on_lost: false });
    wait_reaped(&mut child);
    for _ in 0..200 {
        if group_members(pid) == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the grandchild survived its group's kill");
}

#[test]
fn signal_group_reaches_grandchildren_and_needs_a_group() {
    let (mut spawned, _out) = grouped("sleep 30 & sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    let no_group = Child::<Vec<u8>>::new(pid, None, false);
    assert!(matches!(no_group.signal_group(libc::SIGKILL), Err(SignalError::NoGroup)));
    child.set_group(GroupPolicy { pgid: Some(pid), ..GroupPolicy::default() });
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(group_members(pid) >= 2, "the shell and its sleeps");
    child.signal_group(libc::SIGKILL).unwrap();
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    for _ in 0..200 {
        if group_members(pid) == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("a grandchild survived");
}

#[test]
fn a_wall_clock_limit_terms_then_kills() {
    // Ignores SIGTERM: the grace period ends in SIGKILL.
    let (mut spawned, _out) = grouped("trap '' TERM; echo ready; sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { pgid: Some(pid), ..GroupPolicy::default() });
    let t0 = 1000.0;
    let limits = TimeLimits { wall: Some(2.0), idle: None, grace: 0.5 };
    assert_eq!(child.set_time_limits(limits, t0), Some(t0 + 2.0));
    std::thread::sleep(std::time::Duration::from_millis(100)); // the trap is set
    assert_eq!(child.on_deadline(t0 + 1.0), Some(t0 + 2.0), "early: nothing happens");
    assert_eq!(child.on_deadline(t0 + 2.0), Some(t0 + 2.5), "TERM sent, KILL in the grace period");
    assert_eq!(child.timed_out(), Some(TimedOut { kind: TimeoutKind::Wall, limit: 2.0, killed: false }));
    assert_eq!(child.on_deadline(t0 + 2.5), None, "KILL sent");
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(child.timed_out().unwrap().killed);
}

#[test]
fn output_keeps_an_idle_limit_away() {
    let mut r = rig(&[(1, Role::Read)]);
    let now = crate::timers::now();
    let limits = TimeLimits { wall: None, idle: Some(60.0), grace: 1.0 };
    let first = r.child.set_time_limits(limits, now - 30.0).unwrap();
    assert!((first - (now + 30.0)).abs() < 1.0);
    r.output(1, b"still here");
    // Output just now: the deadline moved a full idle period on.
    let next = r.child.on_deadline(now + 31.0).unwrap();
    assert!(next > now + 59.0, "{next} vs {now}");
    assert!(r.child.timed_out().is_none());
}

#[test]
fn no_grace_means_sigkill_at_once() {
    // A shell that would exit on SIGTERM: it dies of SIGKILL, so no SIGTERM came first.
    let (mut spawned, _out) = grouped("echo ready; sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { pgid: Some(pid), ..GroupPolicy::default() });
    let limits = TimeLimits { wall: Some(1.0), idle: None, grace: 0.0 };
    assert_eq!(child.set_time_limits(limits, 0.0), Some(1.0));
    assert_eq!(child.on_deadline(1.0), None, "nothing left to watch");
    assert_eq!(child.timed_out(), Some(TimedOut { kind: TimeoutKind::Wall, limit: 1.0, killed: true }));
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
}

#[test]
fn kill_on_lost_kills_the_group_once_the_pipes_are_given_up() {
    let (mut spawned, _out) = grouped("sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { pgid: Some(pid), kill_on_exit: false, kill_on_lost: true });
    child.detach_pipes();
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
}
