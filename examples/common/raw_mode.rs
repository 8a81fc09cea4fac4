//! The host terminal in raw mode while a container's pty is proxied (shared by the example
//! binaries through `#[path]`).

/// Puts stdin's terminal in raw mode; restores its settings when dropped. Does nothing when
/// stdin is not a terminal.
pub struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    /// Enters raw mode, remembering the settings to restore.
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        }
        RawMode(saved)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, t);
        }
    }
}
