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
