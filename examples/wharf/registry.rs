//! Commands that talk to registries: pull, push, and `registry catalog|tags|delete|restore`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wharf::image::{Digest, Manifest, Reference};
use wharf::registry::{
    Client, ClientConfig, FetchedManifest, Progress, ProgressEvent, PullOptions, PushOptions, Repository,
};
use wharf::rootfs::{Limits, list_image_layers};

use crate::images::human;
use crate::{Ctx, Result};

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn client(insecure: &[String]) -> Result<Client> {
    Ok(Client::new(ClientConfig {
        insecure_registries: insecure.to_vec(),
        ..Default::default()
    })?)
}

/// Per-blob progress bars, drawn on stderr.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    verb: &'static str,
}

impl Bars {
    fn new(verb: &'static str) -> Arc<Bars> {
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            verb,
        })
    }

    fn bar(&self, digest: &Digest, size: u64) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(digest.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} {msg:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.hex()[..12].to_string());
                bar.set_message(self.verb);
                bar
            })
            .clone()
    }

    fn event(&self, p: &ProgressEvent) {
        match p {
            ProgressEvent::Started { digest, size } => {
                self.bar(digest, *size);
            }
            ProgressEvent::Bytes { digest, done, total } => self.bar(digest, *total).set_position(*done),
            ProgressEvent::Resumed { digest, offset } => {
                let bar = self.bar(digest, 0);
                bar.set_position(*offset);
                bar.set_message("resuming");
            }
            ProgressEvent::Verified { digest, size } => {
                let bar = self.bar(digest, *size);
                bar.set_position(*size);
                bar.finish_with_message("done");
            }
            ProgressEvent::Skipped { digest, size } => self.bar(digest, *size).finish_with_message("exists"),
            ProgressEvent::Failed { digest, reason } => {
                self.bar(digest, 0).abandon_with_message(format!("failed: {reason}"))
            }
            _ => {}
        }
    }
}

/// `docker pull`; with `files`, also lists each layer's files (read from the blobs); with
/// `unpack`, extracts each layer into the layer cache while it downloads.
pub fn pull(ctx: &Ctx, image: &str, insecure: &[String], files: bool, unpack: bool) -> Result<()> {
    let r: Reference = image.parse()?;
    let pulled = pull_quiet(ctx, &r, insecure, true, unpack)?;
    let img = ctx.store.image(&r.with_digest(pulled.digest.clone()), &ctx.platform)?;
    for layer in img.manifest.layers() {
        println!("layer {} {}", layer.digest(), human(layer.size()));
    }
    if files {
        for (desc, listing) in list_image_layers(&ctx.store, &img, &Limits::default())? {
            println!(
                "\n{} ({} files, {})",
                desc.digest(),
                listing.entries.len(),
                human(listing.files_size)
            );
            for e in &listing.entries {
                match &e.link {
                    Some(target) => println!("  {:>10}  {} -> {}", e.size, e.path, target),
                    None => println!("  {:>10}  {}", e.size, e.path),
                }
            }
        }
    }
    println!("Digest: {}", pulled.digest);
    println!(
        "Status: downloaded {} ({} blobs fetched, {} already present)",
        r.familiar(),
        pulled.fetched,
        pulled.skipped
    );
    Ok(())
}

/// Pulls `r` into the store, drawing progress bars when `bars`; with `unpack`, each layer is
/// extracted into the layer cache while it downloads (what `run` needs next), else only checked.
pub fn pull_quiet(
    ctx: &Ctx,
    r: &Reference,
    insecure: &[String],
    bars: bool,
    unpack: bool,
) -> Result<wharf::registry::Pulled> {
    let client = client(insecure)?;
    let progress = bars.then(|| Bars::new("pulling"));
    let options = PullOptions {
        platform: ctx.platform.clone(),
        progress: progress
            .clone()
            .map(|b| Progress::new(move |p: &ProgressEvent| b.event(p)))
            .unwrap_or_default(),
        layers: if unpack {
            std::sync::Arc::new(wharf::engine::ExtractLayers::new(ctx.engine.layer_cache()?))
        } else {
            std::sync::Arc::new(wharf::engine::VerifyLayers)
        },
    };
    let store = ctx.store.clone();
    let name = r.familiar();
    let r = r.clone();
    let rt = runtime()?;
    let outcome: Result<std::result::Result<wharf::registry::Pulled, (&str, i32)>> = rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            pulled = client.pull(&r, &store, &options) => Ok(Ok(pulled?)),
            _ = int.recv() => Ok(Err(("SIGINT", 130))),
            _ = term.recv() => Ok(Err(("SIGTERM", 143))),
        }
    });
    let (signal, code) = match outcome? {
        Ok(pulled) => return Ok(pulled),
        Err(interrupted) => interrupted,
    };
    // The pull was dropped: its writers flush what arrived and keep it, so that the next pull
    // resumes instead of downloading again. Give them a moment to finish.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    if let Some(bars) = &progress {
        let _ = bars.multi.clear();
    }
    eprintln!(
        "wharf: pull of {name} interrupted by {signal}; what was downloaded is kept in {} for the next pull to resume",
        ctx.store.root().join(".wharf/partial").display()
    );
    std::process::exit(code);
}

