//! Process groups and time limits, on real children in their own group.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::{Poll, Token};

use super::tests::rig;
use super::*;
use crate::io::{read_available, VecAlloc};
use crate::reap::Exit;
use crate::spawn::tests::{request, sh, NO_SETUP};
use crate::spawn::{self, Request, Session, Spawned};
use crate::sys::{pipe_cloexec, set_nonblocking};

/// `sh -c script` in a new process group, its stdout on a pipe the test keeps.
fn grouped(script: &str) -> (Spawned, OwnedFd) {
    spawned_in(Session::NewGroup, script)
}

/// `sh -c script` in `session`, its stdout on a pipe the test keeps.
fn spawned_in(session: Session, script: &str) -> (Spawned, OwnedFd) {
    let spec = sh(script);
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = Request { session, ..request(&spec, &plan, &NO_SETUP) };
    (spawn::spawn(&req).unwrap(), r)
}

fn leads(pid: libc::pid_t) -> GroupPolicy {
    GroupPolicy { group: Group::Leads(pid), ..GroupPolicy::default() }
}

/// A real child whose stdout the `Child` reads (as the loop would).
struct Real {
    child: Child<Vec<u8>>,
    pid: libc::pid_t,
    poll: Poll,
}

const OUT: Token = Token(1);

/// `script` in a group it leads (with `policy`'s kill options); the first
/// line it writes is returned before its stdout is handed to the `Child`.
fn real(script: &str, kill_on_exit: bool) -> (Real, String) {
    let (mut spawned, out) = grouped(script);
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { group: Group::Leads(pid), kill_on_exit, kill_on_lost: false });
    let mut line = Vec::new();
    let mut file = std::fs::File::from(out.try_clone().unwrap());
    let mut byte = [0u8];
    while file.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    set_nonblocking(out.as_raw_fd(), true).unwrap();
    child.add_pipe(1, out, OUT, Role::Read);
    (Real { child, pid, poll: Poll::new().unwrap() }, String::from_utf8(line).unwrap())
}

impl Real {
    /// Read stdout (as the loop would on readiness) until end of stream.
    fn read_to_eof(&mut self) {
        for _ in 0..2000 {
            let Some(src) = self.child.read_source(1, OUT) else { return };
            let d = read_available(&src, true, &mut VecAlloc);
            let eof = d.read.eof;
            self.child.on_read(1, OUT, d.read, self.poll.registry());
            if eof {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("stdout never reached its end");
    }

    fn events(&mut self) -> Vec<Event<Vec<u8>>> {
        std::iter::from_fn(|| self.child.next_event()).collect()
    }
}

/// Wait until the child behind `pidfd` has exited, without reaping it.
fn wait_exited(pidfd: i32) {
    let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 10_000) }, 1, "the child did not exit");
}

