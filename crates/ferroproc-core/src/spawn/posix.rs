//! The `posix_spawn` path: glibc starts the child with
//! `clone(CLONE_VM | CLONE_VFORK)` and applies our file actions and
//! attributes, so its cost does not grow with the parent's memory.

use std::ffi::{c_char, CString};

use super::{Request, Session, Signals, SpawnError, Spawned, Stage, Stdio};
use crate::exec::ptr_array;
use crate::fdplan::Action;
use crate::sys::caps;

struct FileActions(libc::posix_spawn_file_actions_t);

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `spawn` before this value exists.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

struct Attr(libc::posix_spawnattr_t);

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised in `spawn` before this value exists.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

fn check(r: libc::c_int) -> Result<(), SpawnError> {
    if r == 0 {
        Ok(())
    } else {
        Err(SpawnError::at(Stage::Spawn, r))
    }
}

/// Why a `posix_spawn` that failed with `errno` failed: its chdir file
/// action and its exec report through the same errno, so a working
/// directory that cannot be entered is looked at again here.
fn failed_stage(req: &Request<'_>, errno: libc::c_int) -> Stage {
    match req.cwd {
        Some(cwd) if matches!(errno, libc::EACCES | libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => {
            // SAFETY: a NUL-terminated path; access only queries.
            if unsafe { libc::access(cwd.as_ptr(), libc::X_OK) } != 0 {
                Stage::Chdir
            } else {
                Stage::Exec
            }
        }
        _ => Stage::Exec,
    }
}

pub(super) fn spawn(req: &Request<'_>) -> Result<Spawned, SpawnError> {
    let c = caps();
    let plan = match req.stdio {
        Stdio::Fds(entries) => Some(super::prepare_fds(entries)?),
        Stdio::Pty(_) => None,
    };
    // `method_for` sends a request here only when this libc has what it
    // needs; should it not, the spawn fails rather than the process.
    let missing = || SpawnError::at(Stage::Spawn, libc::ENOSYS);
    let closefrom = c.addclosefrom.ok_or_else(missing)?;
    // SAFETY: zeroed storage is immediately initialised by the *_init calls,
    // and the wrappers destroy it exactly once.
    let mut fa = FileActions(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    check(unsafe { libc::posix_spawn_file_actions_init(&mut fa.0) })?;
    // SAFETY: as above.
    let mut attr = Attr(unsafe { std::mem::zeroed() });
    // SAFETY: as above.
    check(unsafe { libc::posix_spawnattr_init(&mut attr.0) })?;

    // SAFETY: (this block) file actions and attributes are initialised; every
    // pointer passed is a NUL-terminated string or sigset that outlives the call.
    unsafe {
        if let Some(cwd) = req.cwd {
            let chdir = c.addchdir.ok_or_else(missing)?;
            check(chdir(&mut fa.0, cwd.as_ptr()))?;
        }
        match (&req.stdio, &plan) {
            (Stdio::Fds(_), Some(plan)) => {
                for a in plan.actions() {
                    match a {
                        Action::Dup2 { src, dst } => {
                            check(libc::posix_spawn_file_actions_adddup2(&mut fa.0, src, dst))?;
                        }
                        Action::CloseRange { first, last } => {
                            for fd in first..=last {
                                check(libc::posix_spawn_file_actions_addclose(&mut fa.0, fd))?;
                            }
                        }
                        // glibc refuses a start at or above the fd limit,
                        // where there is nothing to close anyway.
                        Action::CloseFrom(n) if n >= crate::sys::open_file_limit() => {}
                        Action::CloseFrom(n) => check(closefrom(&mut fa.0, n))?,
                    }
                }
            }
            (Stdio::Fds(_), None) => unreachable!("prepared above"),
            (Stdio::Pty(path), _) => {
                check(libc::posix_spawn_file_actions_addopen(&mut fa.0, 0, path.as_ptr(), libc::O_RDWR, 0))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut fa.0, 0, 1))?;
                check(libc::posix_spawn_file_actions_adddup2(&mut fa.0, 0, 2))?;
                check(closefrom(&mut fa.0, 3))?;
            }
        }
        let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        // (Creds and every other `Setup` field send a request to the clone
        // path: only the signal rules remain here.)
        match req.effective_session() {
            Session::Inherit => {}
            Session::New => flags |= libc::POSIX_SPAWN_SETSID as libc::c_int,
            Session::NewGroup => {
                flags |= libc::POSIX_SPAWN_SETPGROUP;
                check(libc::posix_spawnattr_setpgroup(&mut attr.0, 0))?;
            }
            Session::JoinGroup(pgid) => {
                flags |= libc::POSIX_SPAWN_SETPGROUP;
                check(libc::posix_spawnattr_setpgroup(&mut attr.0, pgid))?;
            }
        }
        check(libc::posix_spawnattr_setflags(&mut attr.0, flags as libc::c_short))?;
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(libc::posix_spawnattr_setsigmask(&mut attr.0, &empty))?;
        // The signals set back to default: every one (CPython ignores SIGPIPE
        // and SIGXFSZ, and SIG_IGN would otherwise survive exec), or, as
        // Popen, just those two (handled ones are reset by exec itself).
        let mut all: libc::sigset_t = std::mem::zeroed();
        match req.setup.signals {
            Signals::Default => {
                libc::sigfillset(&mut all);
                libc::sigdelset(&mut all, libc::SIGKILL);
                libc::sigdelset(&mut all, libc::SIGSTOP);
            }
            Signals::KeepIgnored { restore } => {
                libc::sigemptyset(&mut all);
                if restore {
                    libc::sigaddset(&mut all, libc::SIGPIPE);
                    libc::sigaddset(&mut all, libc::SIGXFSZ);
                }
            }
        }
        check(libc::posix_spawnattr_setsigdefault(&mut attr.0, &all))?;
    }

    let argv = ptr_array(&req.exec.argv);
    let envp = ptr_array(&req.exec.envp);
    let mut denied: Option<&CString> = None;
    let mut last = (libc::ENOENT, None::<&CString>);
    for cand in &req.exec.candidates {
        let mut pid: libc::pid_t = 0;
        // SAFETY: all pointers are valid for the call; argv/envp are NULL-terminated.
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                cand.as_ptr(),
                &fa.0,
                &attr.0,
                argv.as_ptr() as *const *mut c_char,
                envp.as_ptr() as *const *mut c_char,
            )
        };
        if r == 0 {
            return Ok(Spawned::new(pid, None));
        }
        // A failure before exec (the directory, the session...) is the same
        // for every candidate: stop at once.
        if failed_stage(req, r) == Stage::Chdir {
            return Err(SpawnError::at(Stage::Chdir, r));
        }
        match r {
            libc::ENOENT | libc::ENOTDIR => last = (r, Some(cand)),
            libc::EACCES => denied = denied.or(Some(cand)),
            _ => return Err(SpawnError { stage: Stage::Exec, errno: r, path: Some(cand.clone()), entry: None }),
        }
    }
    let (errno, path) = match denied {
        Some(p) => (libc::EACCES, Some(p)),
        None => last,
    };
    Err(SpawnError { stage: Stage::Exec, errno, path: path.cloned(), entry: None })
}
