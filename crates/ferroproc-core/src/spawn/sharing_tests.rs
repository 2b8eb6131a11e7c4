//! What spawns share (fd channels, stacks, the credential window) and what
//! they must not: a child gets exactly its own fds, whatever happens to
//! another spawn; no spawn waits for another's child; a credential child
//! shares our memory only where that is safe. On real children.

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;

use super::clone::{TestHook, HOOK};
use super::tests::{output_of, request, sh, NO_SETUP};
use super::*;
use crate::creds::Creds;
use crate::exec::ExecSpec;
use crate::sys::pipe_cloexec;

/// Spawn `req` with `hook` in the child.
fn spawn_hooked(req: &Request<'_>, hook: TestHook) -> Result<Spawned, SpawnError> {
    HOOK.with(|h| h.set(hook));
    let r = spawn(req);
    HOOK.with(|h| h.set(TestHook::None));
    r
}

/// Read `r` to its end, or give up after `secs` (a pipe someone else still
/// holds never ends): what was read, and whether the end came.
fn read_to_end_within(r: OwnedFd, secs: i32) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd { fd: r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd on the stack.
        if unsafe { libc::poll(&mut pfd, 1, secs * 1000) } <= 0 {
            return (out, false);
        }
        match crate::sys::read(r.as_raw_fd(), &mut buf).unwrap() {
            0 => return (out, true),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn a_child_killed_before_it_takes_its_fds_leaves_nothing_for_the_next_one() {
    let spec = sh("echo mine");
    for round in 0..3 {
        // The first child dies (SIGKILL) between its clone and its receive,
        // its fds still in the channel.
        let (r1, w1) = pipe_cloexec().unwrap();
        let plan = [(1, w1.as_raw_fd())];
        let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &plan, &NO_SETUP) };
        let child = spawn_hooked(&req, TestHook::KillBeforeReceive).expect("started, then killed");
        let pid = child.pid();
        child.disarm();
        assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(libc::SIGKILL), "round {round}");
        drop(w1);
        // Nothing of the dead child's is held anywhere: its pipe ends now.
        assert_eq!(read_to_end_within(r1, 10), (Vec::new(), true), "round {round}");
        // The next child gets exactly its own fds.
        let (r2, w2) = pipe_cloexec().unwrap();
        let plan = [(1, w2.as_raw_fd())];
        let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &plan, &NO_SETUP) };
        let child = spawn(&req).unwrap();
        let pid = child.pid();
        child.disarm();
        drop(w2);
        assert_eq!(read_to_end_within(r2, 10), (b"mine\n".to_vec(), true), "round {round}");
        assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(0));
    }
}

#[test]
fn a_clone_that_fails_after_the_send_leaves_the_channel_clean() {
    // clone3 refuses a cgroup fd that is no cgroup v2 directory: the fds
    // were sent already; the lease drains them.
    let not_a_cgroup = std::fs::File::open("/tmp").unwrap();
    let setup = Setup { cgroup: Some(not_a_cgroup.as_raw_fd()), ..Setup::default() };
    fails_then_the_next_gets_its_own(&setup, Stage::Cgroup);
}

#[test]
fn a_step_that_fails_in_the_parent_fails_before_anything_is_sent() {
    // A CPU number past the set: the spawn fails in the parent, before the
    // fds go (the core's own check; Python refuses it earlier).
    let cpus = [1 << 20];
    let setup = Setup { affinity: Some(&cpus), ..Setup::default() };
    fails_then_the_next_gets_its_own(&setup, Stage::Affinity);
}

/// A spawn with `setup` fails at `stage`; its fds are held nowhere, and
/// the next spawn's child gets exactly its own.
fn fails_then_the_next_gets_its_own(setup: &Setup<'_>, stage: Stage) {
    let spec = sh("echo mine");
    let (r1, w1) = pipe_cloexec().unwrap();
    let plan = [(1, w1.as_raw_fd())];
    let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &plan, setup) };
    assert_eq!(spawn(&req).unwrap_err().stage, stage);
    drop(w1);
    assert_eq!(read_to_end_within(r1, 10), (Vec::new(), true), "the failed spawn's fds are held somewhere");
    let (r2, w2) = pipe_cloexec().unwrap();
    let plan = [(1, w2.as_raw_fd())];
    let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &plan, &NO_SETUP) };
    let child = spawn(&req).unwrap();
    let pid = child.pid();
    child.disarm();
    drop(w2);
    assert_eq!(read_to_end_within(r2, 10), (b"mine\n".to_vec(), true));
    assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(0));
}

