//! A container's files as docker shows and moves them: `cp` (both directions, `NAME:PATH`, `-` for a tar on
//! standard input or output) and `diff` (`A`/`C`/`D` lines).
//!
//! `cp` follows docker's rules for where a copy lands: into an existing directory under the source's name, onto
//! a path that does not exist (its parent must), the contents only with `SRC/.`; a directory never onto a file.
//! Files copied in are owned by root, files copied out by the caller, unless `-a` keeps their owners (docker's). Both
//! directions go through wharf-rootfs's layer reader, which never writes through a symlink out of the target;
//! a file whose name starts with `.wh.` (a whiteout to that reader) is refused rather than deleting another, where
//! docker copies it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::thread::JoinHandle;

use wharf::engine::ChangeKind;
use wharf::rootfs::{ApplyOptions, Ownership};

use crate::{Ctx, Result};

/// One side of `cp`: a path in a container (`NAME:PATH`) or on the host.
enum Side<'a> {
    Container(&'a str, &'a str),
    Host(&'a str),
}

/// docker's reading of a `cp` argument: `NAME:PATH` is in a container unless it starts with `/` or `.` (a host
/// path that happens to hold a colon is written `./a:b`).
fn side(arg: &str) -> Side<'_> {
    match arg.split_once(':') {
        Some((name, path)) if !arg.starts_with('/') && !arg.starts_with('.') && !name.is_empty() => {
            Side::Container(name, path)
        }
        _ => Side::Host(arg),
    }
}

/// `docker cp NAME:SRC DEST|-` and `docker cp SRC|- NAME:DEST`.
pub fn cp(ctx: &Ctx, src: &str, dest: &str, archive: bool) -> Result<()> {
    match (side(src), side(dest)) {
        (Side::Container(name, path), Side::Host(dest)) => {
            copy_out(ctx, &ctx.engine.resolve(name)?, path, dest, archive)
        }
        (Side::Host(src), Side::Container(name, path)) => copy_in(ctx, src, &ctx.engine.resolve(name)?, path, archive),
        (Side::Container(..), Side::Container(..)) => Err("copying between containers is not supported".into()),
        (Side::Host(_), Side::Host(_)) => {
            Err("must specify at least one container source (NAME:PATH as the source or the destination)".into())
        }
    }
}

/// `SRC/.` (or `SRC/`-less `.`): the directory's contents rather than the directory.
fn contents_only(path: &str) -> Option<&str> {
    path.strip_suffix("/.").or((path == ".").then_some(""))
}

/// The last component of `path` ("" for `/`).
fn base(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
}

/// The parent of `path` ("/" or "." when it has none).
fn parent<'a>(path: &'a str, root: &'static str) -> &'a str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((p, _)) => p,
        None => root,
    }
}

/// Container → host: the engine's tar of SRC, renamed to where docker's rules put it, unpacked on the host.
fn copy_out(ctx: &Ctx, name: &str, src: &str, dest: &str, archive: bool) -> Result<()> {
    if dest == "-" {
        return Ok(ctx.engine.copy_out(name, src, std::io::stdout().lock())?);
    }
    let stat = ctx
        .engine
        .stat_path(name, src)?
        .ok_or_else(|| format!("Could not find the file {src} in container {name}"))?;
    let (whole, contents) = match contents_only(src) {
        Some(dir) => (if dir.is_empty() { "/" } else { dir }, true),
        None => (src, false),
    };
    // The tar's top entry: SRC's last component, none for the whole tree.
    let top = Some(base(whole).to_string()).filter(|b| !b.is_empty());
    let target = Path::new(dest);
    let (into, to) = match std::fs::metadata(target) {
        Ok(m) if m.is_dir() && contents => (dest.to_string(), None),
        Ok(m) if m.is_dir() => (dest.to_string(), Some(top.clone().unwrap_or_else(|| ".".into()))),
        Ok(_) if stat.is_dir => return Err(format!("cannot copy a directory to a file: {dest}").into()),
        Ok(_) => host_parent(dest)?,
        Err(_) if dest.ends_with('/') && !stat.is_dir => {
            return Err(format!("destination directory {dest} must exist").into());
        }
        Err(_) => host_parent(dest)?,
    };
    let engine = ctx.engine.clone();
    let (name, whole) = (name.to_string(), whole.to_string());
    let (tar, producer) = produce(move |w| Ok(engine.copy_out(&name, &whole, w)?))?;
    let (renamed, renamer) = produce(move |w| retar(tar, top.as_deref(), to.as_deref(), false, w))?;
    let dir = File::open(&into).map_err(|e| format!("open {into}: {e}"))?;
    let opts = ApplyOptions {
        ownership: if archive {
            Ownership::Preserve
        } else {
            Ownership::Ignore
        },
        ..Default::default()
    };
    let applied = wharf::rootfs::apply_layer(&dir, renamed, &opts);
    finish(producer)?;
    finish(renamer)?;
    applied?;
    Ok(())
}

/// Where a copy onto `dest` (which is not a directory) is unpacked, and the name it gets there; the parent must
/// exist, as docker's.
fn host_parent(dest: &str) -> Result<(String, Option<String>)> {
    let dir = parent(dest, ".");
    if !Path::new(dir).is_dir() {
        return Err(format!("no such directory: {dir} (the parent of {dest} must exist)").into());
    }
    Ok((dir.to_string(), Some(base(dest).to_string())))
}

