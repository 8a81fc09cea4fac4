//! A container's output: what it wrote so far, and following it while it runs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Engine;
use super::error::{Error, Result};
use super::records::process_exists;

/// The suffix of a log file's times (`stdout.log.times`, `stdout.log.1.times`), which its supervisor writes beside
/// it: lines `NANOS OFFSET` (nanoseconds since the epoch, a byte offset in the log), one whenever it writes and the
/// last mark is older than [`TIMES_RESOLUTION`], so every byte was written within that of its mark.
pub(crate) const TIMES: &str = ".times";

/// How finely `logs --since` tells times apart: it gives what was written at or after the time asked, and at most
/// this much before it.
pub(crate) const TIMES_RESOLUTION: Duration = Duration::from_millis(10);

/// Where what was written at or after `since` starts in log file `path` of `len` bytes (`len` when nothing was);
/// `None` when it holds output but no times (written by the container itself, without a supervisor).
fn start_since(path: &Path, len: u64, since: SystemTime) -> Option<u64> {
    let mut times = path.as_os_str().to_owned();
    times.push(TIMES);
    let Ok(times) = std::fs::read_to_string(PathBuf::from(times)) else {
        return (len == 0).then_some(0);
    };
    // A mark's bytes were written within TIMES_RESOLUTION after it.
    let cutoff = since
        .checked_sub(TIMES_RESOLUTION)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let start = times.lines().find_map(|l| {
        let (nanos, offset) = l.split_once(' ')?;
        (nanos.parse::<u128>().ok()? > cutoff).then(|| offset.parse::<u64>().ok())?
    });
    Some(start.unwrap_or(len))
}

/// A container's output so far ([`Output::Logs`](super::Output::Logs)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logs {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

impl Logs {
    /// The last `lines` lines of each stream (`docker logs --tail N`); a last line without its newline counts.
    ///
    /// # Examples
    /// ```
    /// use wharf::engine::Logs;
    /// let logs = Logs { stdout: b"a\nb\nc\n".to_vec(), stderr: b"x".to_vec() };
    /// assert_eq!(logs.tail(2), Logs { stdout: b"b\nc\n".to_vec(), stderr: b"x".to_vec() });
    /// ```
    pub fn tail(self, lines: usize) -> Logs {
        Logs {
            stdout: last_lines(self.stdout, lines),
            stderr: last_lines(self.stderr, lines),
        }
    }
}

/// The last `n` lines of `text`.
fn last_lines(text: Vec<u8>, n: usize) -> Vec<u8> {
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let start = match n {
        0 => text.len(),
        _ => body
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'\n')
            .nth(n - 1)
            .map_or(0, |(i, _)| i + 1),
    };
    text[start..].to_vec()
}

/// One of a container's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    pub(crate) fn file(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout.log",
            LogStream::Stderr => "stderr.log",
        }
    }
}

/// What [`Engine::follow_logs`] returns: a reader of one output stream from its start (its rotated files first,
/// oldest first) that, at its end, waits for more while the container may still write, and ends once it has
/// stopped (or is removed). It moves on to the new file when its supervisor rotates the log. Reads block.
#[derive(Debug)]
pub struct FollowLogs {
    engine: Engine,
    name: String,
    stream: LogStream,
    /// Rotated files still to read before the current one, oldest first.
    rotated: Vec<PathBuf>,
    file: Option<File>,
}

impl FollowLogs {
    /// Whether the container may still write: it is being made, runs, or is being reaped.
    fn may_write(&self) -> bool {
        let Ok(r) = self.engine.records().get(&self.name) else {
            return false;
        };
        let reaping = r.exit.is_none() && r.owner.is_some_and(|o| o.alive());
        r.creating || (r.started.is_some() && (reaping || process_exists(self.engine.layout(), &self.name)))
    }

    fn current(&self) -> PathBuf {
        self.engine.records().path(&self.name).join(self.stream.file())
    }

    /// Whether the log was rotated since `file` was opened: its name holds another file now.
    fn rotated_away(&self) -> bool {
        let (Some(file), Ok(now)) = (&self.file, std::fs::metadata(self.current())) else {
            return false;
        };
        file.metadata()
            .is_ok_and(|open| (open.dev(), open.ino()) != (now.dev(), now.ino()))
    }

    fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.file.is_none() {
                let path = if self.rotated.is_empty() {
                    self.current()
                } else {
                    self.rotated.remove(0)
                };
                match File::open(path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.rotated.is_empty() => return Ok(0),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            let n = self.file.as_mut().map_or(Ok(0), |f| f.read(buf))?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // At the end of a file: the next one, if there is one.
            if self.rotated.is_empty() && !self.rotated_away() {
                return Ok(0);
            }
            self.file = None;
        }
    }
}

