//! The corpus: layers written by the tools people build images with (GNU tar in its gnu and
//! posix formats, bsdtar's pax and ustar, Python's tarfile in GNU, PAX and USTAR, umoci's
//! `insert`, `repack` and `raw add-layer`, buildah's commit in OCI and Docker formats, podman's build saved as docker-archive
//! and oci-archive, skopeo's copy between formats and to zstd), unpacked by wharf (flattened, and through the layer cache as an overlay), by
//! containerd (`ctr images import` of the image wharf saves, `ctr images mount`) and by umoci,
//! and the trees compared: path, type, mode, owner, size, content, link target, device
//! numbers, xattrs, mtime and hardlink groups. Every difference fails the test unless it is
//! one of the deliberate ones listed in `DELIBERATE` (none) or where umoci departs from the
//! tar and from containerd (`UMOCI_QUIRKS`).
//!
//! Needs root, GNU tar, bsdtar (`libarchive-tools`), Debian's python3, umoci, containerd,
//! buildah, podman, skopeo and setcap (`libcap2-bin`): `scripts/test-deps.sh`.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use wharf::image::{Platform, Reference, Store, archive};
use wharf::rootfs::{ApplyOptions, LayerCache, MountMode, Rootfs, RootfsOptions, apply_layer};

mod support;

use support::containerd::Containerd;

/// Differences from umoci that wharf makes on purpose (path, field, why). Empty: every tree
/// of the corpus comes out the same.
const DELIBERATE: &[(&str, &str, &str)] = &[];

/// Where umoci 0.4.7 differs from the tar and from containerd, so wharf does too (path,
/// field, why). Only that field of that path is left out of the comparison.
const UMOCI_QUIRKS: &[(&str, &str, &str)] = &[
    (
        "opt/2300",
        "mtime",
        "umoci 0.4.7 stores an mtime past 2^32 s as -2^31; containerd and wharf the epoch (Go's boundTime)",
    ),
    (
        "opt/1960",
        "mtime",
        "umoci keeps a time before 1970; containerd, Docker, podman and wharf set the epoch (Go's boundTime)",
    ),
];

/// For the layer umoci insert adds to `etc` without an entry for `etc` itself: umoci
/// restores the directory's time, containerd (a new directory in the snapshot) and wharf
/// keep the time the addition gave it, which is the time of unpacking and so differs by run.
const INSERT_UNPACK_TIME: &[(&str, &str, &str)] = &[("etc", "mtime", "the time of unpacking")];

