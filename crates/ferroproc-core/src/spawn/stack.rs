//! Private stacks for vfork-style children: each with a guard page below
//! it, kept in a small lock-free pool so a spawn does not map and unmap one
//! each time, and no spawn ever waits for another to get one.

use std::ffi::c_void;
use std::ptr;

use super::pool::Pool;
use super::{SpawnError, Stage};
use crate::sys::errno;

/// A private stack for the child, with a guard page below it.
pub(super) struct Stack {
    base: *mut c_void,
    len: usize,
}

const STACK_SIZE: usize = 128 * 1024;
const GUARD: usize = 4096;

// SAFETY: a Stack is a private anonymous mapping owned by this value alone;
// it is not tied to the thread that made it, and is only used by the spawn
// that took it from the pool.
unsafe impl Send for Stack {}

/// Spare stacks (a few idle ones at most). After a fork they are still
/// good: the forked process has its own copy of each mapping.
static SPARE_STACKS: Pool<Stack, 4> = Pool::new();

impl Stack {
    fn new() -> Result<Self, SpawnError> {
        let len = STACK_SIZE + GUARD;
        // SAFETY: anonymous private mapping; checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(SpawnError::at(Stage::Spawn, errno()));
        }
        let stack = Stack { base, len };
        // SAFETY: the lowest page of our own mapping becomes inaccessible, so a
        // stack overflow in the child faults instead of scribbling on the heap.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } < 0 {
            // No guard, no stack (dropping it unmaps it).
            return Err(SpawnError::at(Stage::Spawn, errno()));
        }
        Ok(stack)
    }

    /// A stack for one spawn: a spare one, or a new one.
    ///
    /// # Errors
    /// `Stage::Spawn` with ENOMEM when none can be mapped (`RLIMIT_AS`...).
    pub(super) fn take() -> Result<Box<Self>, SpawnError> {
        match SPARE_STACKS.take() {
            Some(s) => Ok(s),
            None => Stack::new().map(Box::new),
        }
    }

    /// Back to the pool; only after the child has exec'd or exited
    /// (CLONE_VFORK), when nothing runs on it any more.
    pub(super) fn give_back(self: Box<Self>) {
        drop(SPARE_STACKS.give(self));
    }

    pub(super) fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of our mapping, 16-byte aligned (page aligned).
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }

    /// The lowest usable address and the size (for `clone3`, which takes
    /// the stack as a range).
    pub(super) fn range(&self) -> (*mut c_void, usize) {
        // SAFETY: the guard page is the first page of our mapping.
        (unsafe { self.base.cast::<u8>().add(GUARD).cast() }, self.len - GUARD)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped, after the child has
        // exec'd or exited (CLONE_VFORK), so nothing runs on it any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
