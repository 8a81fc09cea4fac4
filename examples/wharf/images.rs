//! Commands on the local store: images, rmi, prune, inspect, history, tag, save, load, import.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use wharf::image::archive;
use wharf::image::import::{ContainerConfig, ImportOptions};
use wharf::image::store::Image;
use wharf::image::{Digest, Reference};

use crate::{Ctx, Result};

fn parse(r: &str) -> Result<Reference> {
    Ok(r.parse::<Reference>()?)
}

/// `12.3MB`-style sizes, as docker prints them.
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", units[i]).replace(".000", "")
    }
}

/// go-units' `HumanSize`, as docker prints image and disk sizes: decimal units, four significant digits
/// ("77.8MB", "4.261MB", "212B").
pub fn human_size(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < UNITS.len() {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", crate::usage::four_digits(size), UNITS[unit])
}

/// The uncompressed sizes of images' layers, as docker counts an image's SIZE: from the layer cache where the
/// layer was extracted, else by inflating its blob once (remembered for the command's life).
#[derive(Default)]
pub struct LayerSizes(HashMap<String, u64>);

impl LayerSizes {
    /// The layers (diff_ids) of `image` with their uncompressed sizes.
    pub fn of(&mut self, ctx: &Ctx, image: &Image) -> Result<Vec<(String, u64)>> {
        let diff_ids = image.config.inner().rootfs().diff_ids();
        let cache = ctx.engine.layer_cache()?;
        let mut out = Vec::new();
        for (diff_id, blob) in diff_ids.iter().zip(image.manifest.layers()) {
            if let Some(size) = self.0.get(diff_id) {
                out.push((diff_id.clone(), *size));
                continue;
            }
            let cached = diff_id.parse::<Digest>().ok().and_then(|d| cache.info(&d).ok());
            let size = match cached {
                Some(info) => info.uncompressed_size,
                None => inflated_size(ctx, &blob.digest().to_string().parse()?)?,
            };
            self.0.insert(diff_id.clone(), size);
            out.push((diff_id.clone(), size));
        }
        Ok(out)
    }
}

/// The bytes of blob `digest` once inflated (gzip, zstd, or none).
fn inflated_size(ctx: &Ctx, digest: &Digest) -> Result<u64> {
    use std::io::{BufRead, Read};
    let mut blob = BufReader::new(ctx.store.open_blob(digest)?);
    let magic = blob.fill_buf()?.get(..4).map(<[u8]>::to_vec).unwrap_or_default();
    let mut reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(blob))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::Decoder::with_buffer(blob)?)
    } else {
        Box::new(blob)
    };
    Ok(std::io::copy(&mut reader, &mut std::io::sink())?)
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// `docker images`: REPOSITORY TAG IMAGE ID CREATED SIZE, as docker's table: CREATED in docker's words ("2 hours
/// ago"), SIZE the layers' uncompressed bytes ("77.8MB"), not the compressed download.
pub fn images(ctx: &Ctx) -> Result<()> {
    let mut rows = ctx.store.list()?;
    rows.sort_by_key(|row| row.reference.familiar());
    let now = std::time::SystemTime::now();
    let mut sizes = LayerSizes::default();
    let mut lines = vec!["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE".to_string()];
    for row in rows {
        let familiar = row.reference.familiar();
        let repo = familiar
            .rsplit_once(':')
            .map_or(familiar.as_str(), |(r, _)| r)
            .to_string();
        let repo = repo.split('@').next().unwrap_or_default().to_string();
        let created = row
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or("N/A".to_string(), |t| {
                format!(
                    "{} ago",
                    crate::ps::human_duration(now.duration_since(t).unwrap_or_default())
                )
            });
        let size = match &row.id {
            Some(_) => {
                let image = ctx.store.image(&row.reference, &ctx.platform)?;
                sizes.of(ctx, &image)?.iter().map(|(_, s)| s).sum()
            }
            None => row.size,
        };
        lines.push(format!(
            "{repo}\t{}\t{}\t{created}\t{}",
            row.reference.tag().unwrap_or("<none>"),
            row.id.as_ref().map_or_else(|| "<other platform>".to_string(), short),
            human_size(size)
        ));
    }
    crate::print(&crate::ps::tabulate(&lines, 10))
}

