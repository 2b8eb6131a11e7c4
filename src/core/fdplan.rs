//! childFDs → the child's fd table.
//!
//! The trick that makes every mapping easy (swaps, cycles, fan-out, a pipe the
//! engine created landing on fd 0 because the parent's stdin was closed): in
//! the parent, every source fd is first duplicated close-on-exec to a number
//! at or above `base`, one past the highest child fd. No source number is then
//! also a target number, so the child only runs `dup2(high, target)` for each
//! entry, in any order, closes the unlisted fds below `base` and closes
//! everything from `base` up. A `dup2` result is inheritable, so identity
//! entries (`{0: 0}`) come out right too.

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
    Close(RawFd),
    /// Close every fd `>= n`.
    CloseFrom(RawFd),
}

/// The child's fd layout: one past the highest child fd, and the unlisted fds
/// below it (closed in the child, 0, 1 and 2 included).
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    pub base: RawFd,
    pub gaps: Vec<RawFd>,
}

/// Compute the [`Layout`] for a set of child fds (no duplicates, all >= 0).
pub fn layout(targets: &[RawFd]) -> Layout {
    let base = targets.iter().copied().max().map_or(0, |m| m + 1);
    let mut used = vec![false; base as usize];
    for &t in targets {
        used[t as usize] = true;
    }
    let gaps = (0..base).filter(|&fd| !used[fd as usize]).collect();
    Layout { base, gaps }
}

/// A mapping made ready for the child: private high copies of every source.
#[derive(Debug)]
pub struct PreparedFds {
    pub base: RawFd,
    /// `(source at or above base, child fd)`.
    pub moves: Vec<(Source, RawFd)>,
    pub gaps: Vec<RawFd>,
}

/// A source fd at or above `base`: the caller's own (already high: no target
/// can collide with it) or a private close-on-exec copy, closed on drop.
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

impl PreparedFds {
    /// Make every entry's parent fd usable from at or above the highest child
    /// fd: a source below `base` (which a target could overwrite) is
    /// duplicated up; one already at or above `base` is used as it is (the
    /// usual case for the spawn's own pipes: no extra syscalls).
    /// `entries` are `(child fd, parent fd)`; sources at or above `base` must
    /// be open (the caller checks the fds it did not create).
    ///
    /// # Errors
    /// EBADF naming nothing (the caller knows which entry) when a low parent
    /// fd is not open; EMFILE when out of descriptors. Copies made so far are closed.
    pub fn new(entries: &[(RawFd, RawFd)]) -> Result<Self, (usize, io::Error)> {
        let targets: Vec<RawFd> = entries.iter().map(|e| e.0).collect();
        let Layout { base, gaps } = layout(&targets);
        let mut moves = Vec::with_capacity(entries.len());
        for (i, &(child, src)) in entries.iter().enumerate() {
            if src >= base {
                moves.push((Source::Borrowed(src), child));
                continue;
            }
            // SAFETY: fcntl on an fd number; a closed fd gives EBADF.
            let high = cvt(unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, base) }).map_err(|e| (i, e))?;
            // SAFETY: `high` is a new fd that nobody else owns.
            moves.push((Source::Copy(unsafe { OwnedFd::from_raw_fd(high) }), child));
        }
        Ok(PreparedFds { base, moves, gaps })
    }

    /// The steps the child takes, in order.
    pub fn actions(&self) -> Vec<Action> {
        let mut v: Vec<Action> =
            self.moves.iter().map(|(src, dst)| Action::Dup2 { src: src.raw(), dst: *dst }).collect();
        v.extend(self.gaps.iter().map(|&g| Action::Close(g)));
        v.push(Action::CloseFrom(self.base));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn layout_of_default_and_gappy_maps() {
        assert_eq!(layout(&[0, 1, 2]), Layout { base: 3, gaps: vec![] });
        assert_eq!(layout(&[0, 1, 2, 7]), Layout { base: 8, gaps: vec![3, 4, 5, 6] });
        assert_eq!(layout(&[4]), Layout { base: 5, gaps: vec![0, 1, 2, 3] });
        assert_eq!(layout(&[]), Layout { base: 0, gaps: vec![] });
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
                Action::Close(fd) => {
                    self.0.remove(&fd);
                }
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
        let targets: Vec<RawFd> = map.iter().map(|e| e.0).collect();
        let Layout { base, gaps } = layout(&targets);
        let mut t = parent.clone();
        // Parent side: F_DUPFD_CLOEXEC(src, base) for each source below base;
        // sources at or above base are used as they are.
        let mut actions = Vec::new();
        for &(child, src) in map {
            if src >= base {
                actions.push(Action::Dup2 { src, dst: child });
                continue;
            }
            let high = t.lowest_free_from(base);
            let (file, _) = t.0[&src];
            t.0.insert(high, (file, true));
            actions.push(Action::Dup2 { src: high, dst: child });
        }
        actions.extend(gaps.iter().map(|&g| Action::Close(g)));
        actions.push(Action::CloseFrom(base));
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
        let (r, w) = crate::core::sys::pipe_cloexec().unwrap();
        let entries = [(0, w.as_raw_fd()), (5, r.as_raw_fd())];
        let p = PreparedFds::new(&entries).unwrap();
        assert_eq!(p.base, 6);
        assert!(p.moves.iter().all(|(h, _)| h.raw() >= 6));
        assert_eq!(p.gaps, vec![1, 2, 3, 4]);
        let acts = p.actions();
        assert_eq!(acts.last(), Some(&Action::CloseFrom(6)));
        // A closed source below base is caught when it is copied up.
        let bad = PreparedFds::new(&[(0, w.as_raw_fd()), (1000, 999)]).unwrap_err();
        assert_eq!(bad.0, 1);
        assert_eq!(bad.1.raw_os_error(), Some(libc::EBADF));
        // A source already above every target is used as it is.
        let (r2, _w2) = crate::core::sys::pipe_cloexec().unwrap();
        let p = PreparedFds::new(&[(0, r2.as_raw_fd())]).unwrap();
        assert!(matches!(p.moves[0].0, Source::Borrowed(fd) if fd == r2.as_raw_fd()));
    }
}