/// `desc` without the `field=…` part.
fn without(desc: &str, field: &str) -> String {
    desc.split(' ')
        .filter(|part| !part.starts_with(&format!("{field}=")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is required: apt-get install {package} (scripts/test-deps.sh)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How much of the tree a format can hold.
#[derive(Clone, Copy, PartialEq)]
enum Reach {
    /// Everything: long and non-UTF-8 names, big ids, times before 1970 and after 2038.
    Full,
    /// What ustar holds: 100-byte names, 7-digit octal ids, times from 1970 to 2242.
    Ustar,
}

fn set_times(p: &Path, secs: i64) {
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, p, &ts, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// The first layer's tree: what the list of cases asks for.
fn base_tree(d: &Path, reach: Reach) {
    let w = |p: &str, data: &[u8], mode: u32| {
        let f = d.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, data).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        f
    };
    let file = w("etc/hostname", b"corpus\n", 0o644);
    std::fs::hard_link(&file, d.join("etc/hostname.link")).unwrap();
    std::os::unix::fs::symlink("hostname", d.join("etc/alias")).unwrap();
    rustix::fs::setxattr(&file, "user.origin", b"corpus", rustix::fs::XattrFlags::empty()).unwrap();
    let ping = w("bin/ping", b"\x7fELF not really", 0o755);
    run(Command::new("setcap").arg("cap_net_raw+ep").arg(&ping));
    w("bin/su", b"su", 0o4755);
    w("bin/wall", b"wall", 0o2755);
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::set_permissions(d.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    // Debian's /var/mail: setgid, group mail; entries inside keep their own group.
    std::fs::create_dir_all(d.join("var/mail/sub")).unwrap();
    chown(&d.join("var/mail"), 0, 8);
    std::fs::set_permissions(d.join("var/mail"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    w("var/mail/root", b"", 0o600);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("dev-null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        d.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // A sparse file: 1 MiB with 4 KiB of data in the middle.
    let sparse = w("var/sparse", b"", 0o644);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&sparse).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(&[7u8; 4096], 512 * 1024).unwrap();
    }
    let owned = w("home/user/file", b"mine", 0o640);
    chown(&owned, 1000, 1000);
    chown(&d.join("home/user"), 1000, 1000);
    w("opt/2038", b"", 0o644);
    set_times(&d.join("opt/2038"), 2_000_000_000);
    if reach == Reach::Full {
        let big = w("srv/big", b"", 0o644);
        chown(&big, 70_000, 70_000);
        let huge = w("srv/huge", b"", 0o644);
        chown(&huge, 3_000_000, 3_000_000);
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(140));
        w(&long, b"long", 0o644);
        let raw = d.join(OsStr::from_bytes(b"caf\xe9"));
        std::fs::write(&raw, b"latin-1").unwrap();
        w("opt/1960", b"", 0o644);
        set_times(&d.join("opt/1960"), -315_619_200);
        w("opt/2300", b"", 0o644);
        set_times(&d.join("opt/2300"), 10_413_792_000);
    }
    for dir in ["etc", "bin", "var", "home", "opt"] {
        set_times(&d.join(dir), 1_500_000_000);
    }
}

/// The second layer: whiteouts, an opaque directory, a directory replaced by a file.
fn upper_tree(d: &Path) {
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/.wh.alias"), b"").unwrap();
    std::fs::create_dir_all(d.join("var/mail")).unwrap();
    std::fs::write(d.join("var/mail/.wh..wh..opq"), b"").unwrap();
    std::fs::write(d.join("var/mail/new"), b"new").unwrap();
    chown(&d.join("var/mail"), 0, 8);
    std::fs::set_permissions(d.join("var/mail"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    std::fs::write(d.join("home"), b"now a file").unwrap();
    for p in ["etc", "var", "var/mail"] {
        set_times(&d.join(p), 1_600_000_000);
    }
}

/// The third layer: the directory the second layer replaced by a file, back again.
fn top_tree(d: &Path) {
    std::fs::create_dir_all(d.join("home/again")).unwrap();
    std::fs::write(d.join("home/again/file"), b"back").unwrap();
    set_times(&d.join("home/again"), 1_600_000_000);
    set_times(&d.join("home"), 1_600_000_000);
}

/// What the trees must hold, so that a comparison of two empty trees cannot pass.
fn checks(producer: &str, reach: Reach, ours: &Path) {
    let tree = describe(ours);
    let get = |p: &[u8]| {
        tree.get(p)
            .unwrap_or_else(|| panic!("{producer}: {} missing", String::from_utf8_lossy(p)))
    };
    assert!(
        get(b"bin/su").starts_with("mode=104755"),
        "{producer}: {}",
        get(b"bin/su")
    );
    assert!(
        get(b"var/mail").starts_with("mode=42775 uid=0 gid=8"),
        "{producer}: {}",
        get(b"var/mail")
    );
    assert!(get(b"var/sparse").contains("size=1048576"), "{producer}");
    assert!(get(b"dev-null").contains("rdev=1:3"), "{producer}");
    if reach == Reach::Full {
        assert!(get(b"srv/huge").contains("uid=3000000 gid=3000000"), "{producer}");
        assert!(
            get(b"opt/1960").contains("mtime=0"),
            "{producer}: before 1970 is the epoch, as in containerd"
        );
        assert!(tree.contains_key(&b"caf\xe9"[..]), "{producer}");
    }
    if producer.starts_with("gnu tar") || producer.starts_with("umoci") {
        assert!(
            get(b"bin/ping").contains("xattr:security.capability"),
            "{producer}: {}",
            get(b"bin/ping")
        );
        assert!(get(b"etc/hostname").contains("xattr:user.origin"), "{producer}");
    }
    if !producer.starts_with("umoci") {
        assert!(
            !tree.contains_key(&b"etc/alias"[..]),
            "{producer}: whiteout not applied"
        );
        if !producer.contains("children before parents") {
            assert_eq!(get(b"home/again/file").split(' ').count(), 6, "{producer}");
        }
        assert!(
            !tree.contains_key(&b"var/mail/root"[..]),
            "{producer}: opaque directory not applied"
        );
    }
}

/// Writes `dir` as a layer tar at `out` with `producer`.
fn produce(producer: &str, dir: &Path, out: &Path) {
    let gnu = |format: &str| {
        run(Command::new("tar")
            .arg(format!("--format={format}"))
            .args(["--sparse", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."))
    };
    let bsd = |format: &str| {
        run(Command::new("bsdtar")
            .arg(format!("--format={format}"))
            .args(["--numeric-owner", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."))
    };
    let python = |format: &str| {
        let script = format!(
            "import sys, tarfile\n\
             with tarfile.open(sys.argv[2], 'w', format=tarfile.{format}) as t:\n    t.add(sys.argv[1], arcname='.')\n"
        );
        run(Command::new("/usr/bin/python3").arg("-c").arg(script).arg(dir).arg(out))
    };
    match producer {
        "gnu tar --format=gnu" => gnu("gnu"),
        "gnu tar --format=posix" => gnu("posix"),
        "bsdtar --format=pax" => bsd("pax"),
        "bsdtar --format=ustar" => bsd("ustar"),
        "python tarfile GNU" => python("GNU_FORMAT"),
        "python tarfile PAX" => python("PAX_FORMAT"),
        "python tarfile USTAR" => python("USTAR_FORMAT"),
        "python tarfile PAX, children before parents" => {
            let script = "import os, sys, tarfile\n\
                 root = sys.argv[1]\n\
                 paths = [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs]\n\
                 paths.sort(reverse=True)\n\
                 with tarfile.open(sys.argv[2], 'w', format=tarfile.PAX_FORMAT) as t:\n\
                 \x20   for p in paths:\n\
                 \x20       t.add(p, arcname=os.path.relpath(p, root), recursive=False)\n";
            run(Command::new("/usr/bin/python3").arg("-c").arg(script).arg(dir).arg(out))
        }
        other => panic!("unknown producer {other}"),
    }
}

/// One line per path: what a tree comparison looks at.
fn describe(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut first_of_inode: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let p = root.join(&rel);
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let key = rel.as_os_str().as_bytes().to_vec();
            let mut d = format!(
                "mode={:o} uid={} gid={} mtime={}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime()
            );
            if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                d += &format!(" size={} sha256={}", m.len(), wharf::image::Digest::sha256(&data).hex());
                if m.nlink() > 1 {
                    let first = first_of_inode.entry(m.ino()).or_insert_with(|| key.clone());
                    d += &format!(" hardlink-group={}", String::from_utf8_lossy(first));
                }
            } else if ft.is_symlink() {
                d += &format!(" -> {}", std::fs::read_link(&p).unwrap().display());
            } else if !ft.is_dir() {
                d += &format!(" rdev={}:{}", rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
            }
            if !ft.is_symlink() {
                let mut names = vec![0u8; 4096];
                let n = rustix::fs::llistxattr(&p, &mut names).unwrap();
                let mut xs: Vec<&[u8]> = names[..n].split(|&b| b == 0).filter(|x| !x.is_empty()).collect();
                xs.sort();
                for x in xs {
                    let mut v = vec![0u8; 4096];
                    let k = rustix::fs::lgetxattr(&p, x, &mut v).unwrap();
                    d += &format!(" xattr:{}={:?}", String::from_utf8_lossy(x), &v[..k]);
                }
            }
            if ft.is_dir() {
                stack.push(rel);
            }
            out.insert(key, d);
        }
    }
    out
}

fn compare(what: &str, wharf: &Path, peer: &Path, also: &[(&str, &str, &str)]) -> Vec<String> {
    let quirks: Vec<_> = UMOCI_QUIRKS.iter().chain(also).copied().collect();
    compare_with(what, "umoci", wharf, peer, &quirks)
}

fn compare_with(what: &str, peer_name: &str, wharf: &Path, peer: &Path, quirks: &[(&str, &str, &str)]) -> Vec<String> {
    let (a, b) = (describe(wharf), describe(peer));
    let mut diffs = Vec::new();
    for key in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        let name = String::from_utf8_lossy(key).into_owned();
        let (mut x, mut y) = (a.get(key).cloned(), b.get(key).cloned());
        for (path, field, _) in DELIBERATE.iter().chain(quirks) {
            if *path == name {
                x = x.map(|d| without(&d, field));
                y = y.map(|d| without(&d, field));
            }
        }
        if x != y {
            diffs.push(format!("{what}: {name}\n  wharf: {x:?}\n  {peer_name}: {y:?}"));
        }
    }
    diffs
}

struct Umoci {
    layout: PathBuf,
}

impl Umoci {
    fn new(dir: &Path) -> Umoci {
        let layout = dir.join("layout");
        run(Command::new("umoci").arg("init").arg("--layout").arg(&layout));
        run(Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(format!("{}:t", layout.display())));
        Umoci { layout }
    }

    fn image(&self) -> String {
        format!("{}:t", self.layout.display())
    }

    fn add_layer(&self, tar: &Path) {
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image"])
            .arg(self.image())
            .arg(tar));
    }

    fn unpack(&self, bundle: &Path) -> PathBuf {
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(self.image())
            .arg(bundle));
        bundle.join("rootfs")
    }

    /// The image's layer blobs, bottom first.
    fn layers(&self) -> Vec<PathBuf> {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.layout.join("index.json")).unwrap()).unwrap();
        let blob = |d: &str| self.layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(&manifest)).unwrap()).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(l["digest"].as_str().unwrap()))
            .collect()
    }
}

/// Imports the umoci layout into a wharf store (which checks every layer as unpacking
/// will), extracts its layers into the layer cache and mounts them as an overlay rootfs.
fn wharf_overlay(layout: &Path, dir: &Path, name: &str) -> (Rootfs, Store) {
    let store = Store::open(dir.join("store")).unwrap();
    let repo: Reference = name.parse().unwrap();
    archive::import_layout(&store, layout, Some(&repo)).unwrap_or_else(|e| panic!("wharf refused to import: {e}"));
    let image = store.image(&repo.with_tag("t"), &Platform::default()).unwrap();
    let cache = LayerCache::open(dir.join("cache")).unwrap();
    let cached = cache
        .ensure_image(&store, &image, &ApplyOptions::default())
        .unwrap_or_else(|e| panic!("the layer cache refused a layer: {e}"));
    let rootfs = Rootfs::create(&cache, &cached, dir.join("ovl"), &RootfsOptions::default()).unwrap();
    assert_eq!(rootfs.mode(), MountMode::Overlay, "{:?}", rootfs.fallback_reason());
    (rootfs, store)
}

/// The image `name:t` of `store` as containerd unpacks it (imported from a `docker save`
/// archive, mounted with `ctr images mount`), compared with wharf's tree.
fn compare_with_containerd(
    what: &str,
    c: &Containerd,
    (store, name): (&Store, &str),
    dir: &Path,
    ours: &Path,
    quirks: &[(&str, &str, &str)],
) -> Vec<String> {
    let reference: Reference = format!("{name}:t").parse().unwrap();
    let archive_path = dir.join("saved.tar");
    archive::save(
        store,
        std::slice::from_ref(&reference),
        &Platform::default(),
        std::fs::File::create(&archive_path).unwrap(),
    )
    .unwrap();
    c.ok(&["images", "import", archive_path.to_str().unwrap()]);
    let mnt = dir.join("containerd-mnt");
    std::fs::create_dir(&mnt).unwrap();
    c.ok(&["images", "mount", &reference.to_string(), mnt.to_str().unwrap()]);
    let diffs = compare_with(what, "containerd", ours, &mnt, quirks);
    c.ok(&["images", "unmount", "--rm", mnt.to_str().unwrap()]);
    diffs
}

/// Unpacks layers with wharf (flattened) into `root`.
fn wharf_unpack(layers: &[PathBuf], root: &Path) {
    std::fs::create_dir(root).unwrap();
    let dir = std::fs::File::open(root).unwrap();
    for l in layers {
        let blob = std::fs::File::open(l).unwrap();
        apply_layer(&dir, blob, &ApplyOptions::default())
            .unwrap_or_else(|e| panic!("wharf refused {}: {e}", l.display()));
    }
}

fn preflight() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the corpus needs root (owners, devices, security.capability)"
    );
    require("tar", "tar");
    require("bsdtar", "libarchive-tools");
    require("umoci", "umoci");
    require("setcap", "libcap2-bin");
    require("ctr", "containerd");
    assert!(
        Path::new("/usr/bin/python3").exists(),
        "python3 is required: apt-get install python3"
    );
}

