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
    // ps -s: docker's SIZE, what each wrote and that with its image ("1kB (virtual 2.13MB)").
    let sized = env.ok(&["ps", "-a", "-s"]);
    assert!(sized.lines().next().unwrap().ends_with("NAMES     SIZE"), "{sized}");
    let image = megabytes(rows[1][3]);
    let up = env.ok(&["ps", "-a", "--format", "{{.Names}}: {{.Size}}", "--filter", "name=up"]);
    let virtual_size = up
        .strip_prefix("up: 1kB (virtual ")
        .and_then(|v| v.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{up}"));
    assert!(
        (megabytes(virtual_size) - image - 0.001).abs() < 0.01,
        "{up} against an image of {image}MB"
    );
    let down = env.ok(&["ps", "-a", "--format", "{{.Size}}", "--filter", "name=down"]);
    assert!(
        down.starts_with("100kB (virtual 2.") && down.ends_with("MB)\n"),
        "{down}"
    );
    // Counting reads the stopped container's directories: it does not mount its filesystem again.
    let info: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "down"])).unwrap();
    let merged = env
        .store()
        .join(".wharf/rootfs")
        .join(info[0]["Id"].as_str().unwrap())
        .join("rootfs");
    let mounted = |env: &Env| {
        env.mounts_below_store()
            .iter()
            .any(|m| m.split(' ').nth(4) == merged.to_str())
    };
    if mounted(&env) {
        rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::empty()).unwrap();
    }
    assert!(env.ok(&["system", "df"]).contains("101kB"));
    assert!(!mounted(&env), "system df mounted {}", merged.display());
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

/// A docker-save archive of one image `name` made `age` ago, whose one layer (uncompressed) holds a file of
/// `size` bytes; returns the archive and its layer's length.
fn saved_image(name: &str, age: std::time::Duration, size: usize) -> (Vec<u8>, usize) {
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    layer
        .append_data(&mut header, "data/blob", &vec![7u8; size][..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let created = wharf::image::config::rfc3339(std::time::SystemTime::now() - age);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [wharf::image::Digest::sha256(&layer).to_string()]},
    });
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [name],
        "Layers": ["layer.tar"],
    }]);
    let mut archive = tar::Builder::new(Vec::new());
    for (path, bytes) in [
        ("config.json", serde_json::to_vec(&config).unwrap()),
        ("layer.tar", layer.clone()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, path, &bytes[..]).unwrap();
    }
    (archive.into_inner().unwrap(), layer.len())
}

/// `wharf ARGS` with `input` on its standard input; returns its stdout, after asserting it succeeded.
fn with_stdin(env: &Env, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = env
        .command(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    support::cli::succeeded(args, child.wait_with_output().unwrap())
}

#[test]
fn images_shows_uncompressed_sizes_and_ages_and_load_and_import_read_stdin() {
    let env = Env::new();
    // load without -i reads the archive from standard input.
    let (archive, layer_len) = saved_image("old:1", std::time::Duration::from_secs(2 * 3600 + 60), 5000);
    assert_eq!(with_stdin(&env, &["load"], &archive), "Loaded image: old:1\n");
    // import - reads a root filesystem's tar from standard input.
    let tree = env.busybox_tree("fromstdin", "stdin\n");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["-cz", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let id = with_stdin(&env, &["import", "-", "piped", "--cmd", "/bin/sh"], &tar.stdout);
    assert!(id.starts_with("sha256:"), "{id}");

    // docker's table: CREATED in its words, SIZE uncompressed (the layer's tar, not the gzip of it).
    let images = env.ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{images}"
    );
    let header = lines[0];
    let cell = |line: &str, title: &str, next: Option<&str>| {
        let start = header.find(title).unwrap();
        let end = next.map_or(line.len(), |n| header.find(n).unwrap());
        line[start..end.min(line.len())].trim().to_string()
    };
    let row = |repo: &str| {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{repo} ")))
            .unwrap_or_else(|| panic!("{images}"));
        (
            cell(line, "TAG", Some("IMAGE ID")),
            cell(line, "IMAGE ID", Some("CREATED")),
            cell(line, "CREATED", Some("SIZE")),
            cell(line, "SIZE", None),
        )
    };
    let (tag, image_id, created, size) = row("old");
    assert_eq!(tag, "1");
    assert!(
        image_id.len() == 12 && image_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{image_id}"
    );
    assert_eq!(created, "2 hours ago");
    assert!(layer_len < 10_000);
    assert_eq!(size, format!("{}kB", layer_len as f64 / 1000.0));
    let (tag, _, created, size) = row("piped");
    assert_eq!(tag, "latest");
    assert!(
        created.ends_with(" ago") && (created.contains("second") || created.contains("minute")),
        "{created}"
    );
    let compressed = tar.stdout.len() as f64 / 1e6;
    assert!(
        megabytes(&size) > compressed * 1.2,
        "{size} is not the uncompressed size (gzip: {compressed}MB)"
    );
    // The same once the layer is in the layer cache (its size then comes from there).
    assert_eq!(env.ok(&["run", "--rm", "piped", "cat", "/etc/release"]), "stdin\n");
    let sizes = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().last().unwrap().to_string())
            .collect()
    };
    assert_eq!(sizes(&env.ok(&["images"])), sizes(&images));
}
