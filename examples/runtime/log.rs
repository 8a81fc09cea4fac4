//! `--log FILE` / `--log-format text|json`, as runc writes them: containerd reads the last `"level":"error"` line
//! of the JSON log to report why a command failed.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Seconds and nanoseconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_owned()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
