//! Pseudo-terminals: opened in the parent with `posix_openpt` (libc proper, not
//! libutil), so the child only has to open the slave by path as a new session
//! leader to make it its controlling terminal.

use std::ffi::{c_char, CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::sys::cvt;

/// A terminal ready for a child: the parent's master and the slave's path.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave_path: CString,
}

/// Open a new PTY; the master is close-on-exec and non-blocking, and gets
/// `size` `(rows, cols)` when given.
///
/// # Errors
/// Whatever `posix_openpt`, `grantpt`, `unlockpt` or `ptsname_r` report.
pub fn open(size: Option<(u16, u16)>) -> io::Result<Pty> {
    // SAFETY: posix_openpt returns a new fd or -1.
    let fd = cvt(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: fd is new and ours.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain calls on our master fd.
    cvt(unsafe { libc::grantpt(fd) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::unlockpt(fd) })?;
    let slave_path = ptsname(fd)?;
    super::sys::set_nonblocking(fd, true)?;
    if let Some((rows, cols)) = size {
        set_window_size(fd, rows, cols)?;
    }
    Ok(Pty { master, slave_path })
}

fn ptsname(master: RawFd) -> io::Result<CString> {
    let mut buf = [0 as c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most buf.len() bytes.
    let r = unsafe { libc::ptsname_r(master, buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: the buffer now holds a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned())
}

/// The path of the terminal open on `fd` (for a caller-supplied slave).
///
/// # Errors
/// ENOTTY when `fd` is not a terminal; EBADF when it is not open.
pub fn tty_path(fd: RawFd) -> io::Result<CString> {
    let mut buf = [0 as c_char; 256];
    // SAFETY: ttyname_r writes a NUL-terminated name of at most buf.len() bytes.
    let r = unsafe { libc::ttyname_r(fd, buf.as_mut_ptr(), buf.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: the buffer now holds a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned())
}

/// Set the terminal's window size; the foreground process group gets SIGWINCH.
///
/// # Errors
/// EBADF/ENOTTY for a closed or non-terminal fd.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// The terminal's window size as `(rows, cols)`.
///
/// # Errors
/// EBADF/ENOTTY for a closed or non-terminal fd.
pub fn window_size(fd: RawFd) -> io::Result<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize struct.
    cvt(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

/// The terminal attributes of the terminal behind `fd`.
///
/// # Errors
/// EBADF/ENOTTY.
pub fn get_attrs(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    cvt(unsafe { libc::tcgetattr(fd, &mut t) })?;
    Ok(t)
}

/// Apply terminal attributes now.
///
/// # Errors
/// EBADF/ENOTTY/EINVAL.
pub fn set_attrs(fd: RawFd, t: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr reads the struct.
    cvt(unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) })?;
    Ok(())
}

/// Whether the terminal echoes input.
///
/// # Errors
/// As [`get_attrs`].
pub fn echo(fd: RawFd) -> io::Result<bool> {
    Ok(get_attrs(fd)?.c_lflag & libc::ECHO != 0)
}

/// Turn echo on or off.
///
/// # Errors
/// As [`set_attrs`].
pub fn set_echo(fd: RawFd, on: bool) -> io::Result<()> {
    let mut t = get_attrs(fd)?;
    if on {
        t.c_lflag |= libc::ECHO;
    } else {
        t.c_lflag &= !libc::ECHO;
    }
    set_attrs(fd, &t)
}

/// Raw mode in the sense of `cfmakeraw`: no line editing, echo, signals or
/// output processing.
///
/// # Errors
/// As [`get_attrs`].
pub fn is_raw(fd: RawFd) -> io::Result<bool> {
    let t = get_attrs(fd)?;
    Ok(t.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG) == 0 && t.c_oflag & libc::OPOST == 0)
}

/// Put the terminal in raw mode (`cfmakeraw`).
///
/// # Errors
/// As [`set_attrs`].
pub fn make_raw(fd: RawFd) -> io::Result<()> {
    let mut t = get_attrs(fd)?;
    // SAFETY: cfmakeraw edits the struct in place.
    unsafe { libc::cfmakeraw(&mut t) };
    set_attrs(fd, &t)
}

impl Pty {
    /// The master's fd number.
    pub fn master_fd(&self) -> RawFd {
        self.master.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sets_size_and_names_the_slave() {
        let p = open(Some((33, 101))).unwrap();
        assert!(p.slave_path.to_bytes().starts_with(b"/dev/pts/"));
        assert_eq!(window_size(p.master_fd()).unwrap(), (33, 101));
        set_window_size(p.master_fd(), 10, 20).unwrap();
        assert_eq!(window_size(p.master_fd()).unwrap(), (10, 20));
    }

    #[test]
    fn echo_and_raw_round_trip() {
        let p = open(None).unwrap();
        let fd = p.master_fd();
        assert!(echo(fd).unwrap());
        set_echo(fd, false).unwrap();
        assert!(!echo(fd).unwrap());
        assert!(!is_raw(fd).unwrap());
        make_raw(fd).unwrap();
        assert!(is_raw(fd).unwrap());
    }
}
