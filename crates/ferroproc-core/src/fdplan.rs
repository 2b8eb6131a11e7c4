//! childFDs → the child's fd table.
//!
//! The rule that makes every mapping easy (swaps, cycles, fan-out, a pipe
//! the engine created landing on fd 0 because the parent's stdin was
//! closed): no source fd may also be a target number, or a `dup2` onto that
//! target could clobber it before it is used. So, in the parent, every
//! source that *is* a target number is first duplicated close-on-exec to a
//! free number that is not; the others are used as they are. The child then
//! runs `dup2(source, target)` for each entry in any order, closes the
//! unlisted numbers below the highest target (in ranges) and everything
//! above it. A `dup2` result is inheritable, so identity entries (`{0: 0}`)
//! come out right too. Temporary copies go to the lowest free numbers, so
//! targets close to `RLIMIT_NOFILE` need no room above them.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys::cvt;

/// One step the child takes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Dup2 {
        src: RawFd,
        dst: RawFd,
    },
    /// Close every fd from `first` to `last`, both included.
    CloseRange {
        first: RawFd,
        last: RawFd,
    },
    /// Close every fd `>= n`.
    CloseFrom(RawFd),
}

/// The unlisted fd numbers below `top` (one past the highest target), as
/// inclusive ranges: the child closes them.
pub fn gaps(targets: &BTreeSet<RawFd>) -> Vec<(RawFd, RawFd)> {
    let mut out = Vec::new();
    let mut next = 0;
    for &t in targets {
        if t > next {
            out.push((next, t - 1));
        }
        next = t + 1;
    }
    out
}

/// A mapping made ready for the child: every source at a number that no
/// entry targets.
#[derive(Debug)]
pub struct PreparedFds {
    /// One past the highest child fd.
    pub top: RawFd,
    /// `(source, child fd)`.
    pub moves: Vec<(Source, RawFd)>,
    /// Unlisted numbers below `top`, as inclusive ranges.
    pub gaps: Vec<(RawFd, RawFd)>,
}

/// A source fd: the caller's own (not a target number) or a private
/// close-on-exec copy, closed on drop.
#[derive(Debug)]
pub enum Source {
    Borrowed(RawFd),
    Copy(OwnedFd),
}

impl Source {
    pub fn raw(&self) -> RawFd {
        match self {
            Source::Borrowed(fd) => *fd,
            Source::Copy(fd) => fd.as_raw_fd(),
        }
    }
}

