//! Timers: calls due at a time, earliest first, in the order scheduled
//! among equal times.
//!
//! A timer moved (`reset`, `delay`) or cancelled leaves its old heap entry
//! behind to be skipped when it surfaces; once such stale entries outnumber
//! the live ones (and there are more than a few), the heap is rebuilt from
//! the live timers, so rescheduling one timer millions of times does not
//! grow memory (as Twisted's reactor compacts its cancelled calls).
//!
//! Times are `f64` seconds; callers check them (a NaN would break the
//! order). A time too far away for the poll's timeout simply never comes due.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in seconds, as `time.time()` (and Twisted's
/// `reactor.seconds()`): the clock every timer here counts in.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A timer's identity, valid until it fires or is cancelled.
pub type TimerId = u64;

/// Compact only above this many stale entries.
const COMPACT_MIN: usize = 64;

struct Entry {
    time: f64,
    seq: u64,
    id: TimerId,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and the earliest must come first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.time.total_cmp(&self.time).then(o.seq.cmp(&self.seq))
    }
}

struct Slot<T> {
    time: f64,
    seq: u64,
    value: T,
}

/// The timers of one loop, each carrying a `T` (what to call).
pub struct Timers<T> {
    heap: BinaryHeap<Entry>,
    live: HashMap<TimerId, Slot<T>>,
    next_id: TimerId,
    next_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), live: HashMap::new(), next_id: 0, next_seq: 0 }
    }
}

impl<T> Timers<T> {
    /// Schedule `value` at `time`.
    pub fn insert(&mut self, time: f64, value: T) -> TimerId {
        self.next_id += 1;
        let id = self.next_id;
        let seq = self.push(time, id);
        self.live.insert(id, Slot { time, seq, value });
        id
    }

    /// Move timer `id` to `time`. Returns false if it is no longer scheduled.
    pub fn reschedule(&mut self, id: TimerId, time: f64) -> bool {
        if !self.live.contains_key(&id) {
            return false;
        }
        let seq = self.push(time, id);
        let slot = self.live.get_mut(&id).expect("checked above");
        slot.time = time;
        slot.seq = seq;
        self.maybe_compact();
        true
    }

    /// Unschedule timer `id`, handing back its value.
    pub fn remove(&mut self, id: TimerId) -> Option<T> {
        let slot = self.live.remove(&id)?;
        self.maybe_compact();
        Some(slot.value)
    }

    /// When timer `id` is due, while it is scheduled.
    pub fn time_of(&self, id: TimerId) -> Option<f64> {
        self.live.get(&id).map(|s| s.time)
    }

    /// The earliest time any timer is due.
    pub fn next_due(&mut self) -> Option<f64> {
        self.drop_stale_top();
        self.heap.peek().map(|e| e.time)
    }

    /// Take the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: f64) -> Option<(TimerId, T)> {
        self.drop_stale_top();
        if self.heap.peek()?.time > now {
            return None;
        }
        let e = self.heap.pop().expect("peeked");
        let slot = self.live.remove(&e.id).expect("a live top");
        Some((e.id, slot.value))
    }

    /// How many timers are scheduled.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Heap entries, stale ones included (for tests of compaction).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Every scheduled value (for a garbage collector's traversal).
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.live.values().map(|s| &s.value)
    }

    /// Unschedule everything, handing the values back.
    pub fn drain(&mut self) -> Vec<T> {
        self.heap.clear();
        self.live.drain().map(|(_, s)| s.value).collect()
    }

    fn push(&mut self, time: f64, id: TimerId) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.heap.push(Entry { time, seq, id });
        seq
    }

    fn is_current(&self, e: &Entry) -> bool {
        self.live.get(&e.id).is_some_and(|s| s.seq == e.seq)
    }

    fn drop_stale_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.is_current(top) {
                return;
            }
            self.heap.pop();
        }
    }

    fn maybe_compact(&mut self) {
        let stale = self.heap.len() - self.live.len();
        if stale > COMPACT_MIN && stale > self.live.len() {
            let entries: Vec<Entry> =
                self.live.iter().map(|(id, s)| Entry { time: s.time, seq: s.seq, id: *id }).collect();
            self.heap = BinaryHeap::from(entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire_all(t: &mut Timers<&'static str>, now: f64) -> Vec<&'static str> {
        std::iter::from_fn(|| t.pop_due(now).map(|(_, v)| v)).collect()
    }

    #[test]
    fn earliest_first_and_fifo_among_equals() {
        let mut t = Timers::default();
        t.insert(2.0, "c");
        t.insert(1.0, "a");
        t.insert(1.0, "b");
        t.insert(9.0, "later");
        assert_eq!(t.next_due(), Some(1.0));
        assert_eq!(fire_all(&mut t, 5.0), ["a", "b", "c"]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn reschedule_and_remove() {
        let mut t = Timers::default();
        let a = t.insert(1.0, "a");
        let b = t.insert(2.0, "b");
        assert!(t.reschedule(a, 3.0));
        assert_eq!(t.time_of(a), Some(3.0));
        assert_eq!(fire_all(&mut t, 2.5), ["b"]);
        assert!(!t.reschedule(b, 1.0), "fired timers cannot be moved");
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.next_due(), None);
        assert_eq!(t.remove(a), None);
    }

    #[test]
    fn far_future_times_are_just_late() {
        let mut t = Timers::default();
        t.insert(1e300, "never");
        t.insert(f64::MAX, "max");
        assert_eq!(fire_all(&mut t, 1e10), Vec::<&str>::new());
        assert_eq!(t.next_due(), Some(1e300));
    }

    #[test]
    fn millions_of_reschedules_do_not_grow_the_heap() {
        let mut t = Timers::default();
        let id = t.insert(0.0, "x");
        let other = t.insert(5.0, "y");
        for i in 0..2_000_000 {
            t.reschedule(id, f64::from(i));
        }
        assert!(t.heap_len() < 200, "heap grew to {}", t.heap_len());
        for i in 0..10_000 {
            let c = t.insert(f64::from(i), "z");
            t.remove(c);
        }
        assert!(t.heap_len() < 200, "heap grew to {}", t.heap_len());
        assert_eq!(t.time_of(id), Some(1_999_999.0));
        assert_eq!(t.remove(other), Some("y"));
    }
}
