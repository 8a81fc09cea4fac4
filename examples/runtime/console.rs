//! `--console-socket`: hand the pty master to whoever listens on a Unix socket, as runc does (one `sendmsg` with
//! the pty's name as data and the master as `SCM_RIGHTS`).

use std::fs::File;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

use crate::error::{Error, Result};

/// Send `master` over the socket at `socket`.
///
/// # Errors
/// [`Error::Console`] if the socket cannot be reached or the message not sent.
pub fn send(socket: &Path, master: &File) -> Result<()> {
    let err = |source: std::io::Error| Error::Console {
        path: socket.to_owned(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(err)?;
    let name = rustix::pty::ptsname(master, Vec::new()).map_err(|e| err(e.into()))?;
    let fds = [master.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(err(std::io::ErrorKind::OutOfMemory.into()));
    }
    sendmsg(
        &stream,
        &[IoSlice::new(name.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(|e| err(e.into()))?;
    Ok(())
}

#[path = "../common/raw_mode.rs"]
mod raw_mode;
use raw_mode::RawMode;

/// A pty proxied to this process's stdin and stdout (`run` or `exec` in the foreground without a console socket,
/// as runc does). [`Proxy::finish`] waits for the output to drain once the process ended.
pub struct Proxy {
    output: std::thread::JoinHandle<()>,
    _raw: RawMode,
}

impl Proxy {
    /// Start copying: stdin to the master, the master to stdout. The host terminal (if stdin is one) goes raw and
    /// lends its window size.
    pub fn start(master: File) -> std::io::Result<Proxy> {
        if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
            let _ = rustix::termios::tcsetwinsize(&master, size);
        }
        let raw = RawMode::enter();
        let mut to_master = master.try_clone()?;
        // Never joined: it blocks on stdin; it ends with the process.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut to_master);
        });
        let mut from_master = master;
        let output = std::thread::spawn(move || {
            // EIO once every slave fd is closed: the normal end.
            let _ = std::io::copy(&mut from_master, &mut std::io::stdout());
        });
        Ok(Proxy { output, _raw: raw })
    }

    /// Wait for the rest of the output.
    pub fn finish(self) {
        let _ = self.output.join();
    }
}