#[test]
fn a_stale_message_is_refused_by_the_child() {
    // A message for another spawn left in a channel (what a lost drain
    // would leave): the child must refuse it, never use its fds.
    let (r_other, w_other) = pipe_cloexec().unwrap();
    let mut lease = channel::take().unwrap();
    lease.send(&[w_other.as_raw_fd()]).unwrap();
    let recv = lease.recv_fd();
    // The child expects the next sequence number, not this message's.
    let (_r, w) = pipe_cloexec().unwrap();
    let control_len = channel::control_len(1);
    let mut control = vec![0u64; control_len.div_ceil(8)];
    let expect = channel::Header { pid: std::process::id(), count: 1, seq: u64::MAX };
    // SAFETY: a plain call in this thread (the child's side of the check).
    let ok = unsafe { channel::child_receive(recv, control.as_mut_ptr().cast(), control_len, &expect) };
    assert!(!ok);
    assert_eq!(crate::sys::errno(), libc::EBADMSG);
    // (The fds it received are in our table: close them as the dying child would.)
    // SAFETY: walking the control message recvmsg filled in.
    unsafe {
        let msg = libc::msghdr {
            msg_control: control.as_mut_ptr().cast(),
            msg_controllen: control_len,
            ..std::mem::zeroed()
        };
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        libc::close(libc::CMSG_DATA(cmsg).cast::<i32>().read_unaligned());
    }
    drop((lease, w, w_other));
    // No other message waits: the receive does not block, it says EAGAIN.
    let lease = channel::take().unwrap();
    // SAFETY: as above.
    let ok = unsafe { channel::child_receive(lease.recv_fd(), control.as_mut_ptr().cast(), control_len, &expect) };
    assert!(!ok);
    assert_eq!(crate::sys::errno(), libc::EAGAIN);
    drop(r_other);
}

/// Tests whose child stops itself take turns (each looks for a stopped child of ours).
static STOPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_child_stuck_before_its_exec_holds_up_no_other_spawn() {
    let _turn = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
    // One spawn's child stops itself just before exec: that spawn waits
    // (CLONE_VFORK) until it execs; every other spawn goes on.
    let (tx, rx) = std::sync::mpsc::channel();
    let stuck = std::thread::spawn(move || {
        let spec = sh("exit 7");
        let (_r, w) = pipe_cloexec().unwrap();
        let plan = [(1, w.as_raw_fd())];
        let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &plan, &NO_SETUP) };
        let child = spawn_hooked(&req, TestHook::StopBeforeExec).unwrap();
        let pid = child.pid();
        child.disarm();
        tx.send(crate::reap::wait_blocking(pid).unwrap()).unwrap();
    });
    let stopped = (0..1000).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        stopped_child()
    });
    let stopped = stopped.expect("the hooked child stopped");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..20 {
            let spec = sh("echo ok");
            let (out, _) = output_of(&Request { method: Some(Method::CloneVfork), ..request(&spec, &[], &NO_SETUP) });
            assert_eq!(out.status, Some(0));
        }
        done_tx.send(()).unwrap();
    });
    let others = done_rx.recv_timeout(std::time::Duration::from_secs(30));
    // SAFETY: our own stopped child: let it go on.
    unsafe { libc::kill(stopped, libc::SIGCONT) };
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap().status, Some(7 << 8));
    stuck.join().unwrap();
    assert!(others.is_ok(), "other spawns waited for a child stuck before its exec");
}

/// A child of ours that is stopped (state T), if any.
fn stopped_child() -> Option<libc::pid_t> {
    let me = std::process::id() as libc::pid_t;
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: libc::pid_t = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        (rest.first() == Some(&"T") && rest.get(1)?.parse::<libc::pid_t>().ok()? == me).then_some(pid)
    })
}

#[test]
fn a_forced_posix_spawn_takes_the_clone_path_where_libc_cannot_do_it() {
    let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
    let plan = [(0, 0)];
    let forced = Request { method: Some(Method::PosixSpawn), ..request(&spec, &plan, &NO_SETUP) };
    let full = caps();
    let old_glibc = sys::Caps { addchdir: full.addchdir, addclosefrom: None, pidfd: true, close_range_unshare: false };
    assert_eq!(method_with(&forced, full), Method::PosixSpawn);
    assert_eq!(method_with(&forced, &old_glibc), Method::CloneVfork);
    let no_chdir = sys::Caps { addchdir: None, ..old_glibc };
    let no_chdir = sys::Caps { addclosefrom: full.addclosefrom, ..no_chdir };
    assert_eq!(method_with(&Request { cwd: Some(c"/"), ..forced }, &no_chdir), Method::CloneVfork);
    assert_eq!(method_with(&forced, &no_chdir), Method::PosixSpawn);
}

