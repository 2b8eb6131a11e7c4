//! Stopping a child for the host (`stop.rs`), on real children leading
//! their own group: the phases, the reason in the debug log, no time-out.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use super::*;
use crate::debuglog::tests::serial;
use crate::debuglog::{self, Record, Target, Why};
use crate::spawn::tests::{request, sh, NO_SETUP};
use crate::spawn::{self, Request, Session};
use crate::sys::pipe_cloexec;

fn cancel() -> StopWhy {
    StopWhy::new("cancel", "the run was cancelled")
}

/// `sh -c script` leading a new group, taken over as the loop takes it;
/// returns once it has written its first line (its traps are set).
fn leader(script: &str) -> (Child<Vec<u8>>, libc::pid_t, OwnedFd) {
    let spec = sh(script);
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = Request { session: Session::NewGroup, ..request(&spec, &plan, &NO_SETUP) };
    let mut spawned = spawn::spawn(&req).unwrap();
    drop(w);
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    child.set_tag(spawned.take_tag());
    spawned.disarm();
    child.set_group(GroupPolicy { group: Group::Leads(pid), ..GroupPolicy::default() });
    let mut file = std::fs::File::from(r.try_clone().unwrap());
    let mut byte = [0u8];
    while file.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
    (child, pid, r)
}

fn wait_reaped(child: &mut Child<Vec<u8>>) {
    for _ in 0..2000 {
        if child.try_reap(false).unwrap() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("not reaped");
}

/// Whether group `pgid` still has a live member.
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

fn group_empties(pgid: libc::pid_t) -> bool {
    (0..2000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        !group_alive(pgid)
    })
}

#[test]
fn a_stop_terms_the_group_then_kills_it_after_the_grace_and_is_no_time_out() {
    // The shell and its grandchild ignore SIGTERM: only the SIGKILL ends them.
    let (mut child, pid, _out) = leader("trap '' TERM; sleep 30 & echo ready; wait");
    assert_eq!(child.stop(5.0, 100.0, &cancel()), Stop::Began(Some(105.0)));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(group_alive(pid), "SIGTERM was ignored");
    assert_eq!(child.on_deadline(104.0), Some(105.0), "not yet");
    assert_eq!(child.stop(10.0, 101.0, &cancel()), Stop::Unchanged, "a longer grace changes nothing");
    assert_eq!(child.on_deadline(105.0), None, "SIGKILL to the group");
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(group_empties(pid), "the grandchild went with the group");
    assert_eq!(child.timed_out(), None, "no time limit ran out");
}

#[test]
fn a_stop_without_a_grace_kills_at_once_and_closes_the_pipes() {
    let (mut child, pid, _out) = leader("echo ready; sleep 30");
    let (r, w) = pipe_cloexec().unwrap();
    child.add_pipe(2, r, mio::Token(3), Role::Read);
    assert_eq!(child.stop(0.0, 0.0, &cancel()), Stop::Began(None));
    assert!(child.pipes().next().is_none(), "our ends are closed");
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(group_empties(pid));
    assert!(child.is_ended());
    assert_eq!(child.stop(0.0, 1.0, &cancel()), Stop::Ended);
    drop(w);
}

#[test]
fn a_second_stop_with_a_shorter_grace_kills_at_once() {
    let (mut child, pid, _out) = leader("trap '' TERM; echo ready; sleep 30");
    assert_eq!(child.stop(60.0, 0.0, &cancel()), Stop::Began(Some(60.0)));
    assert_eq!(child.stop(5.0, 1.0, &cancel()), Stop::Hastened(Some(6.0)));
    assert_eq!(child.stop(0.0, 2.0, &cancel()), Stop::Hastened(None));
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(group_empties(pid));
    assert_eq!(child.on_deadline(6.0), None, "nothing left to do");
}

#[test]
fn a_stop_hastens_a_time_limits_kill_and_the_child_still_timed_out() {
    let (mut child, _pid, _out) = leader("trap '' TERM; echo ready; sleep 30");
    child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 60.0 }, 0.0);
    assert_eq!(child.on_deadline(1.0), Some(61.0), "the limit's SIGTERM");
    assert_eq!(child.stop(0.0, 2.0, &cancel()), Stop::Hastened(None));
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    let t = child.timed_out().expect("its limit ran out first");
    assert!(t.killed);
}

#[test]
fn a_child_that_exited_on_its_own_is_not_signalled() {
    let (mut child, _pid, _out) = leader("echo ready; exit 3");
    let fd = child.pidfd().unwrap();
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 10_000) }, 1);
    assert_eq!(child.stop(5.0, 0.0, &cancel()), Stop::Ended, "exiting, not seen yet");
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(3 << 8));
}

#[test]
fn the_debug_log_gives_the_hosts_reason_and_no_time_out() {
    let _g = serial();
    debuglog::set_enabled(true);
    let (mut child, pid, _out) = leader("trap '' TERM; echo ready; sleep 30");
    let halt = StopWhy::new("halt", "a halt policy was reached");
    child.stop(2.0, 0.0, &halt);
    child.on_deadline(2.0);
    wait_reaped(&mut child);
    debuglog::set_enabled(false);
    let records: Vec<Record> = debuglog::take()
        .into_iter()
        .filter(|r| matches!(r, Record::Signalled { pid: p, .. } | Record::Exited { pid: p, .. } if *p == pid))
        .collect();
    let signals: Vec<(i32, String, String)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Signalled { target: Target::Group(g), signal, why: Why::Host { code, text }, .. } if *g == pid => {
                Some((*signal, code.clone(), text.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(signals.len(), 2, "{records:?}");
    assert_eq!(signals[0], (libc::SIGTERM, "halt".into(), "a halt policy was reached".into()));
    assert_eq!(signals[1].0, libc::SIGKILL);
    assert_eq!(signals[1].1, "kill-grace");
    assert!(signals[1].2.contains("a halt policy was reached"), "{}", signals[1].2);
    assert!(
        records.iter().any(|r| matches!(r, Record::Exited { timed_out: None, .. })),
        "the exit is no time-out: {records:?}"
    );
}
