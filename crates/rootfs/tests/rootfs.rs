//! The layer cache and container root filesystems, on real overlayfs (tests run as root).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::{Tar, require_root, store_image, tree};
use wharf_image::Store;
use wharf_rootfs::{ApplyOptions, Error, LayerCache, MountMode, Rootfs, RootfsOptions};

fn layers() -> Vec<Vec<u8>> {
    let mut l1 = Tar::new();
    l1.dir("etc/", 0o755)
        .file("etc/hostname", b"base", 0o644)
        .file("etc/deleted", b"gone soon", 0o644)
        .dir("opt/", 0o755)
        .file("opt/old", b"old", 0o644)
        .dir("bin/", 0o755)
        .file("bin/busybox", b"\x7fELF busybox", 0o755);
    // Hardlinks stay within a layer: overlay-format layers are extracted alone.
    let mut l2_ok = Tar::new();
    l2_ok
        .dir("etc/", 0o755)
        .file("etc/.wh.deleted", b"", 0o644)
        .file("etc/hostname", b"second", 0o644)
        .dir("opt/", 0o755)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file("opt/new", b"new", 0o644)
        .dir("sbin/", 0o755)
        .file("sbin/tool", b"tool", 0o755)
        .hardlink("sbin/tool-alias", "sbin/tool");
    let mut l3 = Tar::new();
    l3.dir("var/", 0o755).file("var/log", b"log", 0o640);
    vec![l1.end(), l2_ok.end(), l3.end()]
}

struct Env {
    _tmp: tempfile::TempDir,
    store: Store,
    cache: LayerCache,
    containers: std::path::PathBuf,
}

fn env() -> Env {
    require_root("overlayfs mounts, whiteout devices, trusted xattrs");
    let tmp = tempfile::Builder::new().prefix("wharf-rootfs-cache").tempdir().unwrap();
    let store = Store::open(tmp.path().join("store")).unwrap();
    let cache = LayerCache::open(tmp.path().join("cache")).unwrap();
    let containers = tmp.path().join("containers");
    std::fs::create_dir(&containers).unwrap();
    Env {
        _tmp: tmp,
        store,
        cache,
        containers,
    }
}

#[test]
fn cache_extracts_layers_once_by_diff_id() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/cache:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    assert_eq!(cached.len(), 3);
    for (c, d) in cached.iter().zip(image.config.diff_ids().unwrap()) {
        assert_eq!(c.diff_id, d);
        assert!(e.cache.contains(&d));
        assert_eq!(e.cache.info(&d).unwrap().diff_id, d.to_string());
    }
    // Overlay format on disk.
    let l2 = &cached[1].path;
    let wh = std::fs::symlink_metadata(l2.join("etc/deleted")).unwrap();
    assert_eq!((wh.mode() & 0o170000, wh.rdev()), (0o020000, 0));
    let ino = std::fs::metadata(&cached[0].path).unwrap().ino();
    // A second image sharing the layers extracts nothing.
    let again = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    assert_eq!(again, cached);
    assert_eq!(std::fs::metadata(&cached[0].path).unwrap().ino(), ino);
    assert_eq!(e.cache.list().unwrap().len(), 3);
    assert!(std::fs::read_dir(e.cache.root().join("tmp")).unwrap().next().is_none());
}

#[test]
fn cache_rejects_a_layer_whose_diff_id_does_not_match_and_keeps_nothing() {
    let e = env();
    let ls = layers();
    // Store the blob of layer 3 under a config that claims layer 1's diff_id for it.
    let image = common::store_image_with(&e.store, "wharf-test/bad:1", &ls[..1], |_| {
        (common::gzip(&ls[2]), "application/vnd.oci.image.layer.v1.tar+gzip")
    });
    let err = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    assert!(e.cache.list().unwrap().is_empty());
    assert!(std::fs::read_dir(e.cache.root().join("tmp")).unwrap().next().is_none());
}