/// The state letter of `pid` in the process table (None: no such process).
fn state(pid: libc::pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// Wait until group `pgid` has no live member; false after 10 s.
fn group_empties(pgid: libc::pid_t) -> bool {
    for _ in 0..2000 {
        if group_members(pgid) == 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
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
    child.set_group(GroupPolicy { group: Group::Leads(pid), kill_on_exit: true, kill_on_lost: false });
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
    child.set_group(leads(pid));
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
    child.set_group(leads(pid));
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
    child.set_group(leads(pid));
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
    child.set_group(GroupPolicy { group: Group::Leads(pid), kill_on_exit: false, kill_on_lost: true });
    child.detach_pipes();
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
}

// -- only what is ours is signalled (issue 21, item 4) ------------------------

#[test]
fn a_time_limit_on_a_child_that_joined_a_group_signals_the_child_alone() {
    let (mut lspawned, _lout) = grouped("sleep 30");
    let leader = lspawned.pid();
    let mut lchild: Child<Vec<u8>> = Child::new(leader, lspawned.take_pidfd(), false);
    lspawned.disarm();
    lchild.set_group(leads(leader));
    let (mut spawned, _out) = spawned_in(Session::JoinGroup(leader), "sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(GroupPolicy { group: Group::Joined(leader), ..GroupPolicy::default() });
    assert_eq!(child.pgid(), Some(leader), "the joined group is still reported");
    assert!(matches!(child.signal_group(libc::SIGTERM), Err(SignalError::NotLeader(g)) if g == leader));
    let limits = TimeLimits { wall: Some(1.0), idle: None, grace: 0.0 };
    child.set_time_limits(limits, 0.0);
    assert_eq!(child.on_deadline(1.0), None);
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(child.timed_out().is_some());
    assert_eq!(state(leader), Some('S'), "the group's leader was signalled too");
    lchild.signal_group(libc::SIGKILL).unwrap();
    wait_reaped(&mut lchild);
}

#[test]
fn a_group_leader_is_held_a_zombie_until_its_pipes_close() {
    // A grandchild holds stdout; its leader exits at once.
    let (mut r, grandchild) = real("sleep 30 & echo $!; exit 0", false);
    let grandchild: libc::pid_t = grandchild.parse().unwrap();
    wait_exited(r.child.pidfd().unwrap());
    assert!(r.child.try_reap(false).unwrap(), "its exit is seen");
    assert_eq!(r.events(), [Event::Exited]);
    assert_eq!(r.child.pid(), None);
    assert_eq!(r.child.exit().unwrap().status, Some(0));
    assert!(r.child.exit().unwrap().usage.is_some(), "the usage comes with the exit");
    assert_eq!(state(r.pid), Some('Z'), "held, so the group id cannot be reused");
    // Still ours: the group can be signalled.
    r.child.signal_group(libc::SIGKILL).unwrap();
    assert!(group_empties(r.pid));
    r.read_to_eof();
    assert_eq!(r.events(), [Event::Lost { fd: 1 }, Event::Ended]);
    assert_eq!(state(r.pid), None, "reaped before Ended");
    assert_eq!(state(grandchild).unwrap_or('Z'), 'Z');
}

#[test]
fn a_reaped_leaders_group_is_never_signalled() {
    // The grandchild leaves the pipe: the leader is reaped at its exit.
    let (mut r, grandchild) = real("sleep 30 </dev/null >/dev/null 2>&1 & echo $!; exit 0", false);
    let grandchild: libc::pid_t = grandchild.parse().unwrap();
    r.child.set_group(GroupPolicy { group: Group::Leads(r.pid), kill_on_exit: false, kill_on_lost: true });
    wait_exited(r.child.pidfd().unwrap());
    r.read_to_eof();
    assert!(r.child.try_reap(false).unwrap());
    assert_eq!(r.events(), [Event::Lost { fd: 1 }, Event::Exited, Event::Ended]);
    assert_eq!(state(r.pid), None, "reaped");
    assert!(matches!(r.child.signal_group(libc::SIGKILL), Err(SignalError::Gone)));
    r.child.lose_connection(); // kill_on_lost: too late, nothing is sent
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(state(grandchild), Some('S'), "the group was signalled after its leader was reaped");
    sys::kill(grandchild, libc::SIGKILL).unwrap();
}

#[test]
fn grandchildren_that_ignore_sigterm_die_at_the_end_of_the_grace() {
    // The leader dies of SIGTERM at once; a grandchild that ignores it holds
    // stdout, so the leader is held until the grace ends.
    let (mut r, ready) = real("(trap '' TERM; echo ready; exec sleep 30) & wait", false);
    assert_eq!(ready, "ready");
    let limits = TimeLimits { wall: Some(1.0), idle: None, grace: 5.0 };
    r.child.set_time_limits(limits, 0.0);
    assert_eq!(r.child.on_deadline(1.0), Some(6.0), "SIGTERM to the group");
    wait_exited(r.child.pidfd().unwrap());
    assert!(r.child.try_reap(false).unwrap());
    assert_eq!(r.child.exit().unwrap().status, Some(libc::SIGTERM));
    assert!(group_members(r.pid) >= 1, "the grandchild ignored SIGTERM");
    assert_eq!(state(r.pid), Some('Z'));
    assert_eq!(r.child.on_deadline(6.0), None, "the grace has ended: SIGKILL to the group");
    assert!(group_empties(r.pid), "a grandchild survived the grace");
    r.read_to_eof();
    assert!(r.events().ends_with(&[Event::Ended]));
    assert_eq!(state(r.pid), None);
    let t = r.child.timed_out().unwrap();
    assert!(!t.killed, "SIGTERM ended the child itself");
}

#[test]
fn a_kill_still_due_when_the_leader_is_reaped_goes_before_the_reap() {
    // The grandchild ignores SIGTERM but has left our pipe: once the leader
    // dies nothing keeps it a zombie, so the grace's SIGKILL goes at its reap.
    let (mut r, ready) = real("(trap '' TERM; echo ready; exec sleep 30 >/dev/null) & wait", false);
    assert_eq!(ready, "ready");
    r.child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 60.0 }, 0.0);
    assert_eq!(r.child.on_deadline(1.0), Some(61.0));
    wait_exited(r.child.pidfd().unwrap());
    r.read_to_eof();
    assert!(r.child.try_reap(false).unwrap());
    assert!(r.events().ends_with(&[Event::Exited, Event::Ended]));
    assert!(group_empties(r.pid), "the grandchild outlived its reaped leader");
    assert_eq!(r.child.on_deadline(61.0), None, "nothing left to do at the end of the grace");
}

// -- a child that exits as its limit runs out did not time out (item 8) ----

#[test]
fn an_exit_not_seen_yet_is_no_time_out() {
    let (mut spawned, _out) = grouped("exit 0");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_group(leads(pid));
    child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 1.0 }, 0.0);
    // The child exits; the deadline comes before the loop sees the exit.
    wait_exited(child.pidfd().unwrap());
    assert_eq!(child.on_deadline(1.0), None, "nothing to enforce");
    assert!(child.timed_out().is_none());
    assert!(child.try_reap(false).unwrap());
    assert_eq!(child.exit().unwrap().status, Some(0));
    assert!(child.timed_out().is_none());
}