/// An RFC 3339 time as image configs record it ("2024-05-01T10:00:00Z", with fractions or an offset).
pub(crate) fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}

/// `docker rmi`.
pub fn rmi(ctx: &Ctx, images: &[String]) -> Result<()> {
    for image in images {
        let r = parse(image)?;
        let desc = ctx.store.untag(&r)?;
        println!("Untagged: {}", r.familiar());
        let _ = desc;
    }
    let report = ctx.store.gc()?;
    for (d, _) in &report.removed {
        println!("Deleted: {d}");
    }
    Ok(())
}

/// `docker image prune`: blobs no image references, and cached layers no image or container needs.
pub fn prune(ctx: &Ctx) -> Result<()> {
    // What killed runs left went when the engine opened, so their layers can go too.
    let report = ctx.store.gc()?;
    for diff_id in ctx.engine.prune_layers()? {
        println!("deleted cached layer {diff_id}");
    }
    for (d, size) in &report.removed {
        println!("deleted {d} ({})", human(*size));
    }
    println!("Total reclaimed space: {}", human(report.bytes));
    Ok(())
}

/// `docker inspect` for an image: config, layers, history.
pub fn inspect_json(ctx: &Ctx, image: &str) -> Result<serde_json::Value> {
    let r = parse(image)?;
    let img = ctx.store.image(&r, &ctx.platform)?;
    Ok(serde_json::json!({
        "Id": img.config_digest.to_string(),
        "RepoTags": [r.familiar()],
        "ManifestDigest": img.manifest_descriptor.digest().to_string(),
        "Created": img.config.created(),
        "Os": img.config.inner().os().to_string(),
        "Architecture": img.config.inner().architecture().to_string(),
        "Config": img.config.inner().config(),
        "RootFS": img.config.inner().rootfs(),
        "Layers": img.manifest.layers(),
        "History": img.config.inner().history(),
    }))
}

/// `docker history`.
pub fn history(ctx: &Ctx, image: &str) -> Result<()> {
    let r = parse(image)?;
    let img = ctx.store.image(&r, &ctx.platform)?;
    let mut layers = img.manifest.layers().iter().rev();
    println!("{:<14} {:<22} {:<60} SIZE", "LAYER", "CREATED", "CREATED BY");
    let history = img.config.inner().history().clone().unwrap_or_default();
    for h in history.iter().rev() {
        let (layer, size) = if h.empty_layer().unwrap_or(false) {
            ("<missing>".to_string(), 0)
        } else {
            layers.next().map_or(("<missing>".to_string(), 0), |l| {
                (l.digest().digest()[..12].to_string(), l.size())
            })
        };
        let by: String = h.created_by().clone().unwrap_or_default().chars().take(60).collect();
        println!(
            "{:<14} {:<22} {:<60} {}",
            layer,
            h.created().clone().unwrap_or_default(),
            by,
            human(size)
        );
    }
    Ok(())
}

/// `docker tag`.
pub fn tag(ctx: &Ctx, source: &str, target: &str) -> Result<()> {
    let desc = ctx.store.resolve(&parse(source)?)?;
    ctx.store.tag(&parse(target)?, &desc)?;
    Ok(())
}