/// Host → container: a tar of SRC (owned by root), named as docker's rules say, unpacked by the engine.
fn copy_in(ctx: &Ctx, src: &str, name: &str, dest: &str, archive: bool) -> Result<()> {
    let stat = ctx.engine.stat_path(name, dest)?;
    if src == "-" {
        return match stat {
            Some(s) if s.is_dir => Ok(ctx.engine.copy_in(name, dest, std::io::stdin())?),
            Some(_) => Err(format!("destination {name}:{dest} must be a directory").into()),
            None => Err(format!("Could not find the file {dest} in container {name}").into()),
        };
    }
    let (whole, contents) = match contents_only(src) {
        Some(dir) => (if dir.is_empty() { "." } else { dir }, true),
        None => (src, false),
    };
    let meta = std::fs::symlink_metadata(whole).map_err(|e| format!("{src}: {e}"))?;
    let is_dir = meta.is_dir();
    let top = match base(whole) {
        "" | "." | ".." => "src".to_string(),
        b => b.to_string(),
    };
    let (into, to) = match stat {
        Some(s) if s.is_dir && contents => (dest.to_string(), None),
        Some(s) if s.is_dir => (dest.to_string(), Some(top.clone())),
        Some(_) if is_dir => return Err(format!("cannot copy a directory to a file: {name}:{dest}").into()),
        None if dest.ends_with('/') && !is_dir => {
            return Err(format!("destination directory {name}:{dest} must exist").into());
        }
        _ => (parent(dest, "/").to_string(), Some(base(dest).to_string())),
    };
    let source = whole.to_string();
    let top_in = top.clone();
    let (tar, producer) = produce(move |w| {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        if is_dir {
            b.append_dir_all(&top_in, &source)?;
        } else {
            b.append_path_with_name(&source, &top_in)?;
        }
        b.finish()?;
        Ok(())
    })?;
    let (renamed, renamer) = produce(move |w| retar(tar, Some(&top), to.as_deref(), !archive, w))?;
    let copied = ctx.engine.copy_in(name, &into, renamed);
    finish(producer)?;
    finish(renamer)?;
    Ok(copied?)
}

/// Runs `f` on a thread writing into a pipe; returns the pipe's reading end.
fn produce(f: impl FnOnce(File) -> Result<()> + Send + 'static) -> Result<(File, JoinHandle<Result<()>>)> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| format!("make a pipe: {e}"))?;
    Ok((File::from(r), std::thread::spawn(move || f(File::from(w)))))
}

/// The producer's error, which explains the reader's (a cut tar) better than the reader's own.
fn finish(h: JoinHandle<Result<()>>) -> Result<()> {
    h.join().map_err(|_| "the copy's thread panicked")?
}

/// Copies a tar from `input` to `out` with the top entry `from` (entries beneath it too) renamed to `to`; with
/// `to` None the top entry goes and what was beneath it comes up (`SRC/.`); `from` None: the tar holds contents
/// only. `root` makes every entry owned by 0:0.
fn retar(input: impl Read, from: Option<&str>, to: Option<&str>, root: bool, out: impl Write) -> Result<()> {
    let rename = |p: &Path| -> Option<std::path::PathBuf> {
        let rest = match from {
            Some(f) => p.strip_prefix(f).ok()?,
            None => p,
        };
        let new = match to {
            Some(t) => Path::new(t).join(rest),
            None => rest.to_path_buf(),
        };
        Some(new).filter(|n| !n.as_os_str().is_empty() && n != Path::new("."))
    };
    let mut archive = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    let mut refused = None;
    for entry in archive.entries()? {
        let entry = entry?;
        let Some(path) = rename(&entry.path()?) else {
            continue;
        };
        // The layer reader that unpacks the copy reads `.wh.NAME` as "delete NAME": such a file would remove
        // another instead of being copied. It is left out (the rest is copied, so the producer is never cut off)
        // and the copy fails naming it.
        if path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b".wh."))
        {
            refused.get_or_insert_with(|| entry.path().map(|p| p.display().to_string()).unwrap_or_default());
            continue;
        }
        let mut header = entry.header().clone();
        if root {
            header.set_uid(0);
            header.set_gid(0);
        }
        let kind = header.entry_type();
        if kind.is_hard_link() || kind.is_symlink() {
            let target = entry.link_name()?.unwrap_or_default().into_owned();
            // A hard link names another entry of the tar, so it is renamed as the entries are.
            let target = if kind.is_hard_link() {
                rename(&target).unwrap_or(target)
            } else {
                target
            };
            b.append_link(&mut header, &path, &target)?;
        } else {
            b.append_data(&mut header, &path, entry)?;
        }
    }
    b.finish()?;
    match refused {
        Some(name) => Err(format!(
            "cannot copy {name}: a name starting with .wh. is an overlay whiteout to wharf's layer reader, which would \
             delete instead of copy it (everything else was copied)"
        )
        .into()),
        None => Ok(()),
    }
}

/// `docker diff NAME`: one `A`, `C` or `D` line per changed path.
pub fn diff(ctx: &Ctx, name: &str) -> Result<()> {
    let name = ctx.engine.resolve(name)?;
    let mut out = String::new();
    for c in ctx.engine.diff(&name)? {
        let letter = match c.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        };
        out.push_str(&format!("{letter} {}\n", c.path));
    }
    crate::print(&out)
}
