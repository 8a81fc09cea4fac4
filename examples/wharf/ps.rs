//! `ps` as docker prints it: the columns and words of `docker ps`, its filters, and `--format` (a Go-template
//! subset of the column fields, or `json`).

use std::time::{Duration, SystemTime};

use wharf::engine::{ContainerInfo, ListOptions, State};
use wharf::image::Reference;

use crate::{Ctx, Result};

/// The flags of `wharf ps`.
#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Also containers that are not running
    #[arg(short, long)]
    pub all: bool,
    /// Only the containers' ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: status=created|running|restarting|exited, name=PART, label=KEY[=VALUE], ancestor=IMAGE, id=PREFIX
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// A Go-template of the fields ({{.ID}} {{.Image}} {{.Command}} {{.CreatedAt}} {{.RunningFor}} {{.Ports}} {{.Size}}
    /// {{.State}} {{.Status}} {{.Names}} {{.Labels}}), `table TEMPLATE`, or `json`
    #[arg(long)]
    pub format: Option<String>,
    /// Show whole ids and commands
    #[arg(long)]
    pub no_trunc: bool,
    /// Also what each container wrote, and with its image's size ("2B (virtual 2.13MB)")
    #[arg(short, long)]
    pub size: bool,
}

/// The fields `--format` knows, in `docker ps`'s column order where they are columns.
const FIELDS: &[&str] = &[
    "ID",
    "Image",
    "Command",
    "CreatedAt",
    "RunningFor",
    "Ports",
    "State",
    "Status",
    "Names",
    "Labels",
    "Size",
];

/// The default table: docker's columns.
const TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// `docker ps [-a] [-q] [--filter …] [--format …]`.
pub fn ps(ctx: &Ctx, args: &PsArgs) -> Result<()> {
    let mut filters = Vec::new();
    for f in &args.filter {
        filters.push(Filter::parse(f)?);
    }
    // As docker: a status filter looks at every container, running or not; a restarting one counts as running.
    let all = args.all || filters.iter().any(|f| matches!(f, Filter::Status(_)));
    let now = SystemTime::now();
    let rows: Vec<Row> = ctx
        .engine
        .list(&ListOptions {
            all: true,
            ..Default::default()
        })
        .iter()
        .filter(|c| all || c.restarting || matches!(c.state, State::Running | State::Creating))
        .filter(|c| filters.iter().all(|f| f.matches(c)))
        .map(|c| Row::of(c, now, !args.no_trunc))
        .collect();
    let mut rows = rows;
    // As docker: a template that shows the size asks for it.
    if args.size || args.format.as_deref().is_some_and(|f| f.contains(".Size")) {
        let mut sizes = crate::images::LayerSizes::default();
        for r in &mut rows {
            r.size = size(ctx, &r.names, &mut sizes);
        }
    }
    let mut out = String::new();
    if args.quiet {
        for r in &rows {
            out.push_str(&r.id);
            out.push('\n');
        }
    } else if args.format.as_deref() == Some("json") {
        for r in &rows {
            out.push_str(&serde_json::to_string(&r.json())?);
            out.push('\n');
        }
    } else {
        let sized = format!("{TABLE}\t{{{{.Size}}}}");
        let format = args.format.as_deref().unwrap_or(if args.size { &sized } else { TABLE });
        let (table, template) = match format.strip_prefix("table") {
            Some(t) => (true, t.trim_start()),
            None => (false, format),
        };
        let template = Template::parse(&template.replace("\\t", "\t").replace("\\n", "\n"))?;
        let mut lines = Vec::new();
        if table {
            lines.push(template.render(&|f| header(f).to_string()));
        }
        for r in &rows {
            lines.push(template.render(&|f| r.field(f)));
        }
        out = if table {
            tabulate(&lines, 10)
        } else {
            lines.join("\n") + "\n"
        };
        if lines.is_empty() {
            out.clear();
        }
    }
    crate::print(&out)
}

/// A `--filter KEY=VALUE`.
enum Filter {
    Status(String),
    Name(String),
    Label(String, Option<String>),
    Ancestor(String),
    Id(String),
}

impl Filter {
    fn parse(s: &str) -> Result<Filter> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("bad format of filter (expected name=value): {s}"))?;
        Ok(match key {
            "status" => {
                const STATUSES: &[&str] = &["created", "running", "restarting", "exited"];
                if !STATUSES.contains(&value) {
                    return Err(format!("invalid filter 'status={value}' (one of {})", STATUSES.join(", ")).into());
                }
                Filter::Status(value.to_string())
            }
            "name" => Filter::Name(value.to_string()),
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "ancestor" => Filter::Ancestor(value.to_string()),
            "id" => Filter::Id(value.to_string()),
            _ => return Err(format!("invalid filter '{key}'").into()),
        })
    }

    fn matches(&self, c: &ContainerInfo) -> bool {
        match self {
            Filter::Status(s) => state_word(c) == s,
            Filter::Name(n) => c.name.contains(n.as_str()),
            Filter::Label(k, v) => {
                let value = c.settings.as_ref().and_then(|s| s.labels.get(k));
                value.is_some() && (v.is_none() || value == v.as_ref())
            }
            Filter::Ancestor(i) => {
                c.image == *i
                    || short_image(&c.image) == *i
                    || c.image.parse::<Reference>().is_ok_and(|r| r.familiar() == *i)
            }
            Filter::Id(p) => c.id.starts_with(p.as_str()),
        }
    }
}