#[test]
fn the_guard_kills_and_reaps_by_pidfd_never_a_reused_pid() {
    // The guard's child is reaped by someone else, and its pid goes to a
    // new child of ours (steered there with ns_last_pid): dropping the
    // guard must leave that one alone.
    let Ok(last_pid) = std::fs::OpenOptions::new().write(true).open("/proc/sys/kernel/ns_last_pid") else {
        eprintln!("skipped: /proc/sys/kernel/ns_last_pid is not writable");
        return;
    };
    let sleeper = ExecSpec::new(b"/bin/sleep", &[b"sleep".to_vec(), b"30".to_vec()], &[], None, None).unwrap();
    let req = Request { method: Some(Method::CloneVfork), ..request(&sleeper, &[], &NO_SETUP) };
    for _ in 0..50 {
        let guard = spawn(&req).unwrap();
        let pid = guard.pid();
        // Someone else reaps it.
        // SAFETY: signalling and reaping our own child by pid.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, ptr::null_mut(), 0);
        }
        use std::io::Write;
        let _ = (&last_pid).write_all(format!("{}", pid - 1).as_bytes());
        let next = spawn(&req).unwrap();
        let reused = next.pid() == pid;
        drop(guard);
        let alive = crate::reap::try_wait_pid(next.pid()).unwrap().is_none();
        drop(next);
        if reused {
            assert!(alive, "the guard killed the new owner of its child's pid");
            return;
        }
    }
    eprintln!("skipped: the pid was never reused (a busy machine)");
}

#[test]
fn where_sharing_memory_is_unsafe_a_credential_child_gets_a_copy() {
    use super::clone::{run, Files};
    use std::sync::atomic::{AtomicU32, Ordering};
    // The child stores 1 at an address of ours: we see it only if it shares
    // our memory.
    let flag = Box::new(AtomicU32::new(0));
    let addr = flag.as_ptr() as usize;
    let spec = sh("ls /proc/self/fd | tr '\\n' ' '");
    for (separate, seen) in [(false, 1), (true, 0)] {
        flag.store(0, Ordering::SeqCst);
        let (r, w) = pipe_cloexec().unwrap();
        let plan = [(1, w.as_raw_fd())];
        let req = request(&spec, &plan, &NO_SETUP);
        HOOK.with(|h| h.set(TestHook::Poke(addr)));
        let child = run(&req, Files::Copied, separate, None);
        HOOK.with(|h| h.set(TestHook::None));
        let child = child.unwrap();
        drop(w);
        let (out, _) = read_to_end_within(r, 10);
        let pid = child.pid();
        child.disarm();
        assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(0));
        assert_eq!(flag.load(Ordering::SeqCst), seen, "separate memory: {separate}");
        // Only its fds (the error pipe went at exec); 0 is ls's own.
        assert_eq!(String::from_utf8_lossy(&out), "0 1 ", "separate memory: {separate}");
    }
    // Its failures come back on the error pipe, each step named.
    let missing = ExecSpec::new(b"/no/such/prog", &[b"x".to_vec()], &[], None, None).unwrap();
    let e = run(&request(&missing, &[], &NO_SETUP), Files::Copied, true, None).unwrap_err();
    assert_eq!((e.stage, e.errno, e.path.as_deref()), (Stage::Exec, libc::ENOENT, Some(c"/no/such/prog")));
    let e = run(&Request { cwd: Some(c"/no/such/dir"), ..request(&spec, &[], &NO_SETUP) }, Files::Copied, true, None)
        .unwrap_err();
    assert_eq!((e.stage, e.errno), (Stage::Chdir, libc::ENOENT));
    let limits = [(libc::RLIMIT_NOFILE as i32, 64, 32)];
    let setup = Setup { rlimits: &limits, ..Setup::default() };
    let e = run(&request(&spec, &[], &setup), Files::Copied, true, None).unwrap_err();
    assert_eq!((e.stage, e.errno, e.entry), (Stage::Rlimit, libc::EINVAL, Some(0)));
}

