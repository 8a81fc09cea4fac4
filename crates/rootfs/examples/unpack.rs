//! Unpacks layer blobs (tar, gzip or zstd, bottom first) onto a new directory, flattening
//! them, and prints the throughput: `unpack DEST BLOB...`. Used to compare with
//! `umoci unpack` on the same layers.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dest = std::path::PathBuf::from(args.next().ok_or("usage: unpack DEST BLOB...")?);
    std::fs::create_dir(&dest)?;
    let dir = std::fs::File::open(&dest)?;
    let opts = wharf_rootfs::ApplyOptions::default();
    let start = Instant::now();
    let mut bytes = 0;
    for blob in args {
        let f = std::fs::File::open(&blob)?;
        let report = wharf_rootfs::apply_layer(&dir, std::io::BufReader::with_capacity(1 << 20, f), &opts)?;
        bytes += report.uncompressed_size;
        eprintln!(
            "{}: {} entries, {} bytes, diff_id {}",
            blob.to_string_lossy(),
            report.entries,
            report.uncompressed_size,
            report.diff_id
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.3} s, {:.1} MB/s", secs, bytes as f64 / 1e6 / secs);
    Ok(())
}