#[test]
fn layers_of_every_producer_unpack_as_containerd_and_umoci_unpack_them() {
    preflight();
    let containerd = Containerd::start();
    let mut diffs = Vec::new();
    for (i, producer) in [
        "gnu tar --format=gnu",
        "gnu tar --format=posix",
        "bsdtar --format=pax",
        "bsdtar --format=ustar",
        "python tarfile GNU",
        "python tarfile PAX",
        "python tarfile USTAR",
        "python tarfile PAX, children before parents",
    ]
    .into_iter()
    .enumerate()
    {
        let reach = if producer.ends_with("ustar") || producer.ends_with("USTAR") {
            Reach::Ustar
        } else {
            Reach::Full
        };
        let t = tempfile::tempdir().unwrap();
        let (base, upper) = (t.path().join("base"), t.path().join("upper"));
        std::fs::create_dir(&base).unwrap();
        std::fs::create_dir(&upper).unwrap();
        base_tree(&base, reach);
        upper_tree(&upper);
        let top = t.path().join("top");
        std::fs::create_dir(&top).unwrap();
        top_tree(&top);
        let umoci = Umoci::new(t.path());
        // In reverse order the top layer writes home/again/file while home is still the
        // second layer's file: containerd and umoci refuse that image, as wharf does
        // (wharf-rootfs's tests/ecosystem.rs), so that producer writes two layers.
        let layers: &[&PathBuf] = if producer.contains("children before parents") {
            &[&base, &upper]
        } else {
            &[&base, &upper, &top]
        };
        for (i, dir) in layers.iter().enumerate() {
            let layer = t.path().join(format!("l{i}.tar"));
            produce(producer, dir, &layer);
            umoci.add_layer(&layer);
        }
        let ours = t.path().join("wharf");
        wharf_unpack(&umoci.layers(), &ours);
        let name = format!("corpus/p{i}");
        let (overlay, store) = wharf_overlay(&umoci.layout, t.path(), &name);
        let theirs = umoci.unpack(&t.path().join("bundle"));
        diffs.extend(compare(&format!("{producer}, flattened"), &ours, &theirs, &[]));
        diffs.extend(compare(&format!("{producer}, overlay"), &overlay.path(), &theirs, &[]));
        overlay.close().unwrap();
        diffs.extend(compare_with_containerd(
            producer,
            &containerd,
            (&store, &name),
            t.path(),
            &ours,
            &[],
        ));
        checks(producer, reach, &ours);
    }
    assert!(
        diffs.is_empty(),
        "wharf unpacks differently from its peers:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn layers_umoci_insert_and_repack_write_unpack_as_containerd_and_umoci_unpack_them() {
    // umoci 0.4.7's insert and repack end a layer right after the last entry's data.
    preflight();
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    std::fs::create_dir(&base).unwrap();
    base_tree(&base, Reach::Full);
    let umoci = Umoci::new(t.path());
    run(Command::new("umoci")
        .args(["insert", "--image"])
        .arg(umoci.image())
        .arg(&base)
        .arg("/"));
    let extra = t.path().join("extra");
    std::fs::write(&extra, b"inserted").unwrap();
    run(Command::new("umoci")
        .args(["insert", "--image"])
        .arg(umoci.image())
        .arg(&extra)
        .arg("/etc/extra"));
    // umoci repack on top: unpack, add a file and remove the inserted one (a whiteout), repack.
    let work = t.path().join("work");
    let tree = umoci.unpack(&work);
    std::fs::write(tree.join("etc/repacked"), b"repacked").unwrap();
    std::fs::remove_file(tree.join("etc/extra")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(umoci.image())
        .arg(&work));
    let theirs = umoci.unpack(&t.path().join("bundle"));
    let ours = t.path().join("wharf");
    wharf_unpack(&umoci.layers(), &ours);
    let mut diffs = compare("umoci insert, flattened", &ours, &theirs, INSERT_UNPACK_TIME);
    let (overlay, store) = wharf_overlay(&umoci.layout, t.path(), "corpus/insert");
    diffs.extend(compare(
        "umoci insert, overlay",
        &overlay.path(),
        &theirs,
        INSERT_UNPACK_TIME,
    ));
    overlay.close().unwrap();
    let containerd = Containerd::start();
    diffs.extend(compare_with_containerd(
        "umoci insert",
        &containerd,
        (&store, "corpus/insert"),
        t.path(),
        &ours,
        INSERT_UNPACK_TIME,
    ));
    checks("umoci insert", Reach::Full, &ours);
    assert_eq!(std::fs::read(ours.join("etc/repacked")).unwrap(), b"repacked");
    assert!(!ours.join("etc/extra").exists(), "repack's whiteout was not applied");
    assert!(
        diffs.is_empty(),
        "wharf unpacks differently from its peers:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn images_buildah_podman_and_skopeo_write_unpack_as_containerd_and_umoci_unpack_them() {
    preflight();
    require("buildah", "buildah");
    require("podman", "podman");
    require("skopeo", "skopeo");
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    std::fs::create_dir(&base).unwrap();
    base_tree(&base, Reach::Full);
    let p = |name: &str| t.path().join(name).to_str().unwrap().to_string();
    let buildah = |args: &[&str]| -> String {
        let out = Command::new("buildah")
            .args([
                "--root",
                &p("storage"),
                "--runroot",
                &p("run"),
                "--storage-driver",
                "vfs",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // From scratch, the tree copied in, committed in both formats.
    let ctr = buildah(&["from", "scratch"]);
    buildah(&["copy", &ctr, &p("base"), "/"]);
    buildah(&["commit", "--format", "oci", &ctr, &format!("oci:{}:t", p("oci"))]);
    buildah(&[
        "commit",
        "--format",
        "docker",
        &ctr,
        &format!("docker-archive:{}:corpus/docker:t", p("docker.tar")),
    ]);
    buildah(&["rm", &ctr]);
    let skopeo = |args: &[&str]| run(Command::new("skopeo").arg("--insecure-policy").args(args));
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", p("docker.tar")),
        &format!("oci:{}:t", p("from-docker")),
    ]);
    skopeo(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        "--dest-compress",
        &format!("oci:{}:t", p("oci")),
        &format!("oci:{}:t", p("zstd")),
    ]);
    // podman build from scratch (two COPY layers), saved in both archive formats.
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(ctx.join("base")).unwrap();
    base_tree(&ctx.join("base"), Reach::Full);
    std::fs::create_dir_all(ctx.join("top")).unwrap();
    top_tree(&ctx.join("top"));
    std::fs::write(ctx.join("Containerfile"), "FROM scratch\nCOPY base /\nCOPY top /\n").unwrap();
    let podman = |args: &[&str]| {
        run(Command::new("podman")
            .args([
                "--root",
                &p("proot"),
                "--runroot",
                &p("prun"),
                "--storage-driver",
                "vfs",
            ])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args(args))
    };
    podman(&["build", "--network", "none", "-t", "corpus/podman:t", &p("ctx")]);
    podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        &p("podman-docker.tar"),
        "corpus/podman:t",
    ]);
    podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        &p("podman-oci.tar"),
        "corpus/podman:t",
    ]);
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", p("podman-docker.tar")),
        &format!("oci:{}:t", p("podman-docker")),
    ]);
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", p("podman-oci.tar")),
        &format!("oci:{}:t", p("podman-oci")),
    ]);
    // wharf loads the archives buildah and podman write as they are.
    let loaded = Store::open(t.path().join("loaded")).unwrap();
    for archive_name in ["docker.tar", "podman-docker.tar", "podman-oci.tar"] {
        let file = t.path().join(archive_name);
        archive::load(&loaded, &file, std::fs::File::open(&file).unwrap())
            .unwrap_or_else(|e| panic!("wharf refused {archive_name}: {e}"));
    }

    let containerd = Containerd::start();
    let mut diffs = Vec::new();
    for (i, (label, layout, umoci_reads)) in [
        ("buildah commit --format oci", "oci", true),
        (
            "buildah commit --format docker, skopeo copy to oci",
            "from-docker",
            true,
        ),
        ("podman build, save --format docker-archive", "podman-docker", true),
        ("podman build, save --format oci-archive", "podman-oci", true),
        // umoci 0.4.7 does not read zstd layers.
        ("skopeo copy --dest-compress-format zstd", "zstd", false),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = t.path().join(format!("c{i}"));
        std::fs::create_dir(&dir).unwrap();
        let umoci = Umoci {
            layout: t.path().join(layout),
        };
        let ours = dir.join("wharf");
        wharf_unpack(&umoci.layers(), &ours);
        let name = format!("corpus/b{i}");
        let (overlay, store) = wharf_overlay(&umoci.layout, &dir, &name);
        if umoci_reads {
            let theirs = umoci.unpack(&dir.join("bundle"));
            diffs.extend(compare(&format!("{label}, flattened"), &ours, &theirs, &[]));
            diffs.extend(compare(&format!("{label}, overlay"), &overlay.path(), &theirs, &[]));
        } else {
            diffs.extend(compare_with(label, "wharf flattened", &overlay.path(), &ours, &[]));
        }
        overlay.close().unwrap();
        diffs.extend(compare_with_containerd(
            label,
            &containerd,
            (&store, &name),
            &dir,
            &ours,
            &[],
        ));
        let tree = describe(&ours);
        assert!(
            tree.contains_key(&b"etc/hostname"[..]) && tree.contains_key(&b"srv/huge"[..]),
            "{label}: {tree:?}"
        );
    }
    assert!(
        diffs.is_empty(),
        "wharf unpacks differently from its peers:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn hardlinks_into_lower_layers_unpack_as_umoci_unpacks_them() {
    // Python's tarfile writes the upper layer by hand: a hardlink to a file of the layer
    // below, another to a file that the same layer then deletes below, and one within.
    preflight();
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base");
    std::fs::create_dir(&base).unwrap();
    base_tree(&base, Reach::Full);
    let umoci = Umoci::new(t.path());
    let l1 = t.path().join("l1.tar");
    produce("gnu tar --format=posix", &base, &l1);
    umoci.add_layer(&l1);
    let l2 = t.path().join("l2.tar");
    let script = "import io, sys, tarfile\n\
         def entry(t, name, kind, link=''):\n\
         \x20   i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; i.mtime = 1600000000; i.mode = 0o644\n\
         \x20   t.addfile(i)\n\
         with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n\
         \x20   entry(t, 'etc/hostname.again', tarfile.LNKTYPE, 'etc/hostname')\n\
         \x20   entry(t, 'bin/su.kept', tarfile.LNKTYPE, 'bin/su')\n\
         \x20   i = tarfile.TarInfo('new'); i.size = 3; i.mtime = 1600000000; t.addfile(i, io.BytesIO(b'new'))\n\
         \x20   entry(t, 'new.link', tarfile.LNKTYPE, 'new')\n";
    run(Command::new("/usr/bin/python3").arg("-c").arg(script).arg(&l2));
    umoci.add_layer(&l2);
    let theirs = umoci.unpack(&t.path().join("bundle"));
    let ours = t.path().join("wharf");
    wharf_unpack(&umoci.layers(), &ours);
    // The layer adds to etc and bin without entries for them: their times are the time of
    // unpacking, except in umoci.
    let unpack_time = [
        ("etc", "mtime", "the time of unpacking"),
        ("bin", "mtime", "the time of unpacking"),
    ];
    let mut diffs = compare("hardlinks into lower layers, flattened", &ours, &theirs, &unpack_time);
    let (overlay, store) = wharf_overlay(&umoci.layout, t.path(), "corpus/links");
    let overlay_limits = [
        unpack_time[0],
        unpack_time[1],
        (
            "etc/hostname.link",
            "hardlink-group",
            "overlayfs: etc/hostname, copied up to be linked from the upper layer, leaves its other \
             lower link behind (as any overlay mount without index=on, Docker's overlay2 included)",
        ),
    ];
    diffs.extend(compare(
        "hardlinks into lower layers, overlay",
        &overlay.path(),
        &theirs,
        &overlay_limits,
    ));
    overlay.close().unwrap();
    // Debian's containerd 1.6 applies a layer straight into its snapshot's upper directory
    // and cannot link to a lower layer's file ("link …/etc/hostname: no such file or
    // directory"); a containerd that unpacks the image must give the same tree.
    let containerd = Containerd::start();
    let reference: Reference = "corpus/links:t".parse().unwrap();
    let saved = t.path().join("links.tar");
    archive::save(
        &store,
        std::slice::from_ref(&reference),
        &Platform::default(),
        std::fs::File::create(&saved).unwrap(),
    )
    .unwrap();
    let import = containerd.ctr(&["images", "import", saved.to_str().unwrap()]);
    if import.status.success() {
        diffs.extend(compare_with_containerd(
            "hardlinks into lower layers",
            &containerd,
            (&store, "corpus/links"),
            t.path(),
            &ours,
            &[],
        ));
    } else {
        let err = String::from_utf8_lossy(&import.stderr);
        assert!(
            err.contains("link") && err.contains("no such file"),
            "containerd failed otherwise: {err}"
        );
    }
    let tree = describe(&ours);
    assert!(
        tree[&b"etc/hostname.again"[..]].contains("hardlink-group=etc/hostname"),
        "{tree:?}"
    );
    assert!(
        diffs.is_empty(),
        "wharf unpacks differently from its peers:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn a_multi_platform_index_unpacks_the_hosts_image_as_containerd_does() {
    // Two images in one layout (umoci), joined by an image index with their platforms: wharf
    // and containerd both take the host's (umoci 0.4.7 unpacks single manifests only).
    preflight();
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("layout");
    run(Command::new("umoci").arg("init").arg("--layout").arg(&layout));
    let (host_arch, other_arch) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", "arm64"),
        "aarch64" => ("arm64", "amd64"),
        other => panic!("this test knows the OCI name of x86_64 and aarch64 only, not {other}"),
    };
    let mut manifests = Vec::new();
    for arch in [other_arch, host_arch] {
        let image = format!("{}:{arch}", layout.display());
        run(Command::new("umoci").args(["new", "--image"]).arg(&image));
        run(Command::new("umoci")
            .args(["config", "--architecture", arch, "--image"])
            .arg(&image));
        let tree = t.path().join(arch);
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/arch"), arch).unwrap();
        let tar = t.path().join(format!("{arch}.tar"));
        produce("gnu tar --format=posix", &tree, &tar);
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image"])
            .arg(&image)
            .arg(&tar));
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == arch)
            .unwrap()
            .clone();
        manifests.push(serde_json::json!({
            "mediaType": entry["mediaType"],
            "digest": entry["digest"],
            "size": entry["size"],
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let image_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = wharf::image::Digest::sha256(&image_index);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), &image_index).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": image_index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let (overlay, store) = wharf_overlay(&layout, t.path(), "corpus/multi");
    let ours = t.path().join("wharf");
    std::fs::create_dir(&ours).unwrap();
    let image = store
        .image(&"corpus/multi:t".parse().unwrap(), &Platform::default())
        .unwrap();
    wharf::rootfs::unpack_image(&store, &image, &ours, &ApplyOptions::default()).unwrap();
    assert_eq!(std::fs::read(ours.join("etc/arch")).unwrap(), host_arch.as_bytes());
    let mut diffs = compare_with(
        "multi-platform index, overlay",
        "wharf flattened",
        &overlay.path(),
        &ours,
        &[],
    );
    overlay.close().unwrap();
    // containerd gets the layout itself, index and both platforms, as an OCI archive.
    let containerd = Containerd::start();
    let archive_path = t.path().join("multi.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive_path)
        .arg("."));
    containerd.ok(&[
        "images",
        "import",
        "--base-name",
        "docker.io/corpus/multi",
        archive_path.to_str().unwrap(),
    ]);
    let mnt = t.path().join("containerd-mnt");
    std::fs::create_dir(&mnt).unwrap();
    containerd.ok(&["images", "mount", "docker.io/corpus/multi:t", mnt.to_str().unwrap()]);
    diffs.extend(compare_with("multi-platform index", "containerd", &ours, &mnt, &[]));
    containerd.ok(&["images", "unmount", "--rm", mnt.to_str().unwrap()]);
    assert!(
        diffs.is_empty(),
        "wharf unpacks differently from its peers:\n{}",
        diffs.join("\n")
    );
}
