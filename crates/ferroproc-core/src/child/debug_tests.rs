//! Debug records on real children: a spawn, its exit, and each signal the
//! core sends, with its reason; nothing at all while records are off.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use super::*;
use crate::debuglog::tests::serial;
use crate::debuglog::{self, Record, Target, Why};
use crate::spawn::tests::{request, sh, NO_SETUP};
use crate::spawn::{self, Request, Session, Spawned};
use crate::sys::pipe_cloexec;

/// Records on until dropped (with the lock that keeps other record tests
/// out meanwhile).
struct On(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl On {
    fn new() -> Self {
        let g = serial();
        debuglog::set_enabled(true);
        On(g)
    }
}

impl Drop for On {
    fn drop(&mut self) {
        debuglog::set_enabled(false);
    }
}

/// `sh -c script` in `session`, its stdout on a pipe the test keeps.
fn start(session: Session, script: &str) -> (Spawned, OwnedFd) {
    let spec = sh(script);
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = Request { session, ..request(&spec, &plan, &NO_SETUP) };
    (spawn::spawn(&req).unwrap(), r)
}

/// A started child taken over as the loop takes it (its tag included).
fn child_of(mut spawned: Spawned, group: Group) -> (Child<Vec<u8>>, libc::pid_t) {
    let pid = spawned.pid();
    let mut child: Child<Vec<u8>> = Child::new(pid, spawned.take_pidfd(), false);
    child.set_tag(spawned.take_tag());
    spawned.disarm();
    child.set_group(GroupPolicy { group, ..GroupPolicy::default() });
    (child, pid)
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

/// The records about `pid` (other tests may spawn while records are on).
fn records_of(pid: libc::pid_t) -> Vec<Record> {
    debuglog::take()
        .into_iter()
        .filter(|r| match r {
            Record::Spawned { pid: p, .. } | Record::Exited { pid: p, .. } | Record::Signalled { pid: p, .. } => {
                *p == pid
            }
        })
        .collect()
}

fn argv(words: &[&str]) -> Vec<CString> {
    words.iter().map(|w| CString::new(*w).unwrap()).collect()
}

/// Wait until `pid` has set its traps (it writes a line when it has).
fn ready(out: &OwnedFd) {
    let mut byte = [0u8];
    // SAFETY: one byte into a local buffer, from an fd we own.
    assert_eq!(unsafe { libc::read(out.as_raw_fd(), byte.as_mut_ptr().cast(), 1) }, 1);
}

#[test]
fn a_spawn_and_its_exit_are_recorded_with_argv_and_time() {
    let _on = On::new();
    let (spawned, _out) = start(Session::NewGroup, "exit 3");
    let (mut child, pid) = child_of(spawned, Group::Parents);
    wait_reaped(&mut child);
    let records = records_of(pid);
    assert_eq!(records.len(), 2, "{records:?}");
    match &records[0] {
        Record::Spawned { argv: a, executable, pgid, .. } => {
            assert_eq!(**a, *argv(&["sh", "-c", "exit 3"]));
            assert_eq!(executable.as_bytes(), b"/bin/sh");
            assert_eq!(*pgid, Some(pid), "it leads its group");
        }
        other => panic!("{other:?}"),
    }
    match &records[1] {
        Record::Exited { exit, timed_out, ran, argv: a, .. } => {
            assert_eq!(exit.status, Some(3 << 8));
            assert!(exit.usage.is_some());
            assert!(timed_out.is_none());
            assert!(ran.is_some());
            assert_eq!(**a.as_ref().unwrap(), *argv(&["sh", "-c", "exit 3"]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_time_limit_records_its_sigterm_and_its_sigkill_with_their_reasons() {
    let _on = On::new();
    let (spawned, out) = start(Session::NewGroup, "trap '' TERM; echo ready; sleep 30");
    let pid = spawned.pid();
    let (mut child, _) = child_of(spawned, Group::Leads(pid));
    ready(&out);
    child.set_time_limits(TimeLimits { wall: Some(2.0), idle: None, grace: 0.5 }, 0.0);
    assert_eq!(child.on_deadline(2.0), Some(2.5));
    assert_eq!(child.on_deadline(2.5), None);
    wait_reaped(&mut child);
    let records = records_of(pid);
    let signals: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Signalled { target, signal, why, error, argv, .. } => {
                assert!(error.is_none());
                assert!(argv.is_some());
                Some((*target, *signal, why.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        signals,
        [
            (Target::Group(pid), libc::SIGTERM, Why::TimeLimit { kind: TimeoutKind::Wall, limit: 2.0 }),
            (Target::Group(pid), libc::SIGKILL, Why::Grace { kind: TimeoutKind::Wall, limit: 2.0, grace: 0.5 }),
        ]
    );
    match records.last() {
        Some(Record::Exited { exit, timed_out: Some(t), .. }) => {
            assert_eq!(exit.status, Some(libc::SIGKILL));
            assert!(t.killed);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_group_kills_and_a_program_s_signal_are_recorded() {
    let _on = On::new();
    // killGroupOnExit: the leader exits, its group is killed.
    let (spawned, _out) = start(Session::NewGroup, "sleep 30 </dev/null >/dev/null 2>&1 & exit 0");
    let pid = spawned.pid();
    let (mut child, _) = child_of(spawned, Group::Leads(pid));
    child.set_group(GroupPolicy { group: Group::Leads(pid), kill_on_exit: true, kill_on_lost: false });
    wait_reaped(&mut child);
    let whys: Vec<_> = records_of(pid)
        .into_iter()
        .filter_map(|r| if let Record::Signalled { why, .. } = r { Some(why) } else { None })
        .collect();
    assert_eq!(whys, [Why::KillOnExit]);

    // killGroupOnLost, and a signal a host sends for its own reason.
    let (spawned, _out) = start(Session::NewGroup, "sleep 30");
    let pid = spawned.pid();
    let (mut child, _) = child_of(spawned, Group::Leads(pid));
    child.set_group(GroupPolicy { group: Group::Leads(pid), kill_on_exit: false, kill_on_lost: true });
    let host = || Why::Host { code: "program".into(), text: "signalProcess".into() };
    child.signal_because(libc::SIGCONT, host).unwrap();
    child.detach_pipes();
    wait_reaped(&mut child);
    let signals: Vec<_> = records_of(pid)
        .into_iter()
        .filter_map(|r| {
            if let Record::Signalled { target, signal, why, .. } = r {
                Some((target, signal, why))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        signals,
        [(Target::Pid(pid), libc::SIGCONT, host()), (Target::Group(pid), libc::SIGKILL, Why::KillOnLost)]
    );
}

#[test]
fn a_child_the_spawn_gives_up_is_recorded_as_killed() {
    let _on = On::new();
    let (spawned, _out) = start(Session::Inherit, "sleep 30");
    let pid = spawned.pid();
    drop(spawned);
    let records = records_of(pid);
    assert!(matches!(records[0], Record::Spawned { pgid: None, .. }), "{records:?}");
    assert!(
        matches!(&records[1], Record::Signalled { target: Target::Pid(p), signal: libc::SIGKILL, why: Why::SpawnFailed, .. } if *p == pid),
        "{records:?}"
    );
    assert_eq!(records.len(), 2);
}

#[test]
fn nothing_is_recorded_while_records_are_off() {
    let _g = serial();
    debuglog::set_enabled(false);
    let (spawned, _out) = start(Session::NewGroup, "sleep 30");
    let pid = spawned.pid();
    let (mut child, _) = child_of(spawned, Group::Leads(pid));
    child.set_time_limits(TimeLimits { wall: Some(1.0), idle: None, grace: 0.0 }, 0.0);
    assert_eq!(child.on_deadline(1.0), None, "SIGKILL sent");
    wait_reaped(&mut child);
    assert_eq!(child.exit().unwrap().status, Some(libc::SIGKILL));
    assert!(records_of(pid).is_empty());

    // A child started while off and ending while on: its exit, by pid alone.
    let (spawned, _out) = start(Session::Inherit, "exit 0");
    let (mut child, pid) = child_of(spawned, Group::Parents);
    debuglog::set_enabled(true);
    wait_reaped(&mut child);
    debuglog::set_enabled(false);
    let records = records_of(pid);
    assert!(matches!(&records[..], [Record::Exited { ran: None, argv: None, .. }]), "{records:?}");
}
