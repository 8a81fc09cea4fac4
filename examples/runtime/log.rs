//! `--log FILE` / `--log-format text|json`, as runc writes them: containerd reads the last `"level":"error"` line
//! of the JSON log to report why a command failed.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"`.
    Text,
    /// `{"level":"error","msg":"…","time":"…"}`.
    Json,
}

struct Sink {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Open the log file (appending) if one was given.
pub fn init(path: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let file = path
        .map(|p| std::fs::OpenOptions::new().create(true).append(true).open(p))
        .transpose()?;
    if let Ok(mut s) = SINK.lock() {
        *s = Some(Sink { file, format, debug });
    }
    Ok(())
}

fn write(level: &str, msg: &str) {
    let Ok(mut guard) = SINK.lock() else { return };
    let Some(sink) = guard.as_mut() else { return };
    if level == "debug" && !sink.debug {
        return;
    }
    let time = now_rfc3339();
    let line = match sink.format {
        LogFormat::Json => {
            let v = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{v}\n")
        }
        LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
    };
    match &mut sink.file {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None if level != "error" => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        // Errors without a log file are printed plainly by main.
        None => {}
    }
}

/// Log an error (main also prints it to stderr).
pub fn error(msg: &str) {
    write("error", msg);
}

/// Log a warning (a poststart or poststop hook failed: the lifecycle goes on).
pub fn warn(msg: &str) {
    write("warning", msg);
}

/// Log a step when `--debug` is set.
pub fn debug(msg: &str) {
    write("debug", msg);
}

/// Now, as RFC 3339 with nanoseconds in UTC (Go's `time.RFC3339Nano`, as runc prints times).
pub fn now_rfc3339() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Seconds and nanoseconds since the epoch as RFC 3339 in UTC (times before 1970 are written
/// as the epoch).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let seconds = wharf::image::config::rfc3339(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64));
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    };
    format!("{}{frac}Z", seconds.trim_end_matches('Z'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400, 500_000_000), "2000-02-29T00:00:00.5Z");
        assert_eq!(super::rfc3339(1_700_000_000, 123), "2023-11-14T22:13:20.000000123Z");
    }
}