#[test]
fn an_exit_our_signal_cannot_have_caused_is_no_time_out() {
    // No grace: only SIGKILL is sent. A child that then shows a plain exit
    // ended on its own (here its exit is stood in for by hand).
    let (mut spawned, _out) = spawned_in(Session::Inherit, "sleep 30");
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    spawned.disarm();
    child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 0.0 }, 0.0);
    assert_eq!(child.on_deadline(1.0), None);
    assert_eq!(child.timed_out().map(|t| t.killed), Some(true));
    child.on_exit(Exit::status(0));
    assert!(child.timed_out().is_none(), "exit 0 is not SIGKILL's doing");
    assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(libc::SIGKILL));

    // SIGTERM, then SIGKILL after the grace; the child exits 0 in between:
    // SIGTERM may have caused that (a handler), SIGKILL did not.
    let (mut r, ready) = real("trap '' TERM; echo ready; sleep 30", false);
    assert_eq!(ready, "ready");
    r.child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 1.0 }, 0.0);
    assert_eq!(r.child.on_deadline(1.0), Some(2.0));
    assert_eq!(r.child.on_deadline(2.0), None);
    assert_eq!(r.child.timed_out().map(|t| t.killed), Some(true));
    r.child.on_exit(Exit::status(0));
    assert_eq!(r.child.timed_out().map(|t| t.killed), Some(false));
    assert_eq!(crate::reap::wait_blocking(r.pid).unwrap().status, Some(libc::SIGKILL));
}

#[test]
fn a_status_an_uncaught_sigterm_cannot_have_caused_is_no_time_out() {
    // SIGTERM at its default ends the child as it is sent, with SIGTERM's
    // status: a plain exit means it was exiting already, too far for the
    // check before the signal to see (its exit is stood in for by hand).
    // (`exec`: a shell waiting for a command blocks every signal meanwhile.)
    let (mut r, ready) = real("echo ready; exec sleep 30", false);
    assert_eq!(ready, "ready");
    r.child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 5.0 }, 0.0);
    assert_eq!(r.child.on_deadline(1.0), Some(6.0));
    r.child.on_exit(Exit::status(0));
    assert!(r.child.timed_out().is_none(), "exit 0 is not an uncaught SIGTERM's doing");
    assert_eq!(crate::reap::wait_blocking(r.pid).unwrap().status, Some(libc::SIGTERM));

    // A child that catches SIGTERM may end in any way: it timed out.
    let (mut r, ready) = real("trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done", false);
    assert_eq!(ready, "ready");
    r.child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 5.0 }, 0.0);
    assert_eq!(r.child.on_deadline(1.0), Some(6.0));
    r.child.on_exit(Exit::status(0));
    assert_eq!(r.child.timed_out().map(|t| t.killed), Some(false));
    assert_eq!(crate::reap::wait_blocking(r.pid).unwrap().status, Some(0), "its trap ended it");
}

// -- the idle clock stands still while we do not read (item 5) -------------

#[test]
fn idle_time_does_not_count_while_reading_is_paused() {
    let (mut r, ready) = real("echo ready; sleep 30", false);
    assert_eq!(ready, "ready");
    let now = crate::timers::now();
    let limits = TimeLimits { wall: None, idle: Some(10.0), grace: 1.0 };
    assert!(r.child.set_time_limits(limits, now - 20.0).unwrap() < now, "idle already");
    r.child.set_reading(false, r.poll.registry()).unwrap();
    let next = r.child.on_deadline(now).expect("still watching");
    assert!(r.child.timed_out().is_none(), "back-pressure counted as idleness");
    assert!(next >= now + 10.0, "{next} vs {now}");
    let resumed = crate::timers::now();
    r.child.set_reading(true, r.poll.registry()).unwrap();
    let next = r.child.on_deadline(resumed + 5.0).expect("still watching");
    assert!(r.child.timed_out().is_none(), "the clock restarts on resume");
    assert!(next >= resumed + 10.0);
    // One pipe paused (asyncio's pause_reading) stops the clock too.
    r.child.set_fd_reading(1, false, r.poll.registry()).unwrap();
    assert!(r.child.on_deadline(resumed + 30.0).is_some());
    assert!(r.child.timed_out().is_none());
    r.child.set_fd_reading(1, true, r.poll.registry()).unwrap();
    let resumed = crate::timers::now();
    assert_eq!(r.child.on_deadline(resumed + 10.0), Some(resumed + 11.0), "idle again: SIGTERM");
    assert_eq!(r.child.timed_out().map(|t| t.kind), Some(TimeoutKind::Idle));
    wait_exited(r.child.pidfd().unwrap());
    r.read_to_eof();
    assert!(r.child.try_reap(false).unwrap());
    assert_eq!(r.child.exit().unwrap().status, Some(libc::SIGTERM));
}
