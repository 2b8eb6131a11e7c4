//! Process groups and time limits, on real children in their own group.

use std::os::fd::{AsRawFd, OwnedFd};

use super::tests::rig;
use super::*;
use crate::spawn::tests::{request, sh, NO_SETUP};
use crate::spawn::{self, Request, Session, Spawned};
use crate::sys::pipe_cloexec;

/// `sh -c script` in a new process group, its stdout on a pipe the test keeps.
fn grouped(script: &str) -> (Spawned, OwnedFd) {
    let spec = sh(script);
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = Request { session: Session::NewGroup, ..request(&spec, &plan, &NO_SETUP) };
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