#[test]
fn a_credential_child_with_its_own_memory_runs_as_the_user() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let spec = sh("id -u; id -g; id -G");
    let creds = Creds { uid: Some(65534), gid: Some(65534), groups: Some(vec![65534]) };
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = Request { creds: Some(&creds), ..request(&spec, &plan, &NO_SETUP) };
    let child = super::clone::run(&req, super::clone::Files::Copied, true, None).unwrap();
    drop(w);
    let (out, _) = read_to_end_within(r, 10);
    let pid = child.pid();
    child.disarm();
    assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(0));
    assert_eq!(String::from_utf8_lossy(&out), "65534\n65534\n65534\n");
}

/// Run `script` through a spawner thread (whatever our channel's number),
/// stdout on a pipe: its exit and output.
fn through_spawner(script: &str, setup: &Setup<'_>) -> (crate::reap::Exit, String) {
    let spec = sh(script);
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd())];
    let req = request(&spec, &plan, setup);
    let mut child = super::spawner::spawn(&req).expect("a spawner").unwrap();
    drop(w);
    let (out, _) = read_to_end_within(r, 10);
    let pidfd = child.take_pidfd().expect("a pidfd from the spawner");
    child.disarm();
    (crate::reap::wait_blocking_pidfd(pidfd.as_raw_fd()).unwrap(), String::from_utf8(out).unwrap())
}

#[test]
fn a_spawner_thread_starts_children_with_exactly_their_fds() {
    let before = std::fs::read_dir("/proc/self/fd").unwrap().count();
    for _ in 0..3 {
        let (exit, out) = through_spawner("ls /proc/self/fd | tr '\\n' ' '; exit 5", &NO_SETUP);
        assert_eq!(exit.status, Some(5 << 8));
        // 0 is ls's own directory.
        assert_eq!(out, "0 1 ");
    }
    // One spawner (its end of one socket pair) at most, whichever test ran.
    let after = std::fs::read_dir("/proc/self/fd").unwrap().count();
    assert!(after <= before + 4, "{before} fds before, {after} after");
    let spawners = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "ferroproc-spawn"))
        .count();
    assert!((1..=4).contains(&spawners), "{spawners} spawner threads");
    // Its failures are the child's, named as on any path.
    let missing = ExecSpec::new(b"/no/such/prog", &[b"x".to_vec()], &[], None, None).unwrap();
    let e = super::spawner::spawn(&request(&missing, &[], &NO_SETUP)).unwrap().unwrap_err();
    assert_eq!((e.stage, e.errno, e.path.as_deref()), (Stage::Exec, libc::ENOENT, Some(c"/no/such/prog")));
    let (closed, _) = pipe_cloexec().unwrap();
    let bad = [(1, closed.as_raw_fd() + 1000)];
    let e = super::spawner::spawn(&request(&missing, &bad, &NO_SETUP)).unwrap().unwrap_err();
    assert_eq!((e.stage, e.errno, e.entry), (Stage::Fds, libc::EBADF, Some(0)));
}

#[test]
fn a_spawner_gives_the_child_what_the_calling_thread_would() {
    // A thread that lowered its own priority: its children must be as
    // nice as it is, not as the spawner thread made by another thread.
    let _ = through_spawner("true", &NO_SETUP);
    let (exit, out) = std::thread::spawn(|| {
        // SAFETY: this thread's own nice value.
        let mine = unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (now + 3).min(19));
            libc::getpriority(libc::PRIO_PROCESS, 0)
        };
        let (exit, out) = through_spawner("cut -d' ' -f19 /proc/self/stat", &NO_SETUP);
        (exit, (out, mine))
    })
    .join()
    .unwrap();
    assert_eq!(exit.status, Some(0));
    assert_eq!(out.0.trim(), out.1.to_string());
}