/// `docker push`.
pub fn push(ctx: &Ctx, image: &str, insecure: &[String]) -> Result<()> {
    let r: Reference = image.parse()?;
    let client = client(insecure)?;
    let bars = Bars::new("pushing");
    let options = PushOptions {
        progress: Progress::new(move |p: &ProgressEvent| bars.event(p)),
        ..Default::default()
    };
    let store = ctx.store.clone();
    let pushed = runtime()?.block_on(async move { client.push(&store, &r, &r, &options).await })?;
    println!(
        "{}: digest: {} ({} uploaded, {} already there, {} mounted)",
        pushed.reference.familiar(),
        pushed.digest,
        pushed.uploaded,
        pushed.existed,
        pushed.mounted
    );
    Ok(())
}

/// `registry catalog HOST`.
pub fn catalog(host: &str, insecure: &[String]) -> Result<()> {
    let client = client(insecure)?;
    let host = host.to_string();
    for repo in runtime()?.block_on(async move { client.catalog(&host, Some(100)).await })? {
        println!("{repo}");
    }
    Ok(())
}

/// `registry tags REF`.
pub fn tags(image: &str, insecure: &[String]) -> Result<()> {
    let r: Reference = image.parse()?;
    let client = client(insecure)?;
    let repo = Repository::of(&r)?;
    for tag in runtime()?.block_on(async move { client.list_tags(&repo, Some(100)).await })? {
        println!("{tag}");
    }
    Ok(())
}

/// Where `registry delete` keeps the manifest it deleted, for `registry restore`.
fn saved_path(ctx: &Ctx, r: &Reference) -> PathBuf {
    let key = Digest::sha256(r.to_string().as_bytes());
    ctx.store.root().join(".wharf").join("deleted").join(key.hex())
}

/// `registry delete REF`: deletes the manifest on the registry, keeping its exact body.
pub fn delete(ctx: &Ctx, image: &str, insecure: &[String]) -> Result<()> {
    let r: Reference = image.parse()?;
    let client = client(insecure)?;
    let target = r.clone();
    let saved = runtime()?.block_on(async move { client.delete(&target).await })?;
    let dir = saved_path(ctx, &r);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("manifest"), &saved.bytes)?;
    let meta = serde_json::json!({
        "reference": r.to_string(),
        "mediaType": saved.media_type,
        "digest": saved.digest.to_string(),
    });
    std::fs::write(dir.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    println!(
        "Deleted {} ({}); saved for restore in {}",
        r.familiar(),
        saved.digest,
        dir.display()
    );
    Ok(())
}

/// `registry restore REF`: puts back the manifest `registry delete` saved.
pub fn restore(ctx: &Ctx, image: &str, insecure: &[String]) -> Result<()> {
    let r: Reference = image.parse()?;
    let dir = saved_path(ctx, &r);
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("meta.json"))
            .map_err(|_| format!("nothing saved for {}: delete it first", r.familiar()))?,
    )?;
    let bytes = std::fs::read(dir.join("manifest"))?;
    let media_type = meta["mediaType"].as_str().unwrap_or_default().to_string();
    let digest: Digest = meta["digest"].as_str().unwrap_or_default().parse()?;
    if Digest::of(digest.algorithm(), &bytes) != digest {
        return Err(format!("the saved manifest in {} no longer matches {digest}", dir.display()).into());
    }
    let manifest = Manifest::parse(&bytes, Some(&media_type))?;
    let saved = FetchedManifest {
        bytes,
        media_type,
        digest,
        manifest,
    };
    let client = client(insecure)?;
    let target = r.clone();
    let restored = runtime()?.block_on(async move { client.restore(&target, &saved).await })?;
    std::fs::remove_dir_all(&dir)?;
    println!("Restored {} ({restored})", r.familiar());
    Ok(())
}
