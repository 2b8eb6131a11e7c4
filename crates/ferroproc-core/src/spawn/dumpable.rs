//! The process's "dumpable" flag across credential switches in children
//! that share its memory.

use std::sync::Mutex;

/// Credential changes in a child that shares our memory, and the process's
/// "dumpable" flag.
///
/// When the child switches to another user, the kernel clears the dumpable
/// flag of its memory, which is ours (`CLONE_VM`). That is what makes the
/// window safe: between its `setresuid` and its `execve`, a process of the
/// target user could otherwise `ptrace`-attach to the child (now of its own
/// uid) or open its `/proc/<pid>/mem`, and through the shared memory take
/// over this privileged process; a non-dumpable memory refuses both to
/// anyone without CAP_SYS_PTRACE. (This, and glibc's set*id wrappers
/// signalling the parent's threads, are why CPython will not vfork for
/// uid/gid changes, bpo-35823; we call the raw syscalls, which act on the
/// calling task alone.) Once every such child has exec'd or exited — with
/// CLONE_VFORK, when its `clone` has returned — nothing running as another
/// user shares our memory, and the flag is put back as it was, so the parent
/// comes out of the spawn as it went in (`/proc/self` owned by us, core dumps
/// as configured). A count of the children inside the window makes sure the
/// last one out restores it, never an earlier one while another is still in.
struct CredWindow {
    inside: usize,
    dumpable_before: bool,
}

static CRED_WINDOW: Mutex<CredWindow> = Mutex::new(CredWindow { inside: 0, dumpable_before: false });

pub(super) fn enter_cred_window() {
    let mut w = CRED_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    if w.inside == 0 {
        // SAFETY: PR_GET_DUMPABLE only reads the flag.
        w.dumpable_before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } == 1;
    }
    w.inside += 1;
}

pub(super) fn leave_cred_window() {
    let mut w = CRED_WINDOW.lock().unwrap_or_else(|e| e.into_inner());
    w.inside -= 1;
    if w.inside == 0 && w.dumpable_before {
        // SAFETY: sets this process's flag back to the value it had before
        // the first child entered the window; no such child is running now.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    }
}
