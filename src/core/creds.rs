//! Credentials for the child, computed in the parent from the passwd and group
//! databases (NSS is not async-signal-safe, so none of it may run in the child).

use nix::unistd::{getgrouplist, Gid, Uid, User};

/// The identity the child takes: supplementary groups first, then the gid,
/// then (if given) the uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: Option<u32>,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
}

/// Why credentials could not be prepared.
#[derive(Debug, PartialEq, Eq)]
pub enum CredsError {
    /// `uid` has no passwd entry and no `gid` was given.
    UnknownUser { uid: u32 },
}

/// Resolve `uid`/`gid` (ferroproc's rule, SPEC preface item 3):
/// - `uid` without `gid` takes the user's primary group;
/// - supplementary groups are the user's own groups (never the parent's);
/// - a `uid` with no passwd entry needs an explicit `gid`, and then gets just that group;
/// - `gid` alone sets the gid and clears the supplementary groups.
///
/// Returns `None` when nothing needs to change: both ids equal this process's
/// effective ids and it is not root (an unprivileged process cannot call
/// setgroups even to its own groups).
///
/// # Errors
/// [`CredsError::UnknownUser`].
pub fn resolve(uid: Option<u32>, gid: Option<u32>) -> Result<Option<Creds>, CredsError> {
    if uid.is_none() && gid.is_none() {
        return Ok(None);
    }
    let euid = Uid::effective().as_raw();
    let egid = Gid::effective().as_raw();
    if euid != 0 && uid.is_none_or(|u| u == euid) && gid.is_none_or(|g| g == egid) {
        return Ok(None);
    }
    let Some(uid) = uid else {
        return Ok(Some(Creds { uid: None, gid: gid.expect("uid or gid given"), groups: vec![] }));
    };
    let user = User::from_uid(Uid::from_raw(uid)).ok().flatten();
    let (gid, groups) = match (user, gid) {
        (Some(user), gid) => {
            let gid = gid.unwrap_or(user.gid.as_raw());
            let name = std::ffi::CString::new(user.name.as_bytes()).unwrap_or_default();
            let groups = getgrouplist(&name, Gid::from_raw(gid))
                .map(|g| g.into_iter().map(Gid::as_raw).collect())
                .unwrap_or_else(|_| vec![gid]);
            (gid, groups)
        }
        (None, Some(gid)) => (gid, vec![gid]),
        (None, None) => return Err(CredsError::UnknownUser { uid }),
    };
    Ok(Some(Creds { uid: Some(uid), gid, groups }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ids_means_no_change() {
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn unknown_uid_without_gid_is_an_error() {
        if Uid::effective().is_root() {
            assert_eq!(resolve(Some(4_000_123), None), Err(CredsError::UnknownUser { uid: 4_000_123 }));
            let c = resolve(Some(4_000_123), Some(4_000_124)).unwrap().unwrap();
            assert_eq!(c.groups, vec![4_000_124]);
        }
    }

    #[test]
    fn known_user_gets_primary_group_and_own_groups() {
        if !Uid::effective().is_root() {
            return;
        }
        let nobody = User::from_name("nobody").unwrap().expect("nobody exists");
        let c = resolve(Some(nobody.uid.as_raw()), None).unwrap().unwrap();
        assert_eq!(c.gid, nobody.gid.as_raw());
        assert!(c.groups.contains(&nobody.gid.as_raw()));
        assert!(!c.groups.contains(&0), "no root group may leak: {c:?}");
    }

    #[test]
    fn gid_alone_clears_groups() {
        if Uid::effective().is_root() {
            let c = resolve(None, Some(65534)).unwrap().unwrap();
            assert_eq!(c, Creds { uid: None, gid: 65534, groups: vec![] });
        }
    }

    #[test]
    fn same_identity_unprivileged_needs_nothing() {
        if !Uid::effective().is_root() {
            let u = Uid::effective().as_raw();
            assert_eq!(resolve(Some(u), None), Ok(None));
        }
    }
}