/// Fault: concurrent first use, several openers of a cache directory that does not exist yet
/// extracting the same layers at once.
#[test]
fn concurrent_extraction_of_one_layer_is_safe() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/race:1", &layers());
    let root = e.cache.root().with_file_name("fresh-cache");
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (store, image, root, barrier) = (&e.store, &image, &root, &barrier);
            s.spawn(move || {
                barrier.wait();
                // Separate handles: separate lock file descriptions, as separate processes have.
                let cache = LayerCache::open(root).unwrap();
                cache.ensure_image(store, image, &ApplyOptions::default()).unwrap()
            });
        }
    });
    let cache = LayerCache::open(&root).unwrap();
    assert_eq!(cache.list().unwrap().len(), 3);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&root).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    assert!(std::fs::read_dir(root.join("tmp")).unwrap().next().is_none());
}

#[test]
fn overlay_rootfs_is_copy_on_write_and_unmounted_on_drop() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/ovl:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let a = Rootfs::create(&e.cache, &cached, e.containers.join("a"), &RootfsOptions::default()).unwrap();
    assert_eq!(a.mode(), MountMode::Overlay, "fell back: {:?}", a.fallback_reason());
    let p = a.path();
    assert_eq!(std::fs::read(p.join("etc/hostname")).unwrap(), b"second");
    assert!(!p.join("etc/deleted").exists());
    assert!(!p.join("opt/old").exists());
    assert_eq!(std::fs::read(p.join("opt/new")).unwrap(), b"new");
    assert_eq!(std::fs::read(p.join("var/log")).unwrap(), b"log");
    // Writes go to the upper dir only.
    std::fs::write(p.join("etc/hostname"), b"container a").unwrap();
    std::fs::remove_file(p.join("bin/busybox")).unwrap();
    assert_eq!(std::fs::read(cached[1].path.join("etc/hostname")).unwrap(), b"second");
    assert!(cached[0].path.join("bin/busybox").exists());
    assert_eq!(
        std::fs::read(a.upper().unwrap().join("etc/hostname")).unwrap(),
        b"container a"
    );
    // A second container from the same layers sees the image, not a's changes.
    let b = Rootfs::create(&e.cache, &cached, e.containers.join("b"), &RootfsOptions::default()).unwrap();
    assert_eq!(std::fs::read(b.path().join("etc/hostname")).unwrap(), b"second");
    assert!(b.path().join("bin/busybox").exists());
    // Layers in use cannot be removed.
    assert!(e.cache.remove(&cached[0].diff_id).is_err());
    let a_dir = a.dir().to_path_buf();
    drop(a);
    assert!(!a_dir.exists());
    assert!(!mounted(&a_dir.join("rootfs")));
    b.close().unwrap();
    assert!(e.cache.remove(&cached[0].diff_id).unwrap());
    assert!(!e.cache.contains(&cached[0].diff_id));
}

fn mounted(p: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap()))
}

#[test]
fn copy_fallback_gives_the_same_tree_as_overlay() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/copy:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let o = Rootfs::create(&e.cache, &cached, e.containers.join("o"), &RootfsOptions::default()).unwrap();
    let c = Rootfs::create(
        &e.cache,
        &cached,
        e.containers.join("c"),
        &RootfsOptions {
            mode: Some(MountMode::Copy),
        },
    )
    .unwrap();
    assert_eq!(o.mode(), MountMode::Overlay);
    assert_eq!(c.mode(), MountMode::Copy);
    assert!(c.fallback_reason().is_some());
    let mut to = tree(&o.path());
    let mut tc = tree(&c.path());
    // Directory owner/mode of the merged root are not part of an image's content.
    to.remove("");
    tc.remove("");
    assert_eq!(to, tc);
    assert!(tc.contains_key("sbin/tool-alias"));
    assert_eq!(
        std::fs::metadata(c.path().join("sbin/tool-alias")).unwrap().ino(),
        std::fs::metadata(c.path().join("sbin/tool")).unwrap().ino()
    );
    // The copy is writable without touching the cache.
    std::fs::write(c.path().join("etc/hostname"), b"mine").unwrap();
    assert_eq!(std::fs::read(cached[1].path.join("etc/hostname")).unwrap(), b"second");
}

