//! Flatten an image from a wharf store into a directory, like `umoci unpack` without the bundle.
//!
//! ```text
//! cargo run --release --example unpack -- --root STORE REF DIR
//! ```
//!
//! Each layer is streamed from its blob onto `DIR` with [`wharf::rootfs::apply_layer`] in
//! [`LayerFormat::Flatten`] form (whiteouts delete what they name), bottom to top, its
//! diff_id verified against the image config. `DIR` is created and must not exist; on failure
//! it is removed. `benches/peers.sh` times this against `umoci unpack`.
#![allow(missing_docs)]

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wharf::image::media::{self, Kind};
use wharf::image::{Digest, Platform, Reference, Store};
use wharf::rootfs::{ApplyOptions, ImageBudget, LayerFormat, apply_layer};

#[derive(Parser)]
#[command(about = "Flatten an image from a wharf store into a directory")]
struct Args {
    /// The store (an OCI image layout)
    #[arg(long)]
    root: PathBuf,
    /// The image, as it is named in the store
    reference: Reference,
    /// The directory to create and fill
    dir: PathBuf,
}

fn unpack(args: &Args) -> Result<u64, Box<dyn std::error::Error>> {
    let store = Store::open(&args.root)?;
    let image = store.image(&args.reference, &Platform::host())?;
    let diff_ids = image.config.diff_ids()?;
    let root = File::open(&args.dir)?;
    let budget = ImageBudget::new(); // one size budget for the whole image
    let mut bytes = 0;
    for (layer, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
        let blob = store.open_blob(&Digest::from_oci(layer.digest())?)?;
        let opts = ApplyOptions {
            format: LayerFormat::Flatten,
            compression: match media::kind(layer.media_type()) {
                Kind::Layer(c) => Some(c),
                _ => None, // sniffed from the first bytes
            },
            diff_id: Some(diff_id),
            image_budget: budget.clone(),
            ..ApplyOptions::default()
        };
        bytes += apply_layer(&root, BufReader::with_capacity(1 << 20, blob), &opts)?.uncompressed_size;
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir(&args.dir) {
        eprintln!("unpack: create {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    match unpack(&args) {
        Ok(bytes) => {
            eprintln!(
                "unpacked {} ({bytes} bytes of layers) into {}",
                args.reference,
                args.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unpack: {e}");
            let _ = std::fs::remove_dir_all(&args.dir); // never leave a half-unpacked tree looking complete
            ExitCode::FAILURE
        }
    }
}
