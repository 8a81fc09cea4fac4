//! Pull an image from a registry into a local store, printing progress events as they come.
//!
//! `cargo run --example pull -- STORE_DIR IMAGE` (e.g. `/tmp/store localhost:5000/busybox:1`).

use wharf::image::{Platform, Reference, Store};
use wharf::registry::{Client, ClientConfig, Progress, ProgressEvent, PullOptions};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(image)) = (args.next(), args.next()) else {
        return Err("usage: pull STORE_DIR IMAGE".into());
    };
    let store = Store::open(dir)?;
    let reference: Reference = image.parse()?;
    let client = Client::new(ClientConfig::default())?;
    let options = PullOptions {
        platform: Platform::host(),
        progress: Progress::new(|p: &ProgressEvent| match p {
            ProgressEvent::Started { digest, size } => eprintln!("fetching {digest} ({size} bytes)"),
            ProgressEvent::Verified { digest, .. } => eprintln!("verified {digest}"),
            ProgressEvent::Skipped { digest, .. } => eprintln!("already have {digest}"),
            _ => {}
        }),
        ..PullOptions::default()
    };
    let pulled = client.pull(&reference, &store, &options).await?;
    println!("{} is {} (image id {})", reference, pulled.digest, pulled.config_digest);
    Ok(())
}
