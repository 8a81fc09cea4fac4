//! List the tags of a repository on a registry (following pagination).
//!
//! `cargo run --example tags -- REPOSITORY` (e.g. `localhost:5000/team/app`, or `busybox` on Docker Hub).

use wharf::image::Reference;
use wharf::registry::{Client, ClientConfig, Repository};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Some(name) = std::env::args().nth(1) else {
        return Err("usage: tags REPOSITORY".into());
    };
    let reference: Reference = name.parse()?;
    let client = Client::new(ClientConfig::default())?;
    for tag in client.list_tags(&Repository::of(&reference)?, Some(100)).await? {
        println!("{tag}");
    }
    Ok(())
}
