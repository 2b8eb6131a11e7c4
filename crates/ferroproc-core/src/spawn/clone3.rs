//! `clone3`, for what plain `clone` cannot ask for: starting the child in a
//! given cgroup (`CLONE_INTO_CGROUP`, Linux 5.7), so it never runs a moment
//! outside it.
//!
//! glibc has no public wrapper, and the raw syscall returns twice, the second
//! time in the child on the stack we gave it: a few instructions of assembly
//! call the child's entry point there and never return (the child execs or
//! `_exit`s). x86_64 and aarch64 only; elsewhere the request is refused with
//! a clear error.

use std::ffi::{c_int, c_void};

/// The kernel's `struct clone_args` (as of 5.7: 88 bytes, `CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (not in every libc crate release yet).
pub(super) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Whether this architecture has the trampoline below.
pub(super) const SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Run `clone3(args)`; in the child, call `entry(arg)` on the new stack
/// (`entry` must not return). Returns the child's pid, or -errno.
///
/// # Safety
/// `args` describes a valid child stack; with `CLONE_VM` the child shares
/// our memory and `entry` must follow the vfork-child rules (see
/// `child::child_steps`).
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn clone3(args: &mut CloneArgs, entry: extern "C" fn(*mut c_void) -> c_int, arg: *mut c_void) -> i64 {
    let ret: i64;
    // SAFETY: the syscall clobbers rax (result), rcx and r11 only. In the
    // parent, control falls through to label 2. In the child (rax == 0) the
    // kernel has switched to the new stack (16-byte aligned: `call` leaves
    // it as the ABI expects); r12/r13 survive the syscall and hold the entry
    // point and its argument; the entry never returns (ud2 guards it).
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86_64 version.
///
/// # Safety
/// As for the x86_64 version.
#[cfg(target_arch = "aarch64")]
pub(super) unsafe fn clone3(args: &mut CloneArgs, entry: extern "C" fn(*mut c_void) -> c_int, arg: *mut c_void) -> i64 {
    let ret: i64;
    // SAFETY: `svc 0` returns the result in x0 and preserves every other
    // register. The child (x0 == 0) runs on the new stack, with x21/x22
    // holding the entry point and its argument; the entry never returns.
    unsafe {
        core::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x0, x22",
            "blr x21",
            "brk 0",
            "2:",
            inlateout("x0") args as *mut CloneArgs as i64 => ret,
            in("x1") std::mem::size_of::<CloneArgs>(),
            in("x8") libc::SYS_clone3,
            in("x21") entry,
            in("x22") arg,
            options(nostack),
        );
    }
    ret
}

/// No trampoline on this architecture.
///
/// # Safety
/// Never calls anything.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) unsafe fn clone3(_: &mut CloneArgs, _: extern "C" fn(*mut c_void) -> c_int, _: *mut c_void) -> i64 {
    -i64::from(libc::ENOSYS)
}