/// `docker save -o`.
pub fn save(ctx: &Ctx, output: &Path, images: &[String]) -> Result<()> {
    let refs = images.iter().map(|i| parse(i)).collect::<Result<Vec<_>>>()?;
    let temp = output.with_extension("partial");
    let res = (|| -> Result<()> {
        let f = File::create(&temp).map_err(|e| format!("create {}: {e}", temp.display()))?;
        archive::save(&ctx.store, &refs, &ctx.platform, BufWriter::new(f))?;
        std::fs::rename(&temp, output).map_err(|e| format!("rename to {}: {e}", output.display()))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    res
}

/// `docker load [-i FILE]`: a docker-save or OCI archive from the file, or from standard input (not a terminal).
pub fn load(ctx: &Ctx, input: Option<&Path>) -> Result<()> {
    let loaded = match input {
        Some(input) => {
            let f = File::open(input).map_err(|e| format!("open {}: {e}", input.display()))?;
            archive::load(&ctx.store, input, BufReader::new(f))?
        }
        None => {
            if rustix::termios::isatty(std::io::stdin()) {
                return Err("requested load from stdin, but stdin is a terminal (use -i FILE or a pipe)".into());
            }
            archive::load(&ctx.store, Path::new("stdin"), BufReader::new(std::io::stdin()))?
        }
    };
    for image in loaded {
        if image.references.is_empty() {
            println!("Loaded image ID: {}", image.manifest.digest());
        }
        for r in image.references {
            println!("Loaded image: {}", r.familiar());
        }
    }
    Ok(())
}

/// `docker import`: a root filesystem from a tar file (possibly compressed), `-` (standard input) or a directory.
pub fn import(
    ctx: &Ctx,
    source: &Path,
    image: &str,
    cmd: Vec<String>,
    env: Vec<String>,
    changes: &[String],
) -> Result<()> {
    let r = parse(image)?;
    let mut config = ContainerConfig {
        cmd,
        env,
        ..Default::default()
    };
    for change in changes {
        apply_change(&mut config, change)?;
    }
    let opts = ImportOptions {
        platform: ctx.platform.clone(),
        config,
        ..Default::default()
    };
    let img = if source == Path::new("-") {
        if rustix::termios::isatty(std::io::stdin()) {
            return Err("import from stdin, but stdin is a terminal (pipe a tar into it)".into());
        }
        wharf::image::import::import_tar(&ctx.store, std::io::stdin(), &r, &opts)?
    } else if source.is_dir() {
        wharf::image::import::import_dir(&ctx.store, source, &r, &opts)?
    } else {
        let f = File::open(source).map_err(|e| format!("open {}: {e}", source.display()))?;
        wharf::image::import::import_tar(&ctx.store, f, &r, &opts)?
    };
    println!("{}", img.config_digest);
    Ok(())
}

/// One `docker import --change` instruction applied to the config.
fn apply_change(c: &mut ContainerConfig, change: &str) -> Result<()> {
    let (word, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let rest = rest.trim();
    let missing = || format!("--change {change:?}: {} needs an argument", word.to_uppercase());
    if rest.is_empty() {
        return Err(missing().into());
    }
    // CMD and ENTRYPOINT take a JSON array (exec form) or a command line for /bin/sh -c.
    let command = || -> Result<Vec<String>> {
        if rest.starts_with('[') {
            serde_json::from_str(rest)
                .map_err(|e| format!("--change {change:?}: not a JSON array of strings: {e}").into())
        } else {
            Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
        }
    };
    let pair = |s: &str| -> Result<(String, String)> {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.trim_matches('"').to_string())),
            _ => Err(format!("--change {change:?}: expected KEY=VALUE").into()),
        }
    };
    match word.to_uppercase().as_str() {
        "CMD" => c.cmd = command()?,
        "ENTRYPOINT" => c.entrypoint = command()?,
        "ENV" if rest.contains('=') => {
            for kv in rest.split_whitespace() {
                let (k, v) = pair(kv)?;
                set_env(&mut c.env, &k, &v);
            }
        }
        "ENV" => {
            let (k, v) = rest.split_once(char::is_whitespace).ok_or_else(missing)?;
            set_env(&mut c.env, k, v.trim());
        }
        "EXPOSE" => {
            for p in rest.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                if port.parse::<u16>().map_or(true, |n| n == 0) || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(format!("--change {change:?}: {p:?} is not PORT[/tcp|udp|sctp]").into());
                }
                let p = format!("{port}/{proto}");
                if !c.exposed_ports.contains(&p) {
                    c.exposed_ports.push(p);
                }
            }
        }
        "LABEL" => {
            for kv in rest.split_whitespace() {
                let (k, v) = pair(kv)?;
                c.labels.insert(k, v);
            }
        }
        "USER" => c.user = Some(rest.to_string()),
        "WORKDIR" => c.working_dir = Some(rest.to_string()),
        other => {
            return Err(format!(
                "--change {change:?}: {other} is not an instruction import takes (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                 USER, WORKDIR)"
            )
            .into());
        }
    }
    Ok(())
}

/// Sets `key` in a `KEY=value` list, replacing an earlier value.
fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
    env.push(format!("{key}={value}"));
}
