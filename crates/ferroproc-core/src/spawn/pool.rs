//! A small lock-free pool of boxed values, for what spawns share (fd
//! channels, child stacks, spawner threads).
//!
//! Not a lock because a lock is exactly what must not be shared between
//! spawns: one held across a child's `clone` (until the child has exec'd)
//! makes every other spawn wait for a child stuck before its exec, is copied
//! held into a process forked meanwhile (which then waits for ever), and
//! blocks the interpreter when it is taken with the GIL held. Here a spawn
//! takes a value for itself (a slot swapped to null), so no other spawn can
//! see it, and gives it back (into an empty slot) when done; when no value
//! is free the spawn makes a new one, and one given back to a full pool is
//! dropped. Taking swaps a pointer out and giving back only fills a null
//! slot, so there is no ABA: no compare ever expects a non-null pointer.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// At most `N` idle values of type `T`.
pub(super) struct Pool<T, const N: usize> {
    slots: [AtomicPtr<T>; N],
}

impl<T, const N: usize> Pool<T, N> {
    /// An empty pool (usable in a `static`).
    pub(super) const fn new() -> Self {
        Pool { slots: [const { AtomicPtr::new(ptr::null_mut()) }; N] }
    }

    /// An idle value, now the caller's alone; `None` when every slot is empty.
    pub(super) fn take(&self) -> Option<Box<T>> {
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed).is_null() {
                continue;
            }
            let p = slot.swap(ptr::null_mut(), Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: every non-null pointer in a slot came from
                // `Box::into_raw` in `give`, and the swap made it ours alone.
                return Some(unsafe { Box::from_raw(p) });
            }
        }
        None
    }

    /// Put `value` back for a later spawn; when every slot is full, hand it
    /// back to the caller (who drops it).
    pub(super) fn give(&self, value: Box<T>) -> Option<Box<T>> {
        let p = Box::into_raw(value);
        for slot in &self.slots {
            if slot.compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed).is_ok() {
                return None;
            }
        }
        // SAFETY: `p` came from `Box::into_raw` above and was stored nowhere.
        Some(unsafe { Box::from_raw(p) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_to_one_taker_and_a_full_pool_refuses_more() {
        static POOL: Pool<u32, 2> = Pool::new();
        assert!(POOL.take().is_none());
        assert!(POOL.give(Box::new(1)).is_none());
        assert!(POOL.give(Box::new(2)).is_none());
        assert_eq!(POOL.give(Box::new(3)).map(|b| *b), Some(3));
        let mut got = [*POOL.take().unwrap(), *POOL.take().unwrap()];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(POOL.take().is_none());
    }

    #[test]
    fn concurrent_takers_never_share_a_value() {
        static POOL: Pool<std::sync::atomic::AtomicU32, 4> = Pool::new();
        for _ in 0..4 {
            let _ = POOL.give(Box::new(std::sync::atomic::AtomicU32::new(0)));
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..20_000 {
                        let v = POOL.take().unwrap_or_else(|| Box::new(std::sync::atomic::AtomicU32::new(0)));
                        // Ours alone: nobody else may change it meanwhile.
                        assert_eq!(v.fetch_add(1, Ordering::Relaxed) % 2, 0);
                        assert_eq!(v.fetch_add(1, Ordering::Relaxed) % 2, 1);
                        drop(POOL.give(v));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }
}
