//! What a child inherits from the *thread* that clones it rather than from
//! the process: credentials and capabilities, `no_new_privs`, the seccomp
//! mode, the nice value, the scheduling policy and the CPU affinity. A child
//! started for us by a spawner thread must get what it would have got from
//! the calling thread, so the two are compared before each such spawn.
//!
//! Not compared (no cheap way to read them): which seccomp filters are
//! stacked (only the mode is), a Landlock domain, an LSM label set for one
//! thread, the I/O priority. A program that changes those for one thread
//! only, after ferroproc started a spawner thread, should make the change
//! process-wide (seccomp's `TSYNC`) or before its first spawn.

/// The inheritable state of the calling thread, as a few numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ThreadState {
    uids: [libc::uid_t; 3],
    gids: [libc::gid_t; 3],
    /// Count and hash of the supplementary groups.
    groups: (i32, u64),
    /// Effective, permitted and inheritable sets (two 32-bit words each).
    caps: [u32; 6],
    no_new_privs: i32,
    seccomp: i32,
    nice: i32,
    policy: i32,
    priority: i32,
    /// Hash of the CPU affinity mask.
    affinity: u64,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

impl ThreadState {
    /// The calling thread's (each read is one syscall on the thread itself).
    pub(super) fn current() -> ThreadState {
        let mut s = ThreadState::default();
        // SAFETY: (this block) each call writes only into the local it is
        // given, sized as the kernel expects; a failed read leaves zeroes,
        // which both threads then report alike or differently as they are.
        unsafe {
            let [r, e, sv] = &mut s.uids;
            libc::getresuid(r, e, sv);
            let [r, e, sv] = &mut s.gids;
            libc::getresgid(r, e, sv);
            let n = libc::getgroups(0, std::ptr::null_mut());
            if n > 0 {
                let mut groups = vec![0 as libc::gid_t; n as usize];
                let n = libc::getgroups(n, groups.as_mut_ptr());
                groups.truncate(n.max(0) as usize);
                let bytes = std::slice::from_raw_parts(groups.as_ptr().cast::<u8>(), std::mem::size_of_val(&*groups));
                s.groups = (n, fnv(bytes));
            }
            let mut header = CapHeader { version: 0x2008_0522, pid: 0 };
            let mut data = [CapData::default(); 2];
            libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr());
            s.caps = [
                data[0].effective,
                data[1].effective,
                data[0].permitted,
                data[1].permitted,
                data[0].inheritable,
                data[1].inheritable,
            ];
            s.no_new_privs = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
            s.seccomp = libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0);
            *libc::__errno_location() = 0;
            s.nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            s.policy = libc::sched_getscheduler(0);
            let mut param: libc::sched_param = std::mem::zeroed();
            libc::sched_getparam(0, &mut param);
            s.priority = param.sched_priority;
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                let bytes = std::slice::from_raw_parts(
                    (&set as *const libc::cpu_set_t).cast::<u8>(),
                    std::mem::size_of::<libc::cpu_set_t>(),
                );
                s.affinity = fnv(bytes);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_differs_once_it_changes_its_own_nice_value_or_affinity() {
        let here = ThreadState::current();
        assert_eq!(std::thread::spawn(ThreadState::current).join().unwrap(), here, "a new thread inherits it all");
        if here.nice < 19 {
            let niced = std::thread::spawn(|| {
                // SAFETY: changes this (short-lived) thread's own nice value.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, ThreadState::current().nice + 1) };
                ThreadState::current()
            });
            assert_ne!(niced.join().unwrap(), here);
        }
        let pinned = std::thread::spawn(|| {
            // SAFETY: cpu_set_t is plain data; this thread's own affinity.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
                let first = (0..1024).find(|&c| libc::CPU_ISSET(c, &set)).unwrap();
                libc::CPU_ZERO(&mut set);
                libc::CPU_SET(first, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            ThreadState::current()
        });
        let pinned = pinned.join().unwrap();
        if std::thread::available_parallelism().map_or(1, usize::from) > 1 {
            assert_ne!(pinned, here);
        }
    }
}