#[test]
fn a_spawner_starts_a_child_in_its_cgroup() {
    let base = std::path::Path::new("/sys/fs/cgroup/unified");
    let dir = base.join(format!("ferroproc-spawner-{}", std::process::id()));
    if !nix::unistd::Uid::effective().is_root() || std::fs::create_dir(&dir).is_err() {
        eprintln!("skipped: needs root and a writable cgroup v2 hierarchy at {}", base.display());
        return;
    }
    let fd = std::fs::File::open(&dir).unwrap();
    let setup = Setup { cgroup: Some(fd.as_raw_fd()), ..Setup::default() };
    let (exit, out) = through_spawner("grep '^0::' /proc/self/cgroup", &setup);
    assert_eq!(exit.status, Some(0));
    assert!(out.trim().ends_with(dir.file_name().unwrap().to_str().unwrap()), "{out}");
    drop(fd);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn until_its_exec_the_child_blocks_every_signal_and_has_no_handler() {
    let _turn = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
    // glibc's own posix_spawn blocks all 64 with the raw syscall; its
    // pthread_sigmask leaves its internal 32 and 33 out, whose handlers
    // would run in a child sharing our memory.
    let (tx, rx) = std::sync::mpsc::channel();
    let spawner = std::thread::spawn(move || {
        let spec = sh("exit 0");
        let req = Request { method: Some(Method::CloneVfork), ..request(&spec, &[], &NO_SETUP) };
        let child = spawn_hooked(&req, TestHook::StopBeforeExec).unwrap();
        let pid = child.pid();
        child.disarm();
        tx.send(crate::reap::wait_blocking(pid).unwrap()).unwrap();
    });
    let pid = (0..1000)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            stopped_child()
        })
        .expect("the hooked child stopped");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // SAFETY: our own stopped child: let it go on.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap().status, Some(0));
    spawner.join().unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let unblockable = (1u64 << (libc::SIGKILL - 1)) | (1u64 << (libc::SIGSTOP - 1));
    assert_eq!(field("SigBlk:"), !unblockable, "{status}");
    assert_eq!(field("SigCgt:"), 0, "{status}");
}

#[test]
fn the_child_calls_no_glibc_cancellation_point() {
    // It shares the parent thread's TLS: a cancellation point would act on
    // a cancellation pending for that thread. Every fd or wait call in the
    // child's code is a raw syscall.
    let source = include_str!("child.rs");
    // Less glibc's sigaction, used only where the kernel's struct is unknown.
    let fallback = source.find("#[cfg(not(any(").expect("the fallback sigaction module");
    let fallback_end = fallback + source[fallback..].find("\n}\n").unwrap();
    let child = format!("{}{}", &source[..fallback], &source[fallback_end..]);
    assert!(child.contains("fn child_steps"));
    let channel = include_str!("channel.rs");
    let receive = &channel[channel.find("pub(super) unsafe fn child_receive").unwrap()..];
    let receive = &receive[..receive.find("\n}\n").unwrap()];
    for call in ["open", "openat", "close", "read", "write", "recvmsg", "sendmsg", "fcntl", "nanosleep", "waitpid"] {
        let pattern = format!("libc::{call}(");
        assert!(!child.contains(&pattern) && !receive.contains(&pattern), "the child calls {pattern}");
    }
}

#[test]
fn with_suid_dumpable_1_a_switched_child_is_not_dumpable_before_its_exec() {
    // A child with its own copy of our memory: the switch leaves it
    // dumpable (that is what fs.suid_dumpable=1 means), so it makes itself
    // undumpable: /proc/<pid>/* then belongs to root, not to the new user.
    let setting = std::path::Path::new("/proc/sys/fs/suid_dumpable");
    let Ok(old) = std::fs::read_to_string(setting) else { return };
    if !nix::unistd::Uid::effective().is_root() || std::fs::write(setting, &old).is_err() {
        eprintln!("skipped: needs root and a writable fs.suid_dumpable");
        return;
    }
    let _turn = STOPPING.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::write(setting, "1\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let spawner = std::thread::spawn(move || {
        let spec = sh("exit 0");
        let creds = Creds { uid: Some(65534), gid: Some(65534), groups: Some(vec![65534]) };
        let req = Request { creds: Some(&creds), ..request(&spec, &[], &NO_SETUP) };
        HOOK.with(|h| h.set(TestHook::StopBeforeExec));
        let child = super::clone::run(&req, super::clone::Files::Copied, true, None);
        HOOK.with(|h| h.set(TestHook::None));
        let child = child.unwrap();
        let pid = child.pid();
        child.disarm();
        tx.send(crate::reap::wait_blocking(pid).unwrap()).unwrap();
    });
    let pid = (0..1000).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        stopped_child()
    });
    let owner =
        pid.map(|pid| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(format!("/proc/{pid}/status")).unwrap()));
    std::fs::write(setting, &old).unwrap();
    if let Some(pid) = pid {
        // SAFETY: our own stopped child: let it go on.
        unsafe { libc::kill(pid, libc::SIGCONT) };
    }
    assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap().status, Some(0));
    spawner.join().unwrap();
    assert_eq!(owner, Some(0), "the child's /proc entry belongs to the user it switched to");
}
