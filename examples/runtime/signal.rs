//! Signal names and numbers as runc parses them: `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`.

use crate::error::{Error, Result};

/// Linux's generic signal numbers (x86, arm and most others).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parse a signal by name (with or without `SIG`, any case) or number.
///
/// # Errors
/// [`Error::Signal`] for anything else.
pub fn parse(s: &str) -> Result<i32> {
    let bad = || Error::Signal(s.to_owned());
    if let Ok(n) = s.parse::<i32>() {
        // 0 checks that the process exists, as kill(1) and runc allow.
        return if (0..=RTMAX).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some((_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, off: &str, sign: i32| -> Result<i32> {
        let o: i32 = if off.is_empty() {
            0
        } else {
            off.parse().map_err(|_| bad())?
        };
        let n = base + sign * o;
        if (RTMIN..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(off) = name.strip_prefix("RTMIN") {
        return rt(RTMIN, off.trim_start_matches('+'), 1);
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        return rt(RTMAX, off.trim_start_matches('-'), -1);
    }
    Err(bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse;

    #[test]
    fn names_and_numbers() {
        for (s, n) in [
            ("TERM", 15),
            ("sigkill", 9),
            ("SIGUSR1", 10),
            ("9", 9),
            ("0", 0),
            ("RTMIN+2", 36),
            ("RTMAX", 64),
        ] {
            assert_eq!(parse(s).unwrap(), n, "{s}");
        }
        for bad in ["", "65", "SIGFOO", "-1", "RTMIN+40"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