#[test]
fn an_overlay_for_a_user_namespace_mounts_nothing_here_and_can_become_a_copy() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/userns:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let opts = RootfsOptions {
        mode: Some(MountMode::InUserNamespace),
    };
    let r = Rootfs::create(&e.cache, &cached, e.containers.join("u"), &opts).unwrap();
    assert_eq!(r.mode(), MountMode::InUserNamespace);
    assert!(!mounted(&r.path()));
    assert_eq!(std::fs::read_dir(r.path()).unwrap().count(), 0);
    assert_eq!(r.upper(), Some(r.dir().join("upper")));
    // What the container's process mounts: the layers top first, then its own directories, with userxattr.
    let params = r.overlay_params();
    let lowers: Vec<_> = params
        .iter()
        .filter(|(k, _)| *k == "lowerdir+")
        .map(|(_, v)| v.clone().unwrap())
        .collect();
    assert_eq!(lowers.last(), Some(&cached[0].path));
    assert!(lowers.contains(&cached[cached.len() - 1].path));
    let tail: Vec<_> = params[lowers.len()..].to_vec();
    assert_eq!(
        tail,
        [
            ("upperdir", Some(r.dir().join("upper"))),
            ("workdir", Some(r.dir().join("work"))),
            ("userxattr", None)
        ]
    );
    // Attached again (another process, a restart), it is the same kind, and still nothing is mounted here.
    let dir = r.persist().unwrap();
    let mut a = Rootfs::attach(&e.cache, &dir).unwrap();
    assert_eq!(a.mode(), MountMode::InUserNamespace);
    assert!(!mounted(&a.path()));
    // A kernel that refuses the overlay: the new container becomes a copy of its layers.
    a.fall_back_to_copy("refused for the test").unwrap();
    assert_eq!(a.mode(), MountMode::Copy);
    assert_eq!(a.fallback_reason(), Some("refused for the test"));
    assert!(a.path().join("bin/busybox").exists());
    assert!(!dir.join("upper").exists());
    drop(a);
    assert!(!dir.exists());
    // One whose upper dir holds changes keeps them: no fallback.
    let r = Rootfs::create(&e.cache, &cached, e.containers.join("v"), &opts).unwrap();
    std::fs::write(r.dir().join("upper/changed"), "x").unwrap();
    let mut r = r;
    assert!(r.fall_back_to_copy("no").is_err());
    assert_eq!(r.mode(), MountMode::InUserNamespace);
}

#[test]
fn more_layers_than_fit_in_one_mount_option_string() {
    let e = env();
    let n = 120;
    let ls: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut t = Tar::new();
            t.dir("layers/", 0o755)
                .file(&format!("layers/{i}"), format!("layer {i}").as_bytes(), 0o644)
                .file("top", format!("{i}").as_bytes(), 0o644);
            t.end()
        })
        .collect();
    let image = store_image(&e.store, "wharf-test/many:1", &ls);
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let total: usize = cached.iter().map(|c| c.path.as_os_str().len() + 1).sum();
    assert!(
        total > 4096,
        "test does not exceed a page of mount options ({total} bytes)"
    );
    let r = Rootfs::create(&e.cache, &cached, e.containers.join("many"), &RootfsOptions::default()).unwrap();
    assert_eq!(r.mode(), MountMode::Overlay, "fell back: {:?}", r.fallback_reason());
    assert_eq!(
        std::fs::read(r.path().join("top")).unwrap(),
        format!("{}", n - 1).as_bytes()
    );
    assert_eq!(std::fs::read_dir(r.path().join("layers")).unwrap().count(), n);
}