/// A close-on-exec copy of `src` at the lowest free number that is not in
/// `targets` (numbers taken on the way are held, then released).
fn copy_off_targets(src: RawFd, targets: &BTreeSet<RawFd>) -> io::Result<OwnedFd> {
    let mut held = Vec::new();
    loop {
        // SAFETY: fcntl on an fd number; a closed fd gives EBADF.
        let fd = cvt(unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if !targets.contains(&fd.as_raw_fd()) {
            return Ok(fd);
        }
        held.push(fd);
    }
}

impl PreparedFds {
    /// Place every entry's source off the target numbers. `entries` are
    /// `(child fd, parent fd)` with distinct child fds; a source that is no
    /// target is used as it is, so the caller checks the fds it did not
    /// create are open.
    ///
    /// # Errors
    /// `(index of the entry, error)`: EBADF when a source that had to be
    /// copied is not open; EMFILE when out of descriptors. Copies made so far
    /// are closed.
    pub fn new(entries: &[(RawFd, RawFd)]) -> Result<Self, (usize, io::Error)> {
        let targets: BTreeSet<RawFd> = entries.iter().map(|e| e.0).collect();
        let top = targets.last().map_or(0, |t| t + 1);
        let mut moves = Vec::with_capacity(entries.len());
        for (i, &(child, src)) in entries.iter().enumerate() {
            let source = if targets.contains(&src) {
                Source::Copy(copy_off_targets(src, &targets).map_err(|e| (i, e))?)
            } else {
                Source::Borrowed(src)
            };
            moves.push((source, child));
        }
        Ok(PreparedFds { top, moves, gaps: gaps(&targets) })
    }

    /// The steps the child takes, in order.
    pub fn actions(&self) -> Vec<Action> {
        let mut v: Vec<Action> =
            self.moves.iter().map(|(src, dst)| Action::Dup2 { src: src.raw(), dst: *dst }).collect();
        v.extend(self.gaps.iter().map(|&(first, last)| Action::CloseRange { first, last }));
        v.push(Action::CloseFrom(self.top));
        v
    }

    /// How many single fds the gaps hold (posix_spawn closes them one by one).
    pub fn gap_count(&self) -> usize {
        self.gaps.iter().map(|&(a, b)| (b - a + 1) as usize).sum()
    }
}

/// Where fds sent to a child land: the lowest numbers, in order, other
/// than `keep` (the socket they arrive on, the one fd the child still has).
pub fn received_numbers(count: usize, keep: RawFd) -> Vec<RawFd> {
    (0..).filter(|fd| *fd != keep).take(count).collect()
}

/// The steps for a child whose sources arrived at known numbers (see
/// [`received_numbers`]): `targets[i]` gets `received[i]`. The same rule as
/// [`PreparedFds`], applied in the child: a received fd that is a target
/// number is first moved to the lowest number that is neither a target nor
/// received; then every target gets its source; then every other number is
/// closed. Needs no room above the targets.
pub fn received_plan(targets: &[RawFd], received: &[RawFd]) -> Vec<Action> {
    let wanted: BTreeSet<RawFd> = targets.iter().copied().collect();
    let taken: BTreeSet<RawFd> = wanted.iter().chain(received).copied().collect();
    let mut free = (0..).filter(|fd| !taken.contains(fd));
    let mut actions = Vec::with_capacity(targets.len() * 2 + 4);
    let mut sources = Vec::with_capacity(received.len());
    for &r in received {
        if wanted.contains(&r) {
            let temp = free.next().expect("fd numbers are plenty");
            actions.push(Action::Dup2 { src: r, dst: temp });
            sources.push(temp);
        } else {
            sources.push(r);
        }
    }
    actions.extend(sources.iter().zip(targets).map(|(&src, &dst)| Action::Dup2 { src, dst }));
    actions.extend(gaps(&wanted).into_iter().map(|(first, last)| Action::CloseRange { first, last }));
    actions.push(Action::CloseFrom(wanted.last().map_or(0, |t| t + 1)));
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn set(v: &[RawFd]) -> BTreeSet<RawFd> {
        v.iter().copied().collect()
    }

    #[test]
    fn gaps_of_default_and_sparse_maps() {
        assert_eq!(gaps(&set(&[0, 1, 2])), vec![]);
        assert_eq!(gaps(&set(&[0, 1, 2, 7])), vec![(3, 6)]);
        assert_eq!(gaps(&set(&[4])), vec![(0, 3)]);
        assert_eq!(gaps(&set(&[1, 3, 9])), vec![(0, 0), (2, 2), (4, 8)]);
        assert_eq!(gaps(&set(&[])), vec![]);
    }

    /// A model of a process's fd table: fd → (open file id, close-on-exec).
    #[derive(Clone, Debug)]
    struct Table(BTreeMap<RawFd, (u32, bool)>);

    impl Table {
        fn lowest_free_from(&self, from: RawFd) -> RawFd {
            (from..).find(|fd| !self.0.contains_key(fd)).unwrap()
        }
        fn apply(&mut self, a: Action) {
            match a {
                Action::Dup2 { src, dst } => {
                    let (file, _) = self.0[&src];
                    self.0.insert(dst, (file, false));
                }
                Action::CloseRange { first, last } => self.0.retain(|&fd, _| fd < first || fd > last),
                Action::CloseFrom(n) => self.0.retain(|&fd, _| fd < n),
            }
        }
        fn exec(&mut self) {
            self.0.retain(|_, &mut (_, cloexec)| !cloexec);
        }
    }

    /// Run the plan for `map` (child fd → parent fd) on a model parent table
    /// and check the child gets exactly the mapped files.
    fn check(parent: &Table, map: &[(RawFd, RawFd)]) {
        let targets: BTreeSet<RawFd> = map.iter().map(|e| e.0).collect();
        let top = targets.last().map_or(0, |t| t + 1);
        let mut t = parent.clone();
        // Parent side: a source that is a target number is copied
        // close-on-exec to the lowest free number that is not a target.
        let mut actions = Vec::new();
        for &(child, src) in map {
            if !targets.contains(&src) {
                actions.push(Action::Dup2 { src, dst: child });
                continue;
            }
            let mut from = 0;
            let copy = loop {
                let fd = t.lowest_free_from(from);
                if !targets.contains(&fd) {
                    break fd;
                }
                from = fd + 1;
            };
            let (file, _) = t.0[&src];
            t.0.insert(copy, (file, true));
            actions.push(Action::Dup2 { src: copy, dst: child });
        }
        actions.extend(gaps(&targets).into_iter().map(|(first, last)| Action::CloseRange { first, last }));
        actions.push(Action::CloseFrom(top));
        // Child side.
        for a in actions {
            t.apply(a);
        }
        t.exec();
        let want: BTreeMap<RawFd, u32> = map.iter().map(|&(c, p)| (c, parent.0[&p].0)).collect();
        let got: BTreeMap<RawFd, u32> = t.0.iter().map(|(&fd, &(file, _))| (fd, file)).collect();
        assert_eq!(got, want, "map {map:?} on parent {parent:?}");
    }

    fn parent_with(fds: &[(RawFd, bool)]) -> Table {
        Table(fds.iter().enumerate().map(|(i, &(fd, ce))| (fd, (i as u32 + 100, ce))).collect())
    }

    #[test]
    fn twisted_worked_examples() {
        let std3 = parent_with(&[(0, false), (1, false), (2, false)]);
        check(&std3, &[(0, 1), (1, 0)]); // swap
        check(&std3, &[(0, 1), (1, 2), (2, 0)]); // 3-cycle
        check(&std3, &[(3, 0)]); // move up, 0..2 closed
        check(&std3, &[(0, 0), (1, 1), (2, 2)]); // identity
        let cloexec0 = parent_with(&[(0, true)]);
        check(&cloexec0, &[(0, 0)]); // identity of a close-on-exec fd must survive exec
        let fan = parent_with(&[(0, false), (7, true)]);
        check(&fan, &[(0, 0), (1, 7), (2, 7)]); // fan-out
        let inherit = parent_with(&[(3, false), (4, true)]);
        check(&inherit, &[]); // nothing reaches the child
    }

    #[test]
    fn pipes_landing_on_low_numbers() {
        // Parent's stdio closed, so the engine's pipe ends got 0, 1 and 2.
        let p = parent_with(&[(0, true), (1, true), (2, true), (5, false)]);
        check(&p, &[(0, 2), (1, 0), (2, 1)]);
        check(&p, &[(7, 0), (3, 1)]);
    }

    #[test]
    fn every_permutation_of_four_parent_fds() {
        let parent = parent_with(&[(0, false), (1, false), (2, true), (3, false), (9, true)]);
        let srcs = [0, 1, 2, 3, 9];
        // All maps of child fds 0..4 onto any of the sources (with repeats), 5^4 of them,
        // plus sparse targets.
        for code in 0..5usize.pow(4) {
            let mut map = Vec::new();
            let mut c = code;
            for child in 0..4 {
                map.push((child, srcs[c % 5]));
                c /= 5;
            }
            check(&parent, &map);
            let sparse: Vec<_> = map.iter().map(|&(c, p)| (c * 3 + 1, p)).collect();
            check(&parent, &sparse);
        }
    }

    #[test]
    fn real_fds_prepare_and_close() {
        let (r, w) = crate::sys::pipe_cloexec().unwrap();
        let entries = [(0, w.as_raw_fd()), (5, r.as_raw_fd())];
        let p = PreparedFds::new(&entries).unwrap();
        assert_eq!(p.top, 6);
        let targets = [0, 5];
        assert!(p.moves.iter().all(|(s, _)| !targets.contains(&s.raw())));
        assert_eq!(p.gaps, vec![(1, 4)]);
        assert_eq!(p.actions().last(), Some(&Action::CloseFrom(6)));
        // A closed source that is a target number is caught when it is copied.
        let bad = PreparedFds::new(&[(0, w.as_raw_fd()), (1000, 1000)]).unwrap_err();
        assert_eq!(bad.0, 1);
        assert_eq!(bad.1.raw_os_error(), Some(libc::EBADF));
        // A source that no entry targets is used as it is.
        let p = PreparedFds::new(&[(0, r.as_raw_fd())]).unwrap();
        assert!(matches!(p.moves[0].0, Source::Borrowed(fd) if fd == r.as_raw_fd()));
    }

    #[test]
    fn targets_at_the_open_file_limit_need_no_room_above_them() {
        let limit = crate::sys::open_file_limit();
        let (r, w) = crate::sys::pipe_cloexec().unwrap();
        let p = PreparedFds::new(&[(0, w.as_raw_fd()), (limit - 1, r.as_raw_fd()), (1, w.as_raw_fd())]).unwrap();
        assert_eq!(p.top, limit);
        assert_eq!(p.gaps, vec![(2, limit - 2)]);
    }

    #[test]
    fn received_fds_reach_any_targets() {
        // The child's table after recvmsg: only the received fds, at the
        // lowest numbers but the socket's (closed right after).
        fn check(targets: &[RawFd], keep: RawFd) {
            let received = received_numbers(targets.len(), keep);
            let mut t = Table(received.iter().enumerate().map(|(i, &fd)| (fd, (i as u32 + 100, false))).collect());
            for a in received_plan(targets, &received) {
                t.apply(a);
            }
            t.exec();
            let want: BTreeMap<RawFd, u32> = targets.iter().enumerate().map(|(i, &fd)| (fd, i as u32 + 100)).collect();
            let got: BTreeMap<RawFd, u32> = t.0.iter().map(|(&fd, &(file, _))| (fd, file)).collect();
            assert_eq!(got, want, "targets {targets:?}, socket at {keep}");
        }
        check(&[0, 1, 2], 3);
        check(&[0, 1, 2], 0);
        check(&[1, 0], 5);
        check(&[2, 0, 1], 1);
        check(&[7, 3], 2);
        check(&[0, 1, 2, 19_999], 4);
        check(&[], 3);
        for a in 0..5 {
            for b in 0..5 {
                for c in 0..5 {
                    if a != b && b != c && a != c {
                        for keep in 0..4 {
                            check(&[a, b, c], keep);
                        }
                    }
                }
            }
        }
    }
}
