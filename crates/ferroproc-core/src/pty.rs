//! Pseudo-terminals: opened in the parent with `posix_openpt` (libc proper, not
//! libutil), so the child only has to open the slave by path as a new session
//! leader to make it its controlling terminal. nix's wrappers do the work;
//! only the window-size ioctls are raw.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::sys::termios::{self, LocalFlags, OutputFlags, SetArg};

/// A terminal's attributes (as `tcgetattr` gives them).
pub use nix::sys::termios::Termios;

use super::sys::cvt;

/// A terminal ready for a child: the parent's master and the slave's path.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave_path: CString,
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Open a new PTY; the master is close-on-exec and non-blocking, and gets
/// `size` `(rows, cols)` when given.
///
/// # Errors
/// Whatever `posix_openpt`, `grantpt`, `unlockpt` or `ptsname_r` report.
pub fn open(size: Option<(u16, u16)>) -> io::Result<Pty> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(nix_err)?;
    nix::pty::grantpt(&master).map_err(nix_err)?;
    nix::pty::unlockpt(&master).map_err(nix_err)?;
    let slave_path = CString::new(nix::pty::ptsname_r(&master).map_err(nix_err)?)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the PtyMaster owns this fd; it is handed over to the OwnedFd.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    super::sys::set_nonblocking_fresh(master.as_fd())?;
    if let Some((rows, cols)) = size {
        set_window_size(master.as_fd(), rows, cols)?;
    }
    Ok(Pty { master, slave_path })
}

/// Open the slave at `path` (read-write, close-on-exec, not as controlling terminal).
///
/// # Errors
/// What `open` reports.
pub fn open_slave(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path; the new fd is ours alone.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path of the terminal open on `fd` (for a caller-supplied slave).
///
/// # Errors
/// ENOTTY when `fd` is not a terminal; EBADF when it is not open.
pub fn tty_path(fd: RawFd) -> io::Result<CString> {
    let mut buf = [0 as std::ffi::c_char; 256];
    // SAFETY: ttyname_r writes a NUL-terminated name of at most buf.len() bytes.
    let r = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: the buffer now holds a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned())
}

/// The number of the terminal whose master is `fd` (`TIOCGPTN`): an error
/// for anything that is not a PTY master (a slave, a file, a closed fd).
///
/// # Errors
/// ENOTTY/EINVAL when `fd` is not a master; EBADF when it is not open.
pub fn master_number(fd: RawFd) -> io::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) })?;
    Ok(n)
}

/// Give the slave at `path` to the user a child will run as: owner `uid`,
/// group `gid` (each `None` left as it is), mode 0620 (as `grantpt` does for
/// the caller), so a privilege-dropped child can use its own terminal.
///
/// # Errors
/// What `chown`/`chmod` report.
pub fn give_slave_to(path: &CStr, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
    // SAFETY: a NUL-terminated path and plain ids (-1 keeps the owner).
    cvt(unsafe { libc::chown(path.as_ptr(), uid, gid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::chmod(path.as_ptr(), 0o620) })?;
    Ok(())
}

/// Set the terminal's window size; the foreground process group gets SIGWINCH.
///
/// # Errors
/// EBADF/ENOTTY for a closed or non-terminal fd.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// The terminal's window size as `(rows, cols)`.
///
/// # Errors
/// EBADF/ENOTTY for a closed or non-terminal fd.
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize struct.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// The attributes of the terminal behind `fd`.
///
/// # Errors
/// EBADF/ENOTTY.
pub fn get_attrs(fd: BorrowedFd<'_>) -> io::Result<Termios> {
    termios::tcgetattr(fd).map_err(nix_err)
}

/// Apply terminal attributes now.
///
/// # Errors
/// EBADF/ENOTTY/EINVAL.
pub fn set_attrs(fd: BorrowedFd<'_>, t: &Termios) -> io::Result<()> {
    termios::tcsetattr(fd, SetArg::TCSANOW, t).map_err(nix_err)
}

/// Whether the terminal echoes input.
///
/// # Errors
/// As [`get_attrs`].
pub fn echo(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(get_attrs(fd)?.local_flags.contains(LocalFlags::ECHO))
}

/// Turn echo on or off.
///
/// # Errors
/// As [`set_attrs`].
pub fn set_echo(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let mut t = get_attrs(fd)?;
    t.local_flags.set(LocalFlags::ECHO, on);
    set_attrs(fd, &t)
}

/// Raw mode in the sense of `cfmakeraw`: no line editing, echo, signals or
/// output processing.
///
/// # Errors
/// As [`get_attrs`].
pub fn is_raw(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let t = get_attrs(fd)?;
    Ok(!t.local_flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
        && !t.output_flags.contains(OutputFlags::OPOST))
}

/// Put the terminal in raw mode (`cfmakeraw`).
///
/// # Errors
/// As [`set_attrs`].
pub fn make_raw(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut t = get_attrs(fd)?;
    termios::cfmakeraw(&mut t);
    set_attrs(fd, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sets_size_and_names_the_slave() {
        let p = open(Some((33, 101))).unwrap();
        assert!(p.slave_path.to_bytes().starts_with(b"/dev/pts/"));
        assert_eq!(window_size(p.master.as_fd()).unwrap(), (33, 101));
        set_window_size(p.master.as_fd(), 10, 20).unwrap();
        assert_eq!(window_size(p.master.as_fd()).unwrap(), (10, 20));
    }

    #[test]
    fn echo_and_raw_round_trip() {
        let p = open(None).unwrap();
        let fd = p.master.as_fd();
        assert!(echo(fd).unwrap());
        set_echo(fd, false).unwrap();
        assert!(!echo(fd).unwrap());
        assert!(!is_raw(fd).unwrap());
        make_raw(fd).unwrap();
        assert!(is_raw(fd).unwrap());
    }

    #[test]
    fn only_a_master_has_a_terminal_number() {
        let p = open(None).unwrap();
        let slave = open_slave(&p.slave_path).unwrap();
        let n = master_number(p.master.as_raw_fd()).unwrap();
        assert_eq!(p.slave_path.to_bytes(), format!("/dev/pts/{n}").as_bytes());
        assert!(master_number(slave.as_raw_fd()).is_err());
        let (r, _w) = crate::sys::pipe_cloexec().unwrap();
        assert!(master_number(r.as_raw_fd()).is_err());
    }
}