#[test]
fn stale_mount_of_a_dead_process_is_cleaned_up() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/stale:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let live = Rootfs::create(&e.cache, &cached, e.containers.join("live"), &RootfsOptions::default()).unwrap();
    let stale = Rootfs::create(&e.cache, &cached, e.containers.join("stale"), &RootfsOptions::default()).unwrap();
    let stale_dir = stale.dir().to_path_buf();
    std::mem::forget(stale); // as if the process had crashed
    // Its owner is a process that has exited.
    let child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    let mut child = child;
    child.wait().unwrap();
    std::fs::write(stale_dir.join("owner"), format!("{pid} 1\n")).unwrap();
    assert!(mounted(&stale_dir.join("rootfs")));
    let removed = Rootfs::cleanup_stale(&e.containers).unwrap();
    assert_eq!(removed, vec![stale_dir.clone()]);
    assert!(!mounted(&stale_dir.join("rootfs")));
    assert!(!stale_dir.exists());
    assert!(live.path().join("etc/hostname").exists());
}

#[test]
fn prune_removes_layers_no_image_needs() {
    let e = env();
    let ls = layers();
    let keep = store_image(&e.store, "wharf-test/keep:1", &ls[..2]);
    let gone = store_image(&e.store, "wharf-test/gone:1", &ls);
    e.cache.ensure_image(&e.store, &keep, &ApplyOptions::default()).unwrap();
    let cached = e.cache.ensure_image(&e.store, &gone, &ApplyOptions::default()).unwrap();
    assert_eq!(e.cache.list().unwrap().len(), 3);
    // Nothing to prune while both images exist.
    assert!(e.cache.prune(&e.store).unwrap().is_empty());
    e.store.untag(&"wharf-test/gone:1".parse().unwrap()).unwrap();
    let removed = e.cache.prune(&e.store).unwrap();
    assert_eq!(removed, vec![cached[2].diff_id.clone()]);
    assert!(e.cache.contains(&cached[0].diff_id) && e.cache.contains(&cached[1].diff_id));
    assert!(!cached[2].path.exists());
}

/// Extractions begin in a directory flagged as the top of new hierarchies (`chattr +T`), so
/// ext4 places each layer in a block group of its own choosing instead of beside the layers
/// pruned last (an ext4 without a journal rescans recently freed inodes for every file it
/// creates there: benches/peers.sh's `firstrun` and `coldrun` measure the effect). An unpacked
/// image's root is flagged only while it is being written.
#[test]
fn extractions_are_placed_away_from_trees_removed_last() {
    use rustix::fs::{IFlags, ioctl_getflags};
    let e = env();
    let tmp = std::fs::File::open(e.cache.root().join("tmp")).unwrap();
    let flags = ioctl_getflags(&tmp)
        .expect("this test needs a filesystem with inode flags (FS_IOC_GETFLAGS: ext4, as CI's) under TMPDIR");
    assert!(flags.contains(IFlags::TOPDIR), "the cache's tmp/ is not +T: {flags:?}");
    let ls = layers();
    let image = store_image(&e.store, "wharf-test/spread:1", &ls);
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    // The flag stays with tmp/; published layers are plain directories.
    let layer = std::fs::File::open(&cached[0].path).unwrap();
    assert!(!ioctl_getflags(&layer).unwrap().contains(IFlags::TOPDIR));
    let flat = e.containers.join("flat");
    wharf_rootfs::unpack_image(&e.store, &image, &flat, &ApplyOptions::default()).unwrap();
    let root = std::fs::File::open(&flat).unwrap();
    assert!(
        !ioctl_getflags(&root).unwrap().contains(IFlags::TOPDIR),
        "unpack_image left +T on the tree it made"
    );
}

#[test]
fn temporary_extractions_of_dead_processes_are_removed_on_open() {
    let e = env();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = e.cache.root().join("tmp").join(format!("{}-{dead}", "a".repeat(64)));
    std::fs::create_dir_all(stale.join("fs/half")).unwrap();
    let mine = e
        .cache
        .root()
        .join("tmp")
        .join(format!("{}-{}", "b".repeat(64), std::process::id()));
    std::fs::create_dir_all(&mine).unwrap();
    LayerCache::open(e.cache.root()).unwrap();
    assert!(!stale.exists());
    assert!(mine.exists(), "a live process's extraction was removed");
}

