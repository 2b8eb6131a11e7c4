//! Both spawn paths, on real children.

use super::*;
use crate::creds::Creds;
use crate::exec::ExecSpec;
use crate::reap::{try_wait_pidfd, Exit};
use crate::sys::pipe_cloexec;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::AsRawFd;

/// Nothing more to set up.
pub(crate) const NO_SETUP: Setup<'static> = Setup {
    signals: Signals::Default,
    keep_fds: false,
    umask: None,
    rlimits: &[],
    nice: None,
    affinity: None,
    parent_death_signal: None,
    no_new_privs: false,
    cgroup: None,
};

/// A request for `spec` with `plan` as its fds and nothing else asked for
/// (`Request { field: ..., ..request(&spec, &plan, &setup) }` for more).
pub(crate) fn request<'a>(spec: &'a ExecSpec, plan: &'a [(i32, i32)], setup: &'a Setup<'a>) -> Request<'a> {
    Request {
        exec: spec,
        cwd: None,
        stdio: Stdio::Fds(plan),
        creds: None,
        session: Session::Inherit,
        setup,
        method: None,
    }
}

fn run(method: Method, exe: &[u8], args: &[&[u8]], env: &[&[u8]], cwd: Option<&CStr>) -> (Exit, Vec<u8>) {
    let argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let envp: Vec<Vec<u8>> = env.iter().map(|a| a.to_vec()).collect();
    let spec = ExecSpec::new(exe, &argv, &envp, Some(b"/usr/bin:/bin"), None).unwrap();
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd()), (2, w.as_raw_fd())];
    let req = Request { cwd, method: Some(method), ..request(&spec, &plan, &NO_SETUP) };
    let mut child = spawn(&req).unwrap();
    drop(w);
    let mut out = Vec::new();
    std::fs::File::from(r).read_to_end(&mut out).unwrap();
    let pidfd = child.take_pidfd().expect("pidfd on this kernel");
    child.disarm();
    let exit = loop {
        if let Some(e) = try_wait_pidfd(pidfd.as_raw_fd()).unwrap() {
            break e;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    (exit, out)
}

#[test]
fn both_methods_run_a_program_with_args_env_and_cwd() {
    for m in [Method::PosixSpawn, Method::CloneVfork] {
        let (exit, out) =
            run(m, b"sh", &[b"sh", b"-c", b"echo \"$0 $FOO\" $(pwd); exit 3", b"zero"], &[b"FOO=bar"], Some(c"/tmp"));
        assert_eq!(exit.status, Some(3 << 8), "{m:?}");
        assert_eq!(out, b"zero bar /tmp\n", "{m:?}");
    }
}

#[test]
fn only_mapped_fds_and_default_signals_reach_the_child() {
    for m in [Method::PosixSpawn, Method::CloneVfork] {
        let (_, out) = run(
            m,
            b"/bin/sh",
            &[b"sh", b"-c", b"ls /proc/self/fd | tr '\\n' ' '; grep -E 'SigIgn|SigBlk' /proc/self/status"],
            &[b"PATH=/usr/bin:/bin"],
            None,
        );
        let text = String::from_utf8(out).unwrap();
        // fd 0 is closed in the child, so ls's own directory fd takes it.
        assert!(text.starts_with("0 1 2 SigBlk"), "{m:?}: {text}");
        // Signals 1-31 at default; glibc's posix_spawn leaves its two internal
        // signals (32, 33) ignored, which the new program's libc resets.
        let ign = text.split("SigIgn:\t").nth(1).unwrap().trim();
        let ign = u64::from_str_radix(ign, 16).unwrap();
        assert_eq!(ign & 0x7fff_ffff, 0, "{m:?}: {text}");
        assert!(text.contains("SigBlk:\t0000000000000000"), "{m:?}: {text}");
    }
}

#[test]
fn exec_failures_are_reported_with_errno_and_path() {
    for m in [Method::PosixSpawn, Method::CloneVfork] {
        let spec = ExecSpec::new(b"/no/such/prog", &[b"x".to_vec()], &[], None, None).unwrap();
        let plan: [(i32, i32); 0] = [];
        let req = Request { method: Some(m), ..request(&spec, &plan, &NO_SETUP) };
        let e = spawn(&req).unwrap_err();
        assert_eq!((e.stage, e.errno), (Stage::Exec, libc::ENOENT), "{m:?}");
        assert_eq!(e.path.as_deref(), Some(c"/no/such/prog"));
        let spec = ExecSpec::new(b"/etc/passwd", &[b"x".to_vec()], &[], None, None).unwrap();
        let req = Request { method: Some(m), ..request(&spec, &plan, &NO_SETUP) };
        assert_eq!(spawn(&req).unwrap_err().errno, libc::EACCES, "{m:?}");
    }
}

#[test]
fn credentials_always_take_the_clone_path() {
    let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
    let plan: [(i32, i32); 0] = [];
    let creds = Creds { uid: Some(65534), gid: Some(65534), groups: Some(vec![65534]) };
    for forced in [None, Some(Method::PosixSpawn), Some(Method::CloneVfork)] {
        let req = Request { creds: Some(&creds), method: forced, ..request(&spec, &plan, &NO_SETUP) };
        assert_eq!(method_for(&req), Method::CloneVfork, "{forced:?}");
    }
}

#[test]
fn clone_path_reports_chdir_failure() {
    let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
    let plan: [(i32, i32); 0] = [];
    let req =
        Request { cwd: Some(c"/no/such/dir"), method: Some(Method::CloneVfork), ..request(&spec, &plan, &NO_SETUP) };
    let e = spawn(&req).unwrap_err();
    assert_eq!((e.stage, e.errno), (Stage::Chdir, libc::ENOENT));
}

#[test]
fn a_dropped_guard_kills_and_reaps_the_child() {
    let spec = ExecSpec::new(b"/bin/sleep", &[b"sleep".to_vec(), b"30".to_vec()], &[], None, None).unwrap();
    let plan: [(i32, i32); 0] = [];
    for m in [Method::PosixSpawn, Method::CloneVfork] {
        let req = Request { method: Some(m), ..request(&spec, &plan, &NO_SETUP) };
        let child = spawn(&req).unwrap();
        let pid = child.pid();
        drop(child);
        // Reaped: the pid is no child of ours any more.
        assert_eq!(crate::reap::try_wait_pid(pid).unwrap(), Some(Exit::UNKNOWN), "{m:?}");
    }
}

fn session_and_group(method: Method, session: Session) -> (i32, i32, i32) {
    let spec = sh("ps -o sid=,pgid=,pid= -p $$");
    let (exit, out) = output_of(&Request { session, method: Some(method), ..request(&spec, &[], &NO_SETUP) });
    assert_eq!(exit.status, Some(0), "{out}");
    let v: Vec<i32> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

#[test]
fn sessions_and_process_groups_on_both_paths() {
    // SAFETY: plain queries of our own ids.
    let (my_sid, my_pgid) = unsafe { (libc::getsid(0), libc::getpgid(0)) };
    for m in [Method::PosixSpawn, Method::CloneVfork] {
        let (sid, pgid, pid) = session_and_group(m, Session::Inherit);
        assert_eq!((sid, pgid), (my_sid, my_pgid), "{m:?} {pid}");
        let (sid, pgid, pid) = session_and_group(m, Session::New);
        assert_eq!((sid, pgid), (pid, pid), "{m:?}");
        let (sid, pgid, pid) = session_and_group(m, Session::NewGroup);
        assert_eq!((sid, pgid), (my_sid, pid), "{m:?}");
    }
}

#[test]
fn credentials_leave_the_parent_dumpable_and_the_child_in_its_own_session() {
    if !nix::unistd::Uid::effective().is_root() {
        return;
    }
    // SAFETY: PR_GET_DUMPABLE only reads.
    let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    let spec = ExecSpec::new(b"/bin/true", &[b"true".to_vec()], &[], None, None).unwrap();
    let plan: [(i32, i32); 0] = [];
    let creds = Creds { uid: Some(65534), gid: Some(65534), groups: Some(vec![65534]) };
    let req = Request { creds: Some(&creds), ..request(&spec, &plan, &NO_SETUP) };
    let child = spawn(&req).unwrap();
    let pid = child.pid();
    child.disarm();
    assert_eq!(crate::reap::wait_blocking(pid).unwrap().status, Some(0));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, before);
}

/// `sh -c script` with `PATH=/usr/bin:/bin`.
pub(crate) fn sh(script: &str) -> ExecSpec {
    let argv = [b"sh".to_vec(), b"-c".to_vec(), script.as_bytes().to_vec()];
    ExecSpec::new(b"/bin/sh", &argv, &[b"PATH=/usr/bin:/bin".to_vec()], None, None).unwrap()
}

/// Run `req` (its fds replaced: stdout and stderr on one pipe) to its end:
/// how it exited and what it wrote.
pub(crate) fn output_of(req: &Request<'_>) -> (Exit, String) {
    let (r, w) = pipe_cloexec().unwrap();
    let plan = [(1, w.as_raw_fd()), (2, w.as_raw_fd())];
    let child = spawn(&Request { stdio: Stdio::Fds(&plan), ..*req }).unwrap();
    drop(w);
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    let pid = child.pid();
    child.disarm();
    (crate::reap::wait_blocking(pid).unwrap(), out)
}

/// Run `script` under /bin/sh with `setup`; its output.
fn sh_with(setup: &Setup<'_>, script: &str) -> String {
    let spec = sh(script);
    let (exit, out) = output_of(&request(&spec, &[], setup));
    assert_eq!(exit.status, Some(0), "{out}");
    out
}

#[test]
fn umask_limits_priority_and_affinity_are_set_in_the_child() {
    let limits = [(libc::RLIMIT_NOFILE as i32, 77, 88), (libc::RLIMIT_CORE as i32, 0, 0)];
    let cpus = [0usize];
    let setup = Setup {
        umask: Some(0o027),
        rlimits: &limits,
        nice: Some(7),
        affinity: Some(&cpus),
        no_new_privs: true,
        ..Setup::default()
    };
    let out = sh_with(
        &setup,
        "umask; ulimit -Sn; ulimit -Hn; ulimit -c; cut -d' ' -f19 /proc/self/stat; \
         grep -E 'NoNewPrivs|Cpus_allowed_list' /proc/self/status",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..5], ["0027", "77", "88", "0", "7"], "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Cpus_allowed_list:\t0\n"), "{out}");
}

