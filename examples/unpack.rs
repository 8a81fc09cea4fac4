//! Flatten an image from a wharf store into a directory, like `umoci unpack` without the bundle.
//!
//! ```text
//! cargo run --release --example unpack -- --root STORE REF DIR
//! ```
//!
//! The image's layers are flattened onto `DIR` with [`wharf::rootfs::unpack_image`], bottom
//! to top, each diff_id verified against the image config; small upper layers are read ahead
//! so that files they delete are never written. `DIR` must not exist; it appears only once
//! every layer applied. `benches/peers.sh` times this against `umoci unpack`.
#![allow(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wharf::image::{Platform, Reference, Store};
use wharf::rootfs::{ApplyOptions, unpack_image};

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

fn main() -> ExitCode {
    let args = Args::parse();
    let unpack = || -> Result<_, Box<dyn std::error::Error>> {
        let store = Store::open(&args.root)?;
        let image = store.image(&args.reference, &Platform::host())?;
        Ok(unpack_image(&store, &image, &args.dir, &ApplyOptions::default())?)
    };
    match unpack() {
        Ok(reports) => {
            let bytes: u64 = reports.iter().map(|r| r.uncompressed_size).sum();
            let shadowed: u64 = reports.iter().map(|r| r.shadowed).sum();
            eprintln!(
                "unpacked {} ({bytes} bytes of layers; {shadowed} entries deleted by upper layers not written) into {}",
                args.reference,
                args.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unpack: {e}");
            ExitCode::FAILURE
        }
    }
}
