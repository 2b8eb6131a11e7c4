//! Credentials for the child, computed in the parent from the passwd and group
//! databases (NSS is not async-signal-safe, so none of it may run in the child).
//!
//! Look-ups can block (LDAP, sssd): the bindings call [`resolve`] with the
//! GIL released. The user's name is taken as the raw bytes of its passwd
//! entry, so a name that is not UTF-8 still finds its own groups.

use std::ffi::{CStr, CString};
use std::io;

use nix::unistd::{Gid, Uid};

/// The identity the child takes: supplementary groups first, then the gid,
/// then the uid; each `None` is left as the parent's (as `subprocess.Popen`
/// leaves what its `user`, `group` and `extra_groups` do not name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Option<Vec<libc::gid_t>>,
}

/// Why credentials could not be prepared.
#[derive(Debug)]
pub enum CredsError {
    /// `uid` has no passwd entry and no `gid` was given.
    UnknownUser { uid: u32 },
    /// The passwd or group database could not be read (`what` says which look-up).
    Lookup { what: String, error: io::Error },
}

impl PartialEq for CredsError {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (CredsError::UnknownUser { uid: a }, CredsError::UnknownUser { uid: b }) => a == b,
            (CredsError::Lookup { what: a, error: e }, CredsError::Lookup { what: b, error: f }) => {
                a == b && e.raw_os_error() == f.raw_os_error()
            }
            _ => false,
        }
    }
}

/// A passwd entry's primary group and raw name.
struct Passwd {
    gid: u32,
    name: CString,
}

/// `getpwuid_r`: `Ok(None)` when there is no such user, an error when the
/// database could not be read.
fn passwd(uid: u32) -> io::Result<Option<Passwd>> {
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is plain data filled by getpwuid_r.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf.len() is its size.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        if r == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points at a NUL-terminated name in buf.
        let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
        return Ok(Some(Passwd { gid: pw.pw_gid, name }));
    }
}

/// `getgrouplist`: every group of user `name`, with `gid` included.
fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<libc::gid_t>> {
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most that many.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if r >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count <= n {
            // -1 without asking for more room: the database failed.
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(0) { io::Error::from_raw_os_error(libc::EIO) } else { e });
        }
        if count > 1 << 16 {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        n = count;
    }
}

/// Resolve `uid`/`gid` (ferroproc's rule):
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
/// [`CredsError::UnknownUser`]; [`CredsError::Lookup`] when a database
/// could not be read (never mistaken for "no such user" or "no groups").
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
        return Ok(Some(Creds { uid: None, gid, groups: Some(vec![]) }));
    };
    let user = passwd(uid).map_err(|error| CredsError::Lookup { what: format!("uid {uid}"), error })?;
    let (gid, groups) = match (user, gid) {
        (Some(user), gid) => {
            let gid = gid.unwrap_or(user.gid);
            let groups = group_list(&user.name, gid).map_err(|error| CredsError::Lookup {
                what: format!("the groups of {:?}", String::from_utf8_lossy(user.name.to_bytes())),
                error,
            })?;
            (gid, groups)
        }
        (None, Some(gid)) => (gid, vec![gid]),
        (None, None) => return Err(CredsError::UnknownUser { uid }),
    };
    Ok(Some(Creds { uid: Some(uid), gid: Some(gid), groups: Some(groups) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::User;

    #[test]
    fn no_ids_means_no_change() {
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn unknown_uid_without_gid_is_an_error() {
        if Uid::effective().is_root() {
            assert_eq!(resolve(Some(4_000_123), None), Err(CredsError::UnknownUser { uid: 4_000_123 }));
            let c = resolve(Some(4_000_123), Some(4_000_124)).unwrap().unwrap();
            assert_eq!(c.groups, Some(vec![4_000_124]));
        }
    }

    #[test]
    fn known_user_gets_primary_group_and_own_groups() {
        if !Uid::effective().is_root() {
            return;
        }
        let nobody = User::from_name("nobody").unwrap().expect("nobody exists");
        let c = resolve(Some(nobody.uid.as_raw()), None).unwrap().unwrap();
        assert_eq!(c.gid, Some(nobody.gid.as_raw()));
        let groups = c.groups.clone().unwrap();
        assert!(groups.contains(&nobody.gid.as_raw()));
        assert!(!groups.contains(&0), "no root group may leak: {c:?}");
    }

    #[test]
    fn gid_alone_clears_groups() {
        if Uid::effective().is_root() {
            let c = resolve(None, Some(65534)).unwrap().unwrap();
            assert_eq!(c, Creds { uid: None, gid: Some(65534), groups: Some(vec![]) });
        }
    }

    #[test]
    fn same_identity_unprivileged_needs_nothing() {
        if !Uid::effective().is_root() {
            let u = Uid::effective().as_raw();
            assert_eq!(resolve(Some(u), None), Ok(None));
        }
    }

    #[test]
    fn raw_names_find_their_groups() {
        // root's own entry, looked up by raw name bytes.
        let root = passwd(0).unwrap().expect("root exists");
        assert_eq!(root.name.to_bytes(), b"root");
        assert!(group_list(&root.name, root.gid).unwrap().contains(&0));
        assert!(passwd(4_000_123).unwrap().is_none());
    }
}
