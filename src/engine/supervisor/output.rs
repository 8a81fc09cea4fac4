//! The supervisor's side of a container's streams: logs with rotation, and attached clients.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::engine::settings::LogOptions;
use crate::engine::wait::ExitInfo;

/// The attach socket's file name, in the container's directory.
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";

/// One stream's log file, rotated as [`LogOptions`] say: `NAME`, then `NAME.1` (newest) … `NAME.{max_files-1}`.
/// Beside each, its times (`NAME.times`, see [`crate::engine::logs::TIMES`]): what `logs --since` reads.
pub(crate) struct RotatingLog {
    path: PathBuf,
    options: LogOptions,
    file: File,
    size: u64,
    times: File,
    /// When the last time mark was written (none yet in this file).
    marked: Option<SystemTime>,
}

impl RotatingLog {
    /// Opens (appends to) `path`.
    pub fn open(path: PathBuf, options: LogOptions) -> std::io::Result<RotatingLog> {
        let file = append(&path)?;
        let size = file.metadata()?.len();
        let times = append(&times_of(&path))?;
        Ok(RotatingLog {
            path,
            options,
            file,
            size,
            times,
            marked: None,
        })
    }

    /// Marks the time the bytes from the current size on are written at, unless a mark is younger than the
    /// resolution: every byte is then within that much of its mark's time.
    fn mark(&mut self) -> std::io::Result<()> {
        let now = SystemTime::now();
        if self.marked.is_some_and(|t| {
            now.duration_since(t)
                .is_ok_and(|d| d < crate::engine::logs::TIMES_RESOLUTION)
        }) {
            return Ok(());
        }
        let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        self.times.write_all(format!("{nanos} {}\n", self.size).as_bytes())?;
        self.marked = Some(now);
        Ok(())
    }