#[test]
fn ignored_signals_stay_ignored_only_when_asked() {
    // SAFETY: a process-wide disposition, restored below; the test runner
    // ignores SIGPIPE already, and SIGHUP is nothing this test process uses.
    let old = unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let mask = |setup: &Setup<'_>| {
        let out = sh_with(setup, "grep SigIgn /proc/self/status");
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let bit = |sig: i32| 1u64 << (sig - 1);
    let all_default = mask(&NO_SETUP);
    let popen = mask(&Setup { signals: Signals::KeepIgnored { restore: true }, ..Setup::default() });
    let inherit = mask(&Setup { signals: Signals::KeepIgnored { restore: false }, ..Setup::default() });
    // SAFETY: restoring what was there.
    unsafe { libc::signal(libc::SIGHUP, old) };
    assert_eq!(all_default & (bit(libc::SIGHUP) | bit(libc::SIGPIPE)), 0);
    assert_eq!(popen & (bit(libc::SIGHUP) | bit(libc::SIGPIPE)), bit(libc::SIGHUP));
    assert_eq!(inherit & (bit(libc::SIGHUP) | bit(libc::SIGPIPE)), bit(libc::SIGHUP) | bit(libc::SIGPIPE));
}

#[test]
fn keep_fds_leaves_the_parents_inheritable_fds_open() {
    let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
    // An inheritable fd of ours, named by no entry.
    let fd = nix::unistd::dup(&w).unwrap();
    let raw = fd.as_raw_fd();
    let script = format!("test -e /proc/self/fd/{raw} && echo open || echo closed");
    let kept = sh_with(&Setup { keep_fds: true, ..Setup::default() }, &script);
    let closed = sh_with(&Setup::default(), &script);
    assert_eq!((kept.trim(), closed.trim()), ("open", "closed"));
    drop((r, w, fd));
}

#[test]
fn a_parent_death_signal_is_armed() {
    let setup = Setup { parent_death_signal: Some(libc::SIGUSR1), ..Setup::default() };
    let out = sh_with(&setup, "echo alive");
    assert_eq!(out.trim(), "alive", "set, and the parent checked alive");
}

#[test]
fn a_child_can_start_in_a_cgroup() {
    let base = std::path::Path::new("/sys/fs/cgroup/unified");
    let dir = base.join(format!("ferroproc-test-{}", std::process::id()));
    if !nix::unistd::Uid::effective().is_root() || std::fs::create_dir(&dir).is_err() {
        eprintln!("skipped: needs root and a writable cgroup v2 hierarchy at {}", base.display());
        return;
    }
    let fd = std::fs::File::open(&dir).unwrap();
    let setup = Setup { cgroup: Some(fd.as_raw_fd()), ..Setup::default() };
    let out = sh_with(&setup, "cat /proc/self/cgroup | grep '^0::'");
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(out.trim().ends_with(name), "{out}");
    drop(fd);
    std::fs::remove_dir(&dir).unwrap();
}
