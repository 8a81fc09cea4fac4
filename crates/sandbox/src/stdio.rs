//! The container's standard streams ([`Stdio`], [`StdioConfig`]) and its terminal: what the child gets as fds 0, 1,
//! 2 and 3.., and what the caller keeps.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};
use crate::fds::{ChildFds, high, pipe};

/// Where one of the container's standard streams comes from or goes to.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe; the caller's end is available from the container
    /// ([`Container::take_stdout`](crate::Container::take_stdout), ...).
    Piped,
    /// A file descriptor the caller owns (a file, a socket, a pipe end).
    Fd(OwnedFd),
}

impl From<File> for Stdio {
    fn from(f: File) -> Self {
        Stdio::Fd(f.into())
    }
}

impl From<OwnedFd> for Stdio {
    fn from(f: OwnedFd) -> Self {
        Stdio::Fd(f)
    }
}

/// The standard streams of a container's process, plus extra fds passed in as 3, 4, ...
#[derive(Debug, Default)]
pub struct StdioConfig {
    /// fd 0.
    pub stdin: Stdio,
    /// fd 1.
    pub stdout: Stdio,
    /// fd 2.
    pub stderr: Stdio,
    /// Passed to the container as fds 3, 4, ... in order; every other fd is closed.
    pub extra_fds: Vec<OwnedFd>,
}

impl StdioConfig {
    /// All three streams inherited from the caller.
    pub fn inherit() -> Self {
        StdioConfig::default()
    }
    /// stdin from /dev/null, stdout and stderr piped back to the caller.
    pub fn piped() -> Self {
        StdioConfig {
            stdin: Stdio::Null,
            stdout: Stdio::Piped,
            stderr: Stdio::Piped,
            extra_fds: Vec::new(),
        }
    }
}

pub(crate) struct StdioSetup {
    pub(crate) sources: [RawFd; 3],
    pub(crate) extra: Vec<RawFd>,
    pub(crate) pty_slave: RawFd,
    pub(crate) pty_path: Option<std::ffi::CString>,
    pub(crate) parent_ends: [Option<File>; 3],
    pub(crate) pty_master: Option<File>,
    /// The child allocates the terminal in the container and sends its master here (its end: `pty_sock`).
    pub(crate) pty_recv: Option<OwnedFd>,
    pub(crate) pty_sock: RawFd,
    pub(crate) winsize: libc::winsize,
}

impl StdioSetup {
    /// The master of a terminal the child allocated, once it has reported (it is sent before `execve`).
    pub(crate) fn take_master(&mut self) -> Result<Option<File>> {
        let Some(sock) = self.pty_recv.take() else {
            return Ok(self.pty_master.take());
        };
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 4];
        // SAFETY: recvmsg into stack buffers that outlive the call; the control data is read only if present.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if n != 1
                || cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(Error::Os {
                    what: "receive the terminal's master from the container",
                    source: if n < 0 {
                        std::io::Error::last_os_error()
                    } else {
                        std::io::ErrorKind::UnexpectedEof.into()
                    },
                });
            }
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
            Ok(Some(File::from(OwnedFd::from_raw_fd(fd))))
        }
    }
}

/// Whether the spec mounts a devpts at /dev/pts: then a terminal is allocated from it, inside the container, as
/// runc does (its name is valid there; `tty` and `ttyname` work), rather than from the host's.
pub(crate) fn has_devpts(spec: &Spec) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts"))
}

pub(crate) fn setup_stdio(
    cfg: StdioConfig,
    terminal: bool,
    console: Option<(u64, u64)>,
    in_container: bool,
    fds: &mut ChildFds,
) -> Result<StdioSetup> {
    let base = 3 + cfg.extra_fds.len() as RawFd;
    let mut out = StdioSetup {
        sources: [-1; 3],
        extra: Vec::new(),
        pty_slave: -1,
        pty_recv: None,
        pty_sock: -1,
        // SAFETY: winsize is plain integers.
        winsize: unsafe { std::mem::zeroed() },
        pty_path: None,
        parent_ends: [None, None, None],
        pty_master: None,
    };
    for (i, s) in [cfg.stdin, cfg.stdout, cfg.stderr].into_iter().enumerate() {
        match s {
            Stdio::Inherit => {}
            Stdio::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(Error::io("open", "/dev/null"))?;
                out.sources[i] = fds.keep(high(f.as_raw_fd(), base)?);
            }
            Stdio::Piped => {
                let (r, w) = pipe()?;
                let (mine, theirs) = if i == 0 { (w, r) } else { (r, w) };
                out.sources[i] = fds.keep(high(theirs.as_raw_fd(), base)?);
                out.parent_ends[i] = Some(File::from(mine));
            }
            Stdio::Fd(fd) => out.sources[i] = fds.keep(high(fd.as_raw_fd(), base)?),
        }
    }
    for fd in &cfg.extra_fds {
        out.extra.push(fds.keep(high(fd.as_raw_fd(), base)?));
    }
    if terminal && in_container {
        let mut pair = [-1; 2];
        // SAFETY: socketpair fills the two-element array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } < 0
        {
            return Err(Error::Os {
                what: "socketpair for the terminal",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: both fds were just created and are ours.
        let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        out.pty_sock = fds.keep(high(theirs.as_raw_fd(), base)?);
        out.pty_recv = Some(mine);
        if let Some((h, w)) = console {
            out.winsize.ws_row = h as u16;
            out.winsize.ws_col = w as u16;
        }
    } else if terminal {
        // SAFETY: standard pty allocation; every result is checked.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if m < 0 {
                return Err(Error::Os {
                    what: "posix_openpt",
                    source: std::io::Error::last_os_error(),
                });
            }
            let master = File::from(OwnedFd::from_raw_fd(m));
            if libc::grantpt(m) < 0 || libc::unlockpt(m) < 0 {
                return Err(Error::Os {
                    what: "unlockpt",
                    source: std::io::Error::last_os_error(),
                });
            }
            let mut name = [0 as libc::c_char; 128];
            if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
                return Err(Error::Os {
                    what: "ptsname",
                    source: std::io::Error::last_os_error(),
                });
            }
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if s < 0 {
                return Err(Error::Os {
                    what: "open pty slave",
                    source: std::io::Error::last_os_error(),
                });
            }
            let slave = OwnedFd::from_raw_fd(s);
            if let Some((h, w)) = console {
                let ws = libc::winsize {
                    ws_row: h as u16,
                    ws_col: w as u16,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                libc::ioctl(m, libc::TIOCSWINSZ, &ws);
            }
            out.pty_slave = fds.keep(high(slave.as_raw_fd(), base)?);
            out.pty_path = Some(std::ffi::CStr::from_ptr(name.as_ptr()).to_owned());
            out.pty_master = Some(master);
        }
    }
    Ok(out)
}
