//! Attaching to a detached container's streams through its supervisor (`docker attach`).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::Engine;
use super::error::{Error, Result};
use super::logs::LogStream;
use super::records::process_exists;
use super::supervisor::{ATTACH, ATTACH_SOCKET, Frame, RESIZE, read_frame, short_path};
use super::wait::ExitInfo;

/// What an [`Attached`] client receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachEvent {
    /// Output the container wrote after the client attached.
    Output(LogStream, Vec<u8>),
    /// The container's run ended so; nothing follows.
    Exited(ExitInfo),
}

/// A connection to a running detached container's streams ([`Engine::attach`]): its output from the moment of
/// attaching, and its standard input. Dropping it detaches; the container runs on.
///
/// # Examples
/// ```no_run
/// use wharf::engine::{AttachEvent, Engine};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::open("/var/lib/wharf")?;
/// let mut attached = engine.attach("web")?;
/// std::io::Write::write_all(&mut attached.input()?, b"hello\n")?;
/// while let Some(event) = attached.next_event()? {
///     match event {
///         AttachEvent::Output(_, bytes) => print!("{}", String::from_utf8_lossy(&bytes)),
///         AttachEvent::Exited(exit) => println!("exited: {:?}", exit.status()),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Attached {
    socket: UnixStream,
}

impl Attached {
    /// The next output (or the exit); `None` once the container's run has ended or its supervisor is gone.
    /// Blocks until there is some.
    ///
    /// # Errors
    /// Reading the socket failed.
    pub fn next_event(&mut self) -> std::io::Result<Option<AttachEvent>> {
        loop {
            return Ok(match read_frame(&mut self.socket)? {
                None => None,
                Some(Frame::Hello) => continue,
                Some(Frame::Output(2, data)) => Some(AttachEvent::Output(LogStream::Stderr, data)),
                Some(Frame::Output(_, data)) => Some(AttachEvent::Output(LogStream::Stdout, data)),
                Some(Frame::Exit(exit)) => Some(AttachEvent::Exited(exit)),
            });
        }
    }

    /// A writer to the container's standard input (what it reads with
    /// [`ContainerSettings::stdin_open`](super::ContainerSettings::stdin_open) or a terminal; dropped otherwise):
    /// the connection itself, so shutting it down detaches (the reader's next event is the end).
    ///
    /// # Errors
    /// The socket cannot be duplicated.
    pub fn input(&self) -> std::io::Result<UnixStream> {
        self.socket.try_clone()
    }
}

impl Engine {
    /// Attaches to running detached container `name` ([`Output::Logs`](super::Output::Logs)) through its
    /// supervisor (`docker attach`): the output it writes from now on, and its standard input. When this returns,
    /// the supervisor has registered the client: nothing written after is missed.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotRunning`] when it does not run under a live supervisor.
    pub fn attach(&self, name: &str) -> Result<Attached> {
        self.records().get(name)?;
        let socket = self.ask_supervisor(name, &[ATTACH])?;
        socket
            .set_read_timeout(None)
            .map_err(Error::io("attach to", self.records().path(name).join(ATTACH_SOCKET)))?;
        Ok(Attached { socket })
    }

    /// Sets the size of running detached container `name`'s terminal ([`ContainerSettings::tty`]), as
    /// `docker attach` does from the client's terminal (the container gets `SIGWINCH`).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotRunning`] when it does not run under a live supervisor or has no
    /// terminal.
    ///
    /// [`ContainerSettings::tty`]: super::ContainerSettings::tty
    pub fn resize(&self, name: &str, rows: u16, columns: u16) -> Result<()> {
        self.records().get(name)?;
        let mut message = vec![RESIZE];
        message.extend_from_slice(&rows.to_be_bytes());
        message.extend_from_slice(&columns.to_be_bytes());
        self.ask_supervisor(name, &message).map(drop)
    }

    /// Connects to `name`'s supervisor, says `message` and waits for its greeting.
    fn ask_supervisor(&self, name: &str, message: &[u8]) -> Result<UnixStream> {
        if !process_exists(self.layout(), name) {
            // Stopped, or waiting to be restarted: nothing to talk to, as with docker.
            return Err(Error::NotRunning(name.to_string()));
        }
        let path = self.records().path(name);
        let dir = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
        let not_running = || Error::NotRunning(name.to_string());
        let mut socket = UnixStream::connect(short_path(&dir, ATTACH_SOCKET)).map_err(|_| not_running())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(Error::io("talk to", path.join(ATTACH_SOCKET)))?;
        socket.write_all(message).map_err(|_| not_running())?;
        match read_frame(&mut socket) {
            Ok(Some(Frame::Hello)) => Ok(socket),
            _ => Err(not_running()),
        }
    }
}