    /// Writes `data`, rotating whenever the file would grow past the maximum size (a line may be cut at the
    /// boundary: no file ever exceeds it).
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = self.options.max_size.map_or(u64::MAX, |m| m.saturating_sub(self.size));
            if room == 0 {
                self.rotate()?;
                continue;
            }
            let n = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.mark()?;
            self.file.write_all(&data[..n])?;
            self.size += n as u64;
            data = &data[n..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.options.max_files.max(1);
        let numbered = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        // Each file with its times.
        let both = |p: PathBuf| [times_of(&p), p];
        if keep == 1 {
            for p in both(self.path.clone()) {
                remove(&p)?;
            }
        } else {
            for p in both(numbered(keep - 1)) {
                remove(&p)?;
            }
            for i in (1..keep - 1).rev() {
                for (from, to) in both(numbered(i)).into_iter().zip(both(numbered(i + 1))) {
                    rename_if_there(&from, &to)?;
                }
            }
            for (from, to) in both(self.path.clone()).into_iter().zip(both(numbered(1))) {
                rename_if_there(&from, &to)?;
            }
        }
        // A follower sees a new file under the name and moves on to it once it read the old one to its end.
        self.times = append(&times_of(&self.path))?;
        self.marked = None;
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The times file of log file `path`.
fn times_of(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(crate::engine::logs::TIMES);
    PathBuf::from(p)
}

fn append(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

fn remove(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_there(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What travels to an attached client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The greeting: the client is registered, it gets all output from now on.
    Hello,
    /// Output of stream 1 (stdout) or 2 (stderr).
    Output(u8, Vec<u8>),
    /// The container ended so (the last frame of its run).
    Exit(ExitInfo),
}

const HELLO: u8 = 0;
const EXIT: u8 = 3;

fn write_frame(to: &mut UnixStream, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&[kind, 0, 0, 0]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&data[..len as usize]);
    to.write_all(&frame)
}

/// The next frame from the supervisor; `None` at the end of the stream.
pub(crate) fn read_frame(from: &mut impl Read) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; 8];
    match from.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let mut data = vec![0u8; len];
    from.read_exact(&mut data)?;
    Ok(Some(match header[0] {
        HELLO => Frame::Hello,
        EXIT => Frame::Exit(serde_json::from_slice(&data).map_err(std::io::Error::other)?),
        stream => Frame::Output(stream, data),
    }))
}

/// What a client says first: attach to the streams.
pub(crate) const ATTACH: u8 = b'A';
/// What a client says first: resize the terminal (then rows and columns, big-endian `u16`s).
pub(crate) const RESIZE: u8 = b'R';

/// The attached clients, and where their input goes.
#[derive(Default)]
pub(crate) struct Clients {
    clients: Mutex<Vec<UnixStream>>,
    /// The running container's standard input (a pipe, or its terminal's master), if it reads any.
    input: Mutex<Option<File>>,
    /// The running container's terminal's master, if it has a terminal.
    terminal: Mutex<Option<File>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UnixStream>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `data` of `stream` to every client; a client that cannot take it within a second is dropped (a
    /// stuck client must not stop the container's output).
    pub fn send(&self, stream: u8, data: &[u8]) {
        self.lock().retain_mut(|c| write_frame(c, stream, data).is_ok());
    }

    /// Where clients' input goes from now on (the new run's standard input, or none).
    pub fn set_input(&self, input: Option<File>) {
        *self.input.lock().unwrap_or_else(PoisonError::into_inner) = input;
    }

    /// The terminal to resize from now on (the new run's, or none).
    pub fn set_terminal(&self, terminal: Option<File>) {
        *self.terminal.lock().unwrap_or_else(PoisonError::into_inner) = terminal;
    }

    /// Serves one connection: an attaching client, or a resize.
    fn serve_one(self: &Arc<Self>, mut client: UnixStream) {
        let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
        let mut first = [0u8; 1];
        let mut size = [0u8; 4];
        if client.read_exact(&mut first).is_err() {
            return;
        }
        match first[0] {
            ATTACH => {
                let _ = client.set_read_timeout(None);
                self.add(client);
            }
            RESIZE if client.read_exact(&mut size).is_ok() => {
                let size = rustix::termios::Winsize {
                    ws_row: u16::from_be_bytes([size[0], size[1]]),
                    ws_col: u16::from_be_bytes([size[2], size[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let resized = match self.terminal.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                    Some(t) => rustix::termios::tcsetwinsize(t, size).is_ok(),
                    None => false,
                };
                // The answer: a greeting when done; nothing (the end) when there is no terminal.
                if resized {
                    let _ = write_frame(&mut client, HELLO, &[]);
                }
            }
            _ => {}
        }
    }

    /// Tells every client how the container ended and lets it go.
    pub fn finish(&self, exit: ExitInfo) {
        let data = serde_json::to_vec(&exit).unwrap_or_default();
        for mut c in self.lock().drain(..) {
            let _ = write_frame(&mut c, EXIT, &data);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        self.set_input(None);
        self.set_terminal(None);
    }

    fn add(self: &Arc<Self>, mut client: UnixStream) {
        let _ = client.set_write_timeout(Some(Duration::from_secs(1)));
        let Ok(mut reader) = client.try_clone() else { return };
        let mut clients = self.lock();
        if write_frame(&mut client, HELLO, &[]).is_err() {
            return;
        }
        clients.push(client);
        drop(clients);
        let me = self.clone();
        let _ = std::thread::Builder::new()
            .name("wharf-attach-input".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(input) = me.input.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                        let _ = input.write_all(&buf[..n]);
                    }
                }
            });
    }
}

/// Accepts clients on `listener` for as long as the process lives.
pub(crate) fn serve(listener: UnixListener, clients: Arc<Clients>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("wharf-attach".into())
        .spawn(move || {
            for client in listener.incoming().flatten() {
                // A client that connects and says nothing must not hold up the next.
                let clients = clients.clone();
                let _ = std::thread::Builder::new()
                    .name("wharf-attach-client".into())
                    .spawn(move || clients.serve_one(client));
            }
        })
        .map(drop)
}

/// Copies `source` (a pipe or a terminal's master) into `log` and to the clients until it ends.
pub(crate) fn pump(
    mut source: File,
    stream: u8,
    mut log: RotatingLog,
    clients: Arc<Clients>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("wharf-log-{stream}"))
        .spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            // A terminal's master reads EIO once the container's side is closed.
            while let Ok(n) = source.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Err(e) = log.write(&buf[..n]) {
                    eprintln!("wharf supervisor: writing {}: {e}", log.path.display());
                }
                clients.send(stream, &buf[..n]);
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_max_files_of_at_most_max_size() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("stdout.log");
        let options = LogOptions {
            max_size: Some(10),
            max_files: 3,
        };
        let mut log = RotatingLog::open(path.clone(), options).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..10 {
            log.write(format!("line {i}\n").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Each file with its times beside it.
        let times: Vec<String> = names.iter().filter(|n| n.ends_with(".times")).cloned().collect();
        names.retain(|n| !n.ends_with(".times"));
        assert_eq!(names, ["stdout.log", "stdout.log.1", "stdout.log.2"]);
        assert_eq!(times, ["stdout.log.1.times", "stdout.log.2.times", "stdout.log.times"]);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap_or_default();
        for n in &names {
            assert!(read(n).len() <= 10, "{n}: {:?}", read(n));
        }
        // The newest bytes are in the current file, the ones before them in .1 and .2.
        let all = read("stdout.log.2") + &read("stdout.log.1") + &read("stdout.log");
        assert!(all.ends_with("line 8\nline 9\n"), "{all:?}");
        let written: String = (0..10).map(|i| format!("line {i}\n")).collect();
        assert!(written.ends_with(&all), "{all:?}");
    }

    #[test]
    fn one_file_is_started_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("stderr.log");
        let options = LogOptions {
            max_size: Some(4),
            max_files: 1,
        };
        let mut log = RotatingLog::open(path.clone(), options).unwrap_or_else(|e| panic!("{e}"));
        log.write(b"abcdefghij").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "ij");
        // The one file, and its times.
        assert_eq!(std::fs::read_dir(dir.path()).map(Iterator::count).unwrap_or(0), 2);
    }

    #[test]
    fn frames_round_trip() {
        let (mut a, mut b) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        write_frame(&mut a, HELLO, &[]).unwrap_or_else(|e| panic!("{e}"));
        write_frame(&mut a, 2, b"err").unwrap_or_else(|e| panic!("{e}"));
        let exit = ExitInfo {
            code: Some(3),
            signal: None,
            oom_killed: false,
        };
        write_frame(&mut a, EXIT, &serde_json::to_vec(&exit).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        drop(a);
        let next = |b: &mut UnixStream| read_frame(b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next(&mut b), Some(Frame::Hello));
        assert_eq!(next(&mut b), Some(Frame::Output(2, b"err".to_vec())));
        assert_eq!(next(&mut b), Some(Frame::Exit(exit)));
        assert_eq!(next(&mut b), None);
    }
}
