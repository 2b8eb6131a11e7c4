//! Signal names and numbers, for `signalProcess("TERM")` and friends.

/// The number of a signal name, with or without the "SIG" prefix, any case.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str| -> Option<i32> {
        let n = if rest.is_empty() { 0 } else { rest.strip_prefix(['+', '-'])?.parse::<i32>().ok()? };
        let n = if rest.starts_with('-') { -n } else { n };
        let s = base + n;
        (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&s).then_some(s)
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest);
    }
    let aliases = [("IOT", libc::SIGABRT), ("POLL", libc::SIGIO), ("CLD", libc::SIGCHLD)];
    if let Some(&(_, n)) = aliases.iter().find(|(a, _)| *a == bare) {
        return Some(n);
    }
    nix::sys::signal::Signal::iterator().find(|s| s.as_str().strip_prefix("SIG") == Some(bare)).map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(signal_number("TERM"), Some(libc::SIGTERM));
        assert_eq!(signal_number("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number("usr1"), Some(libc::SIGUSR1));
        assert_eq!(signal_number("HUP"), Some(libc::SIGHUP));
        assert_eq!(signal_number("RTMIN+2"), Some(libc::SIGRTMIN() + 2));
        assert_eq!(signal_number("IOT"), Some(libc::SIGABRT));
        assert_eq!(signal_number("NOPE"), None);
        assert_eq!(signal_number("RTMIN+999"), None);
    }
}