#[test]
fn progress_reports_extraction_and_cache_hits() {
    use std::sync::{Arc, Mutex};
    use wharf_rootfs::{Progress, ProgressEvent};
    let e = env();
    let image = store_image(&e.store, "wharf-test/progress:1", &layers());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let opts = ApplyOptions {
        progress: Progress::new(move |ev| {
            let s = match ev {
                ProgressEvent::Cached { .. } => "cached",
                ProgressEvent::Started { compressed_size, .. } => {
                    assert!(*compressed_size > 0);
                    "started"
                }
                ProgressEvent::Read { diff_id, .. } => {
                    assert!(diff_id.is_some());
                    "read"
                }
                ProgressEvent::Done { report, .. } => {
                    assert!(report.entries > 0);
                    "done"
                }
                _ => "other",
            };
            log.lock().unwrap().push(s);
        }),
        ..ApplyOptions::default()
    };
    e.cache.ensure_image(&e.store, &image, &opts).unwrap();
    let count = |v: &[&str], k: &str| v.iter().filter(|s| **s == k).count();
    let first = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!((count(&first, "started"), count(&first, "done")), (3, 3), "{first:?}");
    assert!(count(&first, "read") >= 3, "{first:?}");
    e.cache.ensure_image(&e.store, &image, &opts).unwrap();
    let second = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(second, vec!["cached"; 3]);
}

#[test]
fn persisted_rootfs_outlives_its_handle_and_can_be_attached_again() {
    let e = env();
    let image = store_image(&e.store, "wharf-test/persist:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let r = Rootfs::create(&e.cache, &cached, e.containers.join("p"), &RootfsOptions::default()).unwrap();
    std::fs::write(r.path().join("etc/written"), b"by the container").unwrap();
    let dir = r.persist().unwrap();
    assert!(mounted(&dir.join("rootfs")));
    assert!(Rootfs::cleanup_stale(&e.containers).unwrap().is_empty());
    assert!(mounted(&dir.join("rootfs")));
    // Its layers survive pruning even once the image is gone.
    e.store.untag(&"wharf-test/persist:1".parse().unwrap()).unwrap();
    let in_use = Rootfs::layers_in_use(&e.containers).unwrap();
    assert_eq!(in_use.len(), 3);
    assert!(e.cache.prune_keeping(&e.store, &in_use).unwrap().is_empty());

    // Another handle (as another process would get): diff sees the container's change.
    let a = Rootfs::attach(&e.cache, &dir).unwrap();
    assert_eq!(a.mode(), MountMode::Overlay);
    assert_eq!(a.layers(), &cached[..]);
    let mut blob = Vec::new();
    a.diff(&mut blob, wharf_image::media::Compression::None).unwrap();
    let listing = wharf_rootfs::list_layer(&blob[..], None, &wharf_rootfs::Limits::default()).unwrap();
    assert!(listing.entries.iter().any(|x| x.path == "etc/written"));
    let dir = a.persist().unwrap();

    // After a reboot the mount is gone; attaching mounts it again with the same upper dir.
    rustix::mount::unmount(dir.join("rootfs"), rustix::mount::UnmountFlags::empty()).unwrap();
    assert!(!mounted(&dir.join("rootfs")));
    let b = Rootfs::attach(&e.cache, &dir).unwrap();
    assert!(mounted(&dir.join("rootfs")));
    assert_eq!(
        std::fs::read(b.path().join("etc/written")).unwrap(),
        b"by the container"
    );
    b.close().unwrap();
    assert!(!dir.exists() && !mounted(&dir.join("rootfs")));
}

#[test]
fn private_directories_and_a_usable_root() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    let image = store_image(&e.store, "wharf-test/modes:1", &layers());
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    // Other host users cannot reach the images' set-uid binaries and devices.
    assert_eq!(mode(e.cache.root()), 0o700);
    for copy in [false, true] {
        let opts = RootfsOptions {
            mode: copy.then_some(MountMode::Copy),
        };
        let r = Rootfs::create(&e.cache, &cached, e.containers.join(format!("m{copy}")), &opts).unwrap();
        assert_eq!(mode(r.dir()), 0o700);
        // But the container's own / is traversable by its non-root users.
        assert_eq!(mode(&r.path()), 0o755, "copy={copy}");
        // A user-namespaced container's root group may be let through.
        r.grant_traverse(100_000).unwrap();
        assert_eq!(mode(r.dir()), 0o710);
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(r.dir()).unwrap()),
            100_000
        );
    }
    // A layer without a root entry extracts to a 0755 directory; one with it, to its mode.
    let mut t = Tar::new();
    t.file("f", b"", 0o644);
    let d = e.containers.join("plain");
    wharf_rootfs::extract_layer(&d, &t.end()[..], &ApplyOptions::default()).unwrap();
    assert_eq!(mode(&d), 0o755);
    let mut t = Tar::new();
    t.dir("./", 0o750).file("f", b"", 0o644);
    let d = e.containers.join("rooted");
    wharf_rootfs::extract_layer(&d, &t.end()[..], &ApplyOptions::default()).unwrap();
    assert_eq!(mode(&d), 0o750);
}