/// docker's SIZE of `ps -s`: what container `name` wrote, and that with its image's layers ("2B (virtual
/// 2.13MB)"); empty where it cannot be told.
fn size(ctx: &Ctx, name: &str, sizes: &mut crate::images::LayerSizes) -> String {
    let Ok(written) = ctx.engine.size_rw(name) else {
        return String::new();
    };
    let image = ctx
        .engine
        .inspect(name)
        .ok()
        .and_then(|c| c.image.parse::<Reference>().ok())
        .and_then(|r| ctx.store.image(&r, &ctx.platform).ok())
        .and_then(|i| sizes.of(ctx, &i).ok())
        .map_or(0, |layers| layers.iter().map(|(_, s)| s).sum::<u64>());
    format!(
        "{} (virtual {})",
        crate::usage::size3(written),
        crate::usage::size3(written + image)
    )
}

/// The image as a user names it: docker's short form, without `:latest`.
pub(crate) fn short_image(image: &str) -> String {
    let familiar = image.parse::<Reference>().map_or(image.to_string(), |i| i.familiar());
    familiar
        .strip_suffix(":latest")
        .map_or(familiar.clone(), str::to_string)
}

/// docker's `State` word: created, running, restarting, exited (and creating while being made).
fn state_word(c: &ContainerInfo) -> &'static str {
    if c.restarting { "restarting" } else { c.state.as_str() }
}

/// One container's fields, as docker formats them.
struct Row {
    id: String,
    image: String,
    command: String,
    created_at: String,
    running_for: String,
    ports: String,
    state: &'static str,
    status: String,
    names: String,
    labels: String,
    size: String,
}

impl Row {
    fn of(c: &ContainerInfo, now: SystemTime, trunc: bool) -> Row {
        let ago = |t: SystemTime| format!("{} ago", human_duration(now.duration_since(t).unwrap_or_default()));
        let exit_code = c.exit.and_then(|e| e.status()).unwrap_or(255);
        let status = match c.state {
            _ if c.restarting => format!("Restarting ({exit_code}) {}", c.finished.map(ago).unwrap_or_default()),
            State::Running => format!(
                "Up {}",
                human_duration(now.duration_since(c.started.unwrap_or(c.created)).unwrap_or_default())
            ),
            State::Created => "Created".to_string(),
            State::Creating => "Creating".to_string(),
            State::Exited => match c.finished {
                Some(t) => format!("Exited ({exit_code}) {}", ago(t)),
                None => format!("Exited ({exit_code})"),
            },
        };
        let command = c.command.join(" ");
        let labels = c.settings.as_ref().map(|s| &s.labels);
        Row {
            id: if trunc { c.short_id().to_string() } else { c.id.clone() },
            image: short_image(&c.image),
            command: go_quote(&if trunc { ellipsis(&command, 20) } else { command }),
            created_at: wharf::image::config::rfc3339(c.created)
                .replace('T', " ")
                .replace('Z', " +0000 UTC"),
            running_for: ago(c.created),
            ports: c.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            state: state_word(c),
            status,
            names: c.name.clone(),
            labels: labels
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            size: String::new(),
        }
    }

    fn field(&self, name: &str) -> String {
        match name {
            "ID" => &self.id,
            "Image" => &self.image,
            "Command" => &self.command,
            "CreatedAt" => &self.created_at,
            "RunningFor" => &self.running_for,
            "Ports" => &self.ports,
            "State" => self.state,
            "Status" => &self.status,
            "Names" => &self.names,
            "Labels" => &self.labels,
            "Size" => &self.size,
            _ => "",
        }
        .to_string()
    }

    /// `--format json`: one object per container with docker's keys and its formatted values.
    fn json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for f in FIELDS {
            map.insert((*f).to_string(), self.field(f).into());
        }
        serde_json::Value::Object(map)
    }
}

/// The header docker prints for a field in a table.
fn header(field: &str) -> &'static str {
    match field {
        "ID" => "CONTAINER ID",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "CreatedAt" => "CREATED AT",
        "RunningFor" => "CREATED",
        "Ports" => "PORTS",
        "State" => "STATE",
        "Status" => "STATUS",
        "Names" => "NAMES",
        "Size" => "SIZE",
        _ => "LABELS",
    }
}

/// A template: literal text and `{{.Field}}`s.
struct Template(Vec<Part>);

enum Part {
    Text(String),
    Field(&'static str),
}

impl Template {
    fn parse(s: &str) -> Result<Template> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Text(rest[..start].to_string()));
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| format!("template parsing error: unclosed action in {s:?}"))?;
            let action = rest[start + 2..start + end].trim();
            let field = action
                .strip_prefix('.')
                .and_then(|f| FIELDS.iter().find(|k| **k == f))
                .ok_or_else(|| {
                    format!(
                        "template: can't evaluate {{{{{action}}}}}: the fields are {}",
                        FIELDS.iter().map(|f| format!(".{f}")).collect::<Vec<_>>().join(" ")
                    )
                })?;
            parts.push(Part::Field(field));
            rest = &rest[start + end + 2..];
        }
        parts.push(Part::Text(rest.to_string()));
        Ok(Template(parts))
    }

    fn render(&self, value: &dyn Fn(&str) -> String) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => value(f),
            })
            .collect()
    }
}

/// Aligns tab-separated cells as docker's tabwriter does (cells at least `min` wide, padding 3; `ps` and
/// `stats` use 10, `top` 20).
pub(crate) fn tabulate(lines: &[String], min: usize) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            let widest = rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max();
            (widest.unwrap_or(0) + 3).max(min)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// docker's (go-units') `HumanDuration`: "Less than a second", "5 seconds", "About a minute", "3 hours", …
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match seconds {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{seconds} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", seconds / 60),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// At most `max` characters: the first `max - 1` and "…" when longer (go-units' `Ellipsis`).
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).chain(std::iter::once('…')).collect()
    }
}

/// Go's `strconv.Quote` for the text docker shows: double quotes, with `"`, `\` and control characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
