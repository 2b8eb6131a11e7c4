//! What to execute: the argv and envp as C strings, and the executable
//! candidates from the PATH rule, all built before any child exists.

use std::ffi::{c_char, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The fallback search path when neither the child's nor the parent's
/// environment has `PATH` (CPython's `os.defpath`).
pub const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Why an [`ExecSpec`] could not be built.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecError {
    /// A string held a NUL byte: `what` names it (`"args[2]"`, `"executable"` ...).
    Nul { what: String },
    /// A bare name was not found on the search path.
    NotFound { name: Vec<u8>, path: Vec<u8> },
}

/// argv, envp and the executable candidates, ready for `execve`/`posix_spawn`.
#[derive(Debug)]
pub struct ExecSpec {
    /// Paths to try in order (one for a name with a `/`; the existing PATH
    /// matches for a bare name).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// A NULL-terminated array of pointers into `strings`; valid while they live.
pub fn ptr_array(strings: &[CString]) -> Vec<*const c_char> {
    let mut v: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

fn cstring(bytes: &[u8], what: impl FnOnce() -> String) -> Result<CString, ExecError> {
    CString::new(bytes).map_err(|_| ExecError::Nul { what: what() })
}

/// The `PATH` to search: the child's when its environment sets one, else the
/// parent's, else [`DEFAULT_PATH`].
pub fn search_path<'a>(child_env: &'a [Vec<u8>], parent_path: Option<&'a [u8]>) -> &'a [u8] {
    child_env.iter().find_map(|kv| kv.strip_prefix(b"PATH=")).or(parent_path).unwrap_or(DEFAULT_PATH)
}

/// The candidates for `name` on `path`: every `dir/name` that exists, in
/// order. A name containing `/` is its own only candidate and is not checked
/// here (exec reports what is wrong with it). Relative PATH entries are
/// checked against `cwd` (the child's working directory) when one is given.
///
/// # Errors
/// [`ExecError::NotFound`] when no directory on `path` holds `name`.
pub fn candidates(name: &[u8], path: &[u8], cwd: Option<&[u8]>) -> Result<Vec<Vec<u8>>, ExecError> {
    if name.contains(&b'/') {
        return Ok(vec![name.to_vec()]);
    }
    let mut out = Vec::new();
    if !name.is_empty() {
        for dir in path.split(|&b| b == b':') {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut full = dir.to_vec();
            if !full.ends_with(b"/") {
                full.push(b'/');
            }
            full.extend_from_slice(name);
            let probe = match cwd {
                Some(cwd) if !full.starts_with(b"/") => {
                    let mut p = cwd.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&full);
                    p
                }
                _ => full.clone(),
            };
            let p = Path::new(std::ffi::OsStr::from_bytes(&probe));
            if p.metadata().map(|m| !m.is_dir()).unwrap_or(false) {
                out.push(full);
            }
        }
    }
    if out.is_empty() {
        return Err(ExecError::NotFound { name: name.to_vec(), path: path.to_vec() });
    }
    Ok(out)
}

impl ExecSpec {
    /// Build the spec: `argv` verbatim (argv[0] included), `envp` as
    /// `KEY=VALUE` entries, and the candidates by the PATH rule.
    ///
    /// # Errors
    /// A NUL byte anywhere, or a bare name found nowhere on the search path.
    pub fn new(
        executable: &[u8],
        argv: &[Vec<u8>],
        envp: &[Vec<u8>],
        parent_path: Option<&[u8]>,
        cwd: Option<&[u8]>,
    ) -> Result<Self, ExecError> {
        cstring(executable, || "executable".into())?;
        let argv =
            argv.iter().enumerate().map(|(i, a)| cstring(a, || format!("args[{i}]"))).collect::<Result<Vec<_>, _>>()?;
        let envs = envp
            .iter()
            .map(|e| cstring(e, || format!("env entry {:?}", String::from_utf8_lossy(e))))
            .collect::<Result<Vec<_>, _>>()?;
        let path = search_path(envp, parent_path);
        let candidates = candidates(executable, path, cwd)?
            .into_iter()
            .map(|c| CString::new(c).expect("candidate built from NUL-free parts"))
            .collect();
        Ok(ExecSpec { candidates, argv, envp: envs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rule_prefers_child_then_parent_then_default() {
        let env = vec![b"A=1".to_vec(), b"PATH=/child".to_vec()];
        assert_eq!(search_path(&env, Some(b"/parent")), b"/child");
        assert_eq!(search_path(&[], Some(b"/parent")), b"/parent");
        assert_eq!(search_path(&[], None), DEFAULT_PATH);
    }

    #[test]
    fn slash_name_is_its_own_candidate() {
        assert_eq!(candidates(b"./x", b"/bin", None).unwrap(), vec![b"./x".to_vec()]);
        assert_eq!(candidates(b"/no/such", b"/bin", None).unwrap(), vec![b"/no/such".to_vec()]);
    }

    #[test]
    fn bare_name_found_on_path_in_order() {
        let c = candidates(b"sh", b"/nonexistent:/usr/bin:/bin", None).unwrap();
        assert!(c[0] == b"/usr/bin/sh" || c[0] == b"/bin/sh", "{c:?}");
        assert!(c.iter().all(|p| !p.starts_with(b"/nonexistent")));
    }

    #[test]
    fn bare_name_missing_is_not_found() {
        let e = candidates(b"no-such-program-xyz", b"/bin:/usr/bin", None).unwrap_err();
        assert_eq!(e, ExecError::NotFound { name: b"no-such-program-xyz".to_vec(), path: b"/bin:/usr/bin".to_vec() });
        // A directory of that name is not a candidate either.
        assert!(candidates(b"bin", b"/", None).is_err());
    }

    #[test]
    fn relative_path_entries_resolve_against_cwd() {
        let c = candidates(b"sh", b"bin", Some(b"/")).unwrap();
        assert_eq!(c, vec![b"bin/sh".to_vec()]);
    }

    #[test]
    fn nul_bytes_are_named() {
        let e = ExecSpec::new(b"/bin/true", &[b"true".to_vec(), b"a\0b".to_vec()], &[], None, None).unwrap_err();
        assert_eq!(e, ExecError::Nul { what: "args[1]".into() });
    }

    #[test]
    fn spec_uses_child_path() {
        let s = ExecSpec::new(b"sh", &[b"sh".to_vec()], &[b"PATH=/bin".to_vec()], Some(b"/nope"), None).unwrap();
        assert_eq!(s.candidates[0].as_bytes(), b"/bin/sh");
        assert_eq!(ptr_array(&s.argv).len(), 2);
    }
}