#[test]
fn an_opaque_root_hides_every_lower_layer() {
    let e = env();
    let mut l2 = Tar::new();
    l2.file(".wh..wh..opq", b"", 0o644)
        .dir("only/", 0o755)
        .file("only/this", b"x", 0o644);
    let mut ls = layers();
    ls.push(l2.end());
    let image = store_image(&e.store, "wharf-test/opaque-root:1", &ls);
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let flat = e.containers.join("flat");
    wharf_rootfs::unpack_image(&e.store, &image, &flat, &ApplyOptions::default()).unwrap();
    let mut want = tree(&flat);
    want.remove("");
    assert_eq!(want.keys().collect::<Vec<_>>(), ["only", "only/this"]);
    for copy in [false, true] {
        let opts = RootfsOptions {
            mode: copy.then_some(MountMode::Copy),
        };
        let r = Rootfs::create(&e.cache, &cached, e.containers.join(format!("o{copy}")), &opts).unwrap();
        let mut got = tree(&r.path());
        got.remove("");
        assert_eq!(got, want, "copy={copy}");
    }
}

#[test]
fn layers_of_every_media_type_are_extracted() {
    let e = env();
    let ls = layers();
    let kinds = [
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar",
    ];
    let i = std::sync::atomic::AtomicUsize::new(0);
    let image = common::store_image_with(&e.store, "wharf-test/media:1", &ls, |tar| {
        let k = kinds[i.fetch_add(1, std::sync::atomic::Ordering::Relaxed)];
        let blob = match k {
            _ if k.ends_with("gzip") => common::gzip(tar),
            _ if k.ends_with("zstd") => common::zstd(tar),
            _ => tar.to_vec(),
        };
        (blob, k)
    });
    let cached = e
        .cache
        .ensure_image(&e.store, &image, &ApplyOptions::default())
        .unwrap();
    let r = Rootfs::create(&e.cache, &cached, e.containers.join("m"), &RootfsOptions::default()).unwrap();
    assert_eq!(std::fs::read(r.path().join("etc/hostname")).unwrap(), b"second");
    assert_eq!(std::fs::read(r.path().join("var/log")).unwrap(), b"log");
    let listed = wharf_rootfs::list_image_layers(&e.store, &image, &wharf_rootfs::Limits::default()).unwrap();
    assert_eq!(listed.len(), 3);
}

/// A base layer whose `usr/` has its own mode, owner, times and xattr.
fn base_with_usr(mode: u32, uid: u64, mtime: u64, xattr: &[u8]) -> Vec<u8> {
    let mut t = Tar::new();
    t.pax(&[("SCHILY.xattr.user.origin", xattr)])
        .header(&common::H {
            name: b"usr/",
            typeflag: b'5',
            mode,
            uid,
            gid: uid + 1,
            mtime,
            ..common::H::default()
        })
        .file("usr/from-base", xattr, 0o644);
    t.end()
}

