//! docker's system commands in the example CLI (issue 18, item 5): `version`, `info`, `system df`, checked
//! against docker's documented shapes with real containers of a busybox image. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

mod support;

use support::cli::Env;

/// `Key: value` of an `info`-style listing.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .trim()
}

#[test]
fn version_prints_the_clients_and_the_librarys() {
    let env = Env::new();
    let out = env.ok(&["version"]);
    assert!(out.starts_with("Client:\n Version:"), "{out}");
    let library = out.split_once("\nLibrary:\n").unwrap_or_else(|| panic!("{out}")).1;
    assert_eq!(value(library, "Version"), env!("CARGO_PKG_VERSION"));
    assert!(["isa-l", "zlib-rs"].contains(&value(library, "Gzip inflater")), "{out}");
    let arch = value(library, "OS/Arch");
    assert!(arch.starts_with("linux/"), "{arch}");
}

#[test]
fn info_counts_containers_and_images_and_says_what_the_host_gives() {
    let env = Env::new();
    env.busybox_image("bb", "system\n");
    env.ok(&["tag", "bb", "bb:other"]);
    env.ok(&["run", "-d", "--name", "up", "bb", "sleep", "1000"]);
    env.ok(&["run", "--name", "down", "bb", "true"]);
    let info = env.ok(&["info"]);
    assert_eq!(value(&info, "Containers"), "2");
    assert_eq!(value(&info, "Running"), "1");
    assert_eq!(value(&info, "Stopped"), "1");
    assert_eq!(value(&info, "Images"), "1", "two names of one image are one image");
    assert_eq!(value(&info, "Wharf Root Dir"), env.store().to_str().unwrap());
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(value(&info, "Cgroup Version"), if v2 { "2" } else { "1" });
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\toverlay\n");
    assert_eq!(value(&info, "Storage Driver") == "overlay", overlay, "{info}");
    let security = info.split_once(" Security Options:\n").unwrap().1;
    assert!(security.starts_with("  seccomp\n   Profile: builtin\n"), "{info}");
    assert!(!security.contains("rootless"), "root is not rootless: {info}");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(value(&info, "Kernel Version"), release.trim());
    assert_eq!(value(&info, "OSType"), "linux");
}

#[test]
fn system_df_prints_dockers_table_of_images_and_containers() {
    let env = Env::new();
    env.busybox_image("bb", "system\n");
    let df = env.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = df
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert!(
        df.starts_with("TYPE         TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{df}"
    );
    // The image's size is its layer uncompressed (a tar of the busybox tree: more than busybox itself, as
    // docker's SIZE is more than the compressed download); nothing uses it yet.
    let busybox = std::fs::metadata("/bin/busybox").unwrap().len();
    let images = &rows[1];
    assert_eq!(&images[..3], ["Images", "1", "0"]);
    let size = megabytes(images[3]);
    assert!(size > busybox as f64 / 1e6 && size < busybox as f64 / 1e6 + 0.5, "{df}");
    assert_eq!(images[4], format!("{} (100%)", images[3]));
    assert_eq!(rows[2], ["Containers", "0", "0", "0B", "0B"]);

    // Containers: what they wrote; the stopped ones' is reclaimable.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "up",
        "bb",
        "sh",
        "-c",
        "head -c 1000 /dev/zero > /data/k; sleep 1000",
    ]);
    env.ok(&[
        "run",
        "--name",
        "down",
        "bb",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /data/z",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let df = loop {
        let df = env.ok(&["system", "df"]);
        if df.contains("101kB") || std::time::Instant::now() > deadline {
            break df;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let rows: Vec<Vec<&str>> = df
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(&rows[1][..3], ["Images", "1", "1"]);
    assert_eq!(rows[1][4], "0B (0%)");
    assert_eq!(rows[2], ["Containers", "2", "1", "101kB", "100kB (99%)"]);
}

/// A `HumanSize` ("2.125MB", "977.5kB") in megabytes.
fn megabytes(s: &str) -> f64 {
    let (n, scale) = match s {
        _ if s.ends_with("MB") => (&s[..s.len() - 2], 1.0),
        _ if s.ends_with("kB") => (&s[..s.len() - 2], 1e-3),
        _ => panic!("not a HumanSize in MB or kB: {s:?}"),
    };
    assert!(
        n.chars().filter(char::is_ascii_digit).count() <= 4,
        "{s}: four significant digits"
    );
    n.parse::<f64>().unwrap() * scale
}
