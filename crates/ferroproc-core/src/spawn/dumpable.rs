//! The process's "dumpable" flag across credential switches in children
//! that share its memory, and when they may share it at all.
//!
//! When a child switches to another user, the kernel sets the dumpable flag
//! of its memory, which is ours (`CLONE_VM`), to `fs.suid_dumpable`. With 0
//! (the kernel's default) or 2 (what systemd sets), the memory is then not
//! dumpable, and that is what makes the window safe: between its
//! `setresuid` and its `execve`, a process of the target user could
//! otherwise `ptrace`-attach to the child (now of its own uid) or open its
//! `/proc/<pid>/mem`, and through the shared memory take over this
//! privileged process; a non-dumpable memory refuses both to anyone without
//! CAP_SYS_PTRACE. (This, and glibc's set*id wrappers signalling the
//! parent's threads, are why CPython will not vfork for uid/gid changes,
//! bpo-35823; we call the raw syscalls, which act on the calling task
//! alone.) With `fs.suid_dumpable=1` the memory stays dumpable and the
//! argument fails, so [`shared_memory_is_safe`] sends such spawns down a
//! path whose child has its own copy of our memory (and makes it undumpable
//! itself right after the switch, so that copy is not readable either).
//!
//! Once every such child has exec'd or exited — with CLONE_VFORK, when its
//! `clone` has returned — nothing running as another user shares our
//! memory, and the flag is put back as it was, so the parent comes out of
//! the spawn as it went in (`/proc/self` owned by us, core dumps as
//! configured). A count of the children inside the window makes sure the
//! last one out restores it, never an earlier one while another is still in.
//!
//! The count is one atomic word, not a lock (see `pool` for why spawns
//! share no lock): the count, the saved flag, a "restoring" bit (entrants
//! wait the one `prctl` it covers, so none reads the flag half restored and
//! none is in the window while it is set back), a generation (bumped each
//! time the window opens, so a stale read of the flag can never be
//! committed: no ABA) and the pid of the process it describes (a forked
//! process starts afresh, and first restores a flag it inherited cleared).

use std::sync::atomic::{AtomicU64, Ordering};

const COUNT: u64 = 0xffff;
const SAVED: u64 = 1 << 16;
const RESTORING: u64 = 1 << 17;
const GEN_SHIFT: u32 = 18;
const GEN_MASK: u64 = (1 << 14) - 1;
const PID_SHIFT: u32 = 32;

static CRED_WINDOW: AtomicU64 = AtomicU64::new(0);

fn pid_of(w: u64) -> u32 {
    (w >> PID_SHIFT) as u32
}

fn gen_of(w: u64) -> u64 {
    (w >> GEN_SHIFT) & GEN_MASK
}

fn word(pid: u32, gen: u64, saved: bool, count: u64) -> u64 {
    (u64::from(pid) << PID_SHIFT) | ((gen & GEN_MASK) << GEN_SHIFT) | if saved { SAVED } else { 0 } | count
}

fn dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE only reads the flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) == 1 }
}

fn set_dumpable() {
    // SAFETY: sets this process's flag back to the value it had before the
    // first child entered the window; no such child is running now.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
}

/// The word as it stands for this process, after waiting out a restore;
/// a forked process's inherited word is made its own first.
fn settled() -> u64 {
    let me = std::process::id();
    loop {
        let w = CRED_WINDOW.load(Ordering::Acquire);
        if pid_of(w) != me {
            // Inherited from the process we were forked from: no child of
            // ours is in a window. If one of the parent's was, our copy of
            // the flag is cleared; put it back as it was.
            let restoring = word(me, gen_of(w), false, 0) | RESTORING;
            if CRED_WINDOW.compare_exchange(w, restoring, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if w & (COUNT | RESTORING) != 0 && w & SAVED != 0 {
                    set_dumpable();
                }
                CRED_WINDOW.store(word(me, gen_of(w) + 1, false, 0), Ordering::Release);
            }
            continue;
        }
        if w & RESTORING != 0 {
            std::thread::yield_now();
            continue;
        }
        return w;
    }
}

/// A child that will switch user is about to share our memory.
pub(super) fn enter_cred_window() {
    loop {
        let w = settled();
        let new = if w & COUNT == 0 {
            // The first one in: what the flag is now is what to restore. The
            // exchange below fails if anyone entered meanwhile (the
            // generation moves on), so this read is never a stale one.
            word(pid_of(w), gen_of(w) + 1, dumpable(), 1)
        } else {
            w + 1
        };
        if CRED_WINDOW.compare_exchange(w, new, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return;
        }
    }
}

/// That child has exec'd or exited.
pub(super) fn leave_cred_window() {
    loop {
        let w = settled();
        debug_assert!(w & COUNT > 0, "leaving a window nobody entered");
        if w & COUNT == 1 {
            // The last one out: restore with newcomers held off.
            if CRED_WINDOW.compare_exchange(w, (w - 1) | RESTORING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if w & SAVED != 0 {
                    set_dumpable();
                }
                CRED_WINDOW.store(w - 1, Ordering::Release);
                return;
            }
        } else if CRED_WINDOW.compare_exchange(w, w - 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            return;
        }
    }
}

/// Whether a child that switches user may share our memory: only where the
/// switch leaves that memory undumpable (`fs.suid_dumpable` 0 or 2). Read
/// at each such spawn (cheap, and an administrator may change it); a
/// setting that cannot be read counts as unsafe.
pub(super) fn shared_memory_is_safe() -> bool {
    matches!(std::fs::read("/proc/sys/fs/suid_dumpable").as_deref(), Ok(b"0\n" | b"2\n" | b"0" | b"2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_one_out_restores_the_flag_and_no_earlier_one() {
        let before = dumpable();
        enter_cred_window();
        enter_cred_window();
        // SAFETY: what a child's user switch does to our flag.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
        leave_cred_window();
        assert!(!dumpable(), "restored while a child was still inside");
        leave_cred_window();
        assert_eq!(dumpable(), before);
        assert_eq!(CRED_WINDOW.load(Ordering::Acquire) & (COUNT | RESTORING), 0);
    }

    #[test]
    fn a_forked_process_starts_afresh_and_restores_an_inherited_window() {
        // A word as a parent mid-spawn would leave it: one child inside,
        // the flag saved as dumpable.
        let parent = word(std::process::id() ^ 0x4000_0000, 7, true, 1);
        // SAFETY: fork in a test; the child only uses this module and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            CRED_WINDOW.store(parent, Ordering::Release);
            // SAFETY: as the parent's child's switch left the flag.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
            enter_cred_window();
            let ok_inside = dumpable() && CRED_WINDOW.load(Ordering::Acquire) & COUNT == 1;
            leave_cred_window();
            // SAFETY: leaving the forked test child.
            unsafe { libc::_exit(if ok_inside { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(status, 0);
    }
}