#[test]
fn implied_directories_show_the_metadata_of_the_layer_below_in_each_image() {
    let e = env();
    // The top layer has usr/bin/app but no entry for usr/ or usr/bin/: both are implied.
    let mut top = Tar::new();
    top.file("usr/bin/app", b"app", 0o755);
    let top = top.end();
    let base_a = base_with_usr(0o750, 1234, 1_500_000_000, b"a");
    let base_b = base_with_usr(0o711, 42, 1_400_000_000, b"b");
    let image_a = store_image(&e.store, "wharf-test/implied-a:1", &[base_a.clone(), top.clone()]);
    let image_b = store_image(&e.store, "wharf-test/implied-b:1", &[base_b, top.clone()]);
    let opts = ApplyOptions::default();
    let cached_a = e.cache.ensure_image(&e.store, &image_a, &opts).unwrap();
    let cached_b = e.cache.ensure_image(&e.store, &image_b, &opts).unwrap();
    assert_eq!(
        cached_a[1], cached_b[1],
        "the top layer is one cache entry shared by both images"
    );
    // Extracted alone, the shared layer's usr/ is the implied 0755 root:root.
    let alone = std::fs::metadata(cached_a[1].path.join("usr")).unwrap();
    assert_eq!((alone.mode() & 0o7777, alone.uid()), (0o755, 0));

    for (cached, name, (mode, uid, mtime, origin)) in [
        (&cached_a, "a", (0o750, 1234, 1_500_000_000, "a")),
        (&cached_b, "b", (0o711, 42, 1_400_000_000, "b")),
    ] {
        for mode_wanted in [MountMode::Overlay, MountMode::Copy] {
            let dir = e.containers.join(format!("{name}-{mode_wanted:?}"));
            let opts = RootfsOptions {
                mode: Some(mode_wanted),
            };
            let r = Rootfs::create(&e.cache, cached, &dir, &opts).unwrap();
            assert_eq!(r.mode(), mode_wanted, "{:?}", r.fallback_reason());
            let usr = std::fs::metadata(r.path().join("usr")).unwrap();
            assert_eq!(
                (usr.mode() & 0o7777, usr.uid(), usr.gid(), usr.mtime()),
                (mode, uid, uid + 1, mtime),
                "image {name}, {mode_wanted:?}: usr/ must look as in its base layer"
            );
            let mut v = [0u8; 16];
            let n = rustix::fs::getxattr(r.path().join("usr"), "user.origin", &mut v).unwrap();
            assert_eq!(&v[..n], origin.as_bytes());
            // Both layers' contents are merged beneath it; usr/bin, implied with nothing
            // below, keeps the implied metadata.
            assert_eq!(std::fs::read(r.path().join("usr/bin/app")).unwrap(), b"app");
            assert_eq!(
                std::fs::read(r.path().join("usr/from-base")).unwrap(),
                origin.as_bytes()
            );
            let bin = std::fs::metadata(r.path().join("usr/bin")).unwrap();
            assert_eq!((bin.mode() & 0o7777, bin.uid()), (0o755, 0));
            r.close().unwrap();
        }
    }

    // The merged view equals flattening the image, which keeps the lower usr/ (flattening
    // also updates its mtime when it adds usr/bin, which an overlay does not).
    let flat = e.containers.join("flat");
    wharf_rootfs::unpack_image(&e.store, &image_a, &flat, &ApplyOptions::default()).unwrap();
    let r = Rootfs::create(
        &e.cache,
        &cached_a,
        e.containers.join("a-again"),
        &RootfsOptions::default(),
    )
    .unwrap();
    assert_eq!(tree(r.path().as_path()), tree(&flat));
}

/// A layer given no memory for queued data (an `ExtractLayers` budget spent by other layers)
/// still extracts, one chunk at a time, to the same tree.
#[test]
fn a_layer_extracts_the_same_with_the_smallest_queue() {
    let e = env();
    let layer = &layers()[0];
    let full = e.containers.join("full");
    wharf_rootfs::extract_layer(&full, &layer[..], &ApplyOptions::default()).unwrap();
    let mut opts = ApplyOptions::default();
    opts.limits.max_queued_bytes = 0;
    let small = e.containers.join("small");
    wharf_rootfs::extract_layer(&small, &layer[..], &opts).unwrap();
    assert_eq!(tree(&small), tree(&full));
}
