//! `features` of the runtime example tells the truth, checked against Debian's runc: every mount option runc
//! lists is run through both; one the runtime lists behaves as under runc, one it leaves out is refused at create
//! with a message naming the mount's options and the option — never dropped silently (`rro` on a bind mount would
//! leave it writable). The other lists match runc's where the runtime implements the same. Needs root,
//! busybox-static and runc (scripts/test-deps.sh).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use serde_json::{Value, json};

mod support;

use support::runtime_env::Env;

fn features(env: &Env) -> (Value, Value) {
    let theirs = env.runc(&["features"]);
    assert!(theirs.status.success(), "runc features: {}", theirs.stderr);
    let ours = env.rt(&["features"]);
    assert!(ours.status.success(), "runtime features: {}", ours.stderr);
    (
        serde_json::from_str(&theirs.stdout).unwrap(),
        serde_json::from_str(&ours.stdout).unwrap(),
    )
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Options the runtime takes where runc 1.1 fails, and why.
const DIFFERENT: &[(&str, &str)] = &[(
    "defaults",
    "mount(8)'s meaning, no flags; runc 1.1 passes it to the filesystem as data, which tmpfs refuses",
)];

#[test]
fn every_mount_option_runc_lists_works_as_under_runc_or_is_refused_by_name() {
    let env = Env::new();
    let (theirs, ours) = features(&env);
    let listed = set(&ours["mountOptions"]);
    let host = env.dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    for (n, opt) in set(&theirs["mountOptions"]).iter().enumerate() {
        let mount = if opt == "bind" || opt == "rbind" {
            json!({"destination": "/tmp", "type": "bind", "source": host, "options": [opt]})
        } else {
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": [opt]})
        };
        let b = env.bundle(&format!("b{n}"), &["true"], |_| {});
        env.bundle_json(&b, |v| v["mounts"].as_array_mut().unwrap().push(mount));
        let (runc, wharf) = env.run_both(&b, &format!("opt{n}"));
        if let Some((_, why)) = DIFFERENT.iter().find(|(o, _)| o == opt) {
            assert_eq!(wharf.code(), 0, "option {opt:?} ({why}): {}", wharf.stderr);
            assert_ne!(
                runc.code(),
                0,
                "option {opt:?}: runc accepts it now, drop it from DIFFERENT"
            );
        } else if listed.contains(opt) {
            assert_eq!(
                wharf.code(),
                runc.code(),
                "option {opt:?}: runc {} {}, runtime {}",
                runc.code(),
                runc.stderr,
                wharf.stderr
            );
        } else {
            assert_ne!(wharf.code(), 0, "option {opt:?} is not in features but was accepted");
            assert!(
                wharf.stderr.contains(".options") && wharf.stderr.contains(&format!("{opt:?}")),
                "option {opt:?}: the refusal does not name the field and option: {}",
                wharf.stderr
            );
        }
    }
}

#[test]
fn features_lists_match_runcs_where_the_runtime_implements_the_same() {
    let env = Env::new();
    let (theirs, ours) = features(&env);
    assert_eq!(set(&ours["hooks"]), set(&theirs["hooks"]), "hooks");
    for key in ["namespaces", "capabilities"] {
        assert_eq!(set(&ours["linux"][key]), set(&theirs["linux"][key]), "linux.{key}");
    }
    let seccomp = |v: &Value, k: &str| set(&v["linux"]["seccomp"][k]);
    assert_eq!(seccomp(&ours, "operators"), seccomp(&theirs, "operators"));
    // Seccomp user notification needs a listener runc's callers provide; wharf-sandbox refuses it.
    let mut actions = seccomp(&theirs, "actions");
    actions.remove("SCMP_ACT_NOTIFY");
    assert_eq!(seccomp(&ours, "actions"), actions);
    // cgroups through systemd are refused (--systemd-cgroup), SELinux labels are not applied.
    assert_eq!(ours["linux"]["cgroup"]["systemd"], false);
    assert_eq!(ours["linux"]["selinux"]["enabled"], false);
    let out = env.rt(&["--systemd-cgroup", "list"]);
    assert!(
        !out.status.success() && out.stderr.contains("--systemd-cgroup"),
        "{}",
        out.stderr
    );
}

#[test]
fn tmpcopyup_is_refused_by_name_where_there_is_something_to_copy() {
    // podman asks for it on every tmpfs of --tmpfs and --read-only; copying is not implemented.
    let env = Env::new();
    let b = env.bundle("b", &["true"], |_| {});
    std::fs::write(b.join("rootfs/tmp/kept"), "x").unwrap();
    let mount = json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]});
    env.bundle_json(&b, |v| v["mounts"].as_array_mut().unwrap().push(mount));
    let out = env.rt(&["run", "--bundle", b.to_str().unwrap(), "copyup"]);
    assert_ne!(out.code(), 0, "tmpcopyup over a non-empty directory was accepted");
    assert!(
        out.stderr.contains(".options") && out.stderr.contains("\"tmpcopyup\"") && out.stderr.contains("/tmp"),
        "{}",
        out.stderr
    );
}
