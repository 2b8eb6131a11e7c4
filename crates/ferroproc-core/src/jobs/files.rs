//! What the scheduler reads and writes besides the children: the kernel's
//! estimate of available memory (the start gate), and the per-job files
//! output goes to (`DIR/<seq>/stdout`, `DIR/<seq>/stderr`).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// `MemAvailable` from `/proc/meminfo`, in bytes; None if it cannot be read.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(text: &[u8]) -> Option<u64> {
    let line = text.split(|&b| b == b'\n').find(|l| l.starts_with(b"MemAvailable:"))?;
    let digits: Vec<u8> =
        line.iter().copied().skip_while(|b| !b.is_ascii_digit()).take_while(u8::is_ascii_digit).collect();
    let kib: u64 = std::str::from_utf8(&digits).ok()?.parse().ok()?;
    Some(kib * 1024)
}

/// A job's output files, open for writing (close-on-exec: the child gets
/// them through its fd plan).
#[derive(Debug)]
pub struct ResultFiles {
    pub out: OwnedFd,
    pub err: OwnedFd,
    pub out_path: PathBuf,
    pub err_path: PathBuf,
}

fn create(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a NUL-terminated path; the new fd is ours alone.
    let fd = sys::cvt(unsafe {
        libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o666)
    })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `dir/<seq>/stdout` and `dir/<seq>/stderr`, made (or emptied) for job `seq`.
///
/// # Errors
/// The directory or a file cannot be made (the error names the path).
pub fn open_results(dir: &Path, seq: u64) -> io::Result<ResultFiles> {
    let job_dir = dir.join(seq.to_string());
    if let Err(e) = std::fs::create_dir(&job_dir) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(io::Error::new(e.kind(), format!("{}: {e}", job_dir.display())));
        }
    }
    let out_path = job_dir.join("stdout");
    let err_path = job_dir.join("stderr");
    let named = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let out = create(&out_path).map_err(|e| named(&out_path, e))?;
    let err = create(&err_path).map_err(|e| named(&err_path, e))?;
    Ok(ResultFiles { out, err, out_path, err_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_parsed() {
        let text = b"MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available(b"MemTotal: 1 kB\n"), None);
        assert!(mem_available().is_some_and(|m| m > 0));
    }

    #[test]
    fn result_files_are_made_and_emptied() {
        let dir = std::env::temp_dir().join(format!("fp-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = open_results(&dir, 7).unwrap();
        assert_eq!(f.out_path, dir.join("7/stdout"));
        drop(f);
        std::fs::write(dir.join("7/stdout"), b"hello").unwrap();
        let f = open_results(&dir, 7).unwrap();
        assert_eq!(std::fs::metadata(&f.out_path).unwrap().len(), 0, "a second attempt starts empty");
        drop(f);
        let e = open_results(&dir.join("missing"), 1).unwrap_err();
        assert!(e.to_string().contains("missing/1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