impl Read for FollowLogs {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.read_some(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if !self.may_write() {
                // What it wrote between the last read and its end.
                return self.read_some(buf);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The rotated files of log `file` in `dir` that exist, oldest first (`file.N` … `file.1`).
fn rotated_files(dir: &Path, file: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = (1..)
        .map(|i| dir.join(format!("{file}.{i}")))
        .take_while(|p| p.exists())
        .collect();
    found.reverse();
    found
}

/// A log with its rotated files, oldest first.
fn read_log(dir: &Path, file: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for path in rotated_files(dir, file).into_iter().chain([dir.join(file)]) {
        out.extend(std::fs::read(path).unwrap_or_default());
    }
    out
}

/// The log files of `file` in `dir` in the order written (rotated ones first) that hold something written at or
/// after `since`, each with where that starts.
fn files_since(dir: &Path, file: &str, since: SystemTime) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for path in rotated_files(dir, file).into_iter().chain([dir.join(file)]) {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        // Named by its stream, not its path under the store: errors do not show where wharf keeps things.
        let start = start_since(&path, len, since).ok_or_else(|| Error::InvalidSetting {
            setting: "since",
            value: file.trim_end_matches(".log").to_string(),
            reason: "this output was written without times (by a container run without its supervisor)".into(),
        })?;
        if start < len {
            out.push((path, start));
        }
    }
    Ok(out)
}

impl Engine {
    /// What container `name` wrote at or after `since` (`docker logs --since`), to 10 ms: the times
    /// its supervisor kept beside its logs.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::InvalidSetting`] for output kept without times (a container whose
    /// output went to its logs without a supervisor).
    pub fn logs_since(&self, name: &str, since: SystemTime) -> Result<Logs> {
        self.records().get(name)?;
        let dir = self.records().path(name);
        let read = |stream: LogStream| -> Result<Vec<u8>> {
            let mut out = Vec::new();
            for (path, start) in files_since(&dir, stream.file(), since)? {
                let mut f = File::open(&path).map_err(Error::io("open", &path))?;
                f.seek(SeekFrom::Start(start)).map_err(Error::io("seek", &path))?;
                f.read_to_end(&mut out).map_err(Error::io("read", &path))?;
            }
            Ok(out)
        };
        Ok(Logs {
            stdout: read(LogStream::Stdout)?,
            stderr: read(LogStream::Stderr)?,
        })
    }

    /// As [`Engine::follow_logs`], from what was written at or after `since` (`docker logs -f --since`).
    ///
    /// # Errors
    /// As [`Engine::logs_since`].
    pub fn follow_logs_since(&self, name: &str, stream: LogStream, since: SystemTime) -> Result<FollowLogs> {
        let mut follow = self.follow_logs(name, stream)?;
        let dir = self.records().path(name);
        let current = dir.join(stream.file());
        let files = files_since(&dir, stream.file(), since)?;
        let (path, start) = files.first().cloned().unwrap_or_else(|| {
            let len = std::fs::metadata(&current).map_or(0, |m| m.len());
            (current.clone(), len)
        });
        match File::open(&path) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(start)).map_err(Error::io("seek", &path))?;
                follow.rotated = files
                    .iter()
                    .skip(1)
                    .map(|(p, _)| p.clone())
                    .filter(|p| *p != current)
                    .collect();
                follow.file = Some(f);
            }
            // Not written yet: from its start once it is.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => follow.rotated.clear(),
            Err(e) => return Err(Error::io("open", &path)(e)),
        }
        Ok(follow)
    }

    /// What container `name` has written so far to its standard output and error (`docker logs`), the rotated
    /// files that are kept first; empty for a container with [`Output::Inherit`](super::Output::Inherit).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`].
    pub fn logs(&self, name: &str) -> Result<Logs> {
        self.records().get(name)?;
        let dir = self.records().path(name);
        Ok(Logs {
            stdout: read_log(&dir, LogStream::Stdout.file()),
            stderr: read_log(&dir, LogStream::Stderr.file()),
        })
    }

    /// Container `name`'s `stream` from its start, followed while it runs (`docker logs -f`, one stream); see
    /// [`FollowLogs`]. A container that is not running gives what it wrote and ends.
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`].
    pub fn follow_logs(&self, name: &str, stream: LogStream) -> Result<FollowLogs> {
        self.records().get(name)?;
        Ok(FollowLogs {
            engine: self.clone(),
            name: name.to_string(),
            stream,
            rotated: rotated_files(&self.records().path(name), stream.file()),
            file: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn tails() {
        let t = |s: &str, n| String::from_utf8(last_lines(s.as_bytes().to_vec(), n)).unwrap_or_default();
        assert_eq!(t("a\nb\nc\n", 1), "c\n");
        assert_eq!(t("a\nb\nc\n", 3), "a\nb\nc\n");
        assert_eq!(t("a\nb\nc\n", 9), "a\nb\nc\n");
        assert_eq!(t("a\nb\nc", 2), "b\nc");
        assert_eq!(t("a\nb\n", 0), "");
        assert_eq!(t("", 2), "");
        assert_eq!(t("\n\n", 1), "\n");
    }
}
