//! docker's exec and run options in the example CLI (issue 18, item 5): `exec -w/-e/-u`, and `run -w` and bind
//! mounts whose target the image lacks (made beneath the root, never through a symlink out of it). Real
//! containers of a busybox image, driven through the CLI as a user runs it. Needs root.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use support::cli::Env;

/// A store with a busybox image `bb` (with a user `web` and a group `logs` it belongs to) and a detached
/// `sleep 1000` called `box`.
fn env_with_box() -> Env {
    let env = Env::new();
    let tree = env.busybox_tree("bb", "exec\n");
    std::fs::write(
        tree.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nweb:x:33:44:Web:/var/www:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(tree.join("etc/group"), "root:x:0:\nwww:x:44:\nlogs:x:4:web\n").unwrap();
    std::fs::create_dir_all(tree.join("var/www")).unwrap();
    env.ok(&["import", tree.to_str().unwrap(), "bb", "--cmd", "/bin/sh"]);
    env.ok(&["run", "-d", "--name", "box", "-e", "FROM_RUN=1", "bb", "sleep", "1000"]);
    env
}

#[test]
fn exec_takes_a_directory_environment_and_user_as_docker_exec_does() {
    let env = env_with_box();
    let sh = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    // The container's by default.
    assert_eq!(
        sh(&["box", "sh", "-c", "id -u; pwd; echo $FROM_RUN $HOME"]),
        "0\n/\n1 /root\n"
    );
    // -w: an absolute directory in the container; -e over the container's environment.
    assert_eq!(
        sh(&[
            "-w",
            "/var/www",
            "-e",
            "FROM_RUN=2",
            "-e",
            "NEW=x",
            "box",
            "sh",
            "-c",
            "pwd; echo $FROM_RUN $NEW"
        ]),
        "/var/www\n2 x\n"
    );
    // -u: a name from the container's /etc/passwd brings its gid, groups and home; uid:gid as given; a name
    // with a group.
    assert_eq!(
        sh(&["-u", "web", "box", "sh", "-c", "id -u; id -g; id -G; echo $HOME"]),
        "33\n44\n44 4\n/var/www\n"
    );
    assert_eq!(
        sh(&["-u", "1000:1000", "box", "sh", "-c", "id -u; id -g; echo $HOME"]),
        "1000\n1000\n/\n"
    );
    assert_eq!(sh(&["-u", "web:logs", "box", "sh", "-c", "id -u; id -g"]), "33\n4\n");
    assert_eq!(
        sh(&["-u", "web", "-e", "HOME=/elsewhere", "box", "sh", "-c", "echo $HOME"]),
        "/elsewhere\n"
    );
    // The user is the running container's: one added after it started is found.
    sh(&["box", "sh", "-c", "echo 'late:x:77:77::/:/bin/sh' >> /etc/passwd"]);
    assert_eq!(sh(&["-u", "late", "box", "id", "-u"]), "77\n");
    // Refusals, in one line each.
    env.refused(
        &["exec", "-w", "relative", "box", "true"],
        "it must be an absolute path",
    );
    env.refused(
        &["exec", "-w", "/nowhere", "box", "true"],
        "cannot enter working directory \"nowhere\"",
    );
    env.refused(&["exec", "-u", "nobody", "box", "true"], "user \"nobody\" not found");
    env.refused(&["exec", "-u", "web:nogroup", "box", "true"], "nogroup");
}

#[test]
fn run_makes_a_missing_workdir_and_mount_target_inside_the_root_never_through_a_symlink_out() {
    let env = Env::new();
    let tree = env.busybox_tree("bb", "run\n");
    // A host directory that nothing may be made in, and symlinks in the image that point at it (absolute: outside
    // the root, dangling inside it) or climb above the root (relative: they stop at the root's top).
    let outside = env.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("data/abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", tree.join("data/up")).unwrap();
    env.ok(&["import", tree.to_str().unwrap(), "bb", "--cmd", "/bin/sh"]);
    let host = env.dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    let volume = |target: &str| format!("{}:{target}", host.display());

    // -w: made (0755, root's), as docker and runc make it; a relative symlink on the way resolves inside.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-w",
            "/made/here",
            "bb",
            "sh",
            "-c",
            "pwd; stat -c '%a %u' ."
        ]),
        "/made/here\n755 0\n"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "-w", "/data/up/climbed", "bb", "pwd", "-P"]),
        "/climbed\n"
    );
    // With a read-only root too (made before the root is made read-only, as runc does).
    assert_eq!(
        env.ok(&["run", "--rm", "--read-only", "-w", "/ro/dir", "bb", "pwd"]),
        "/ro/dir\n"
    );
    // -v: a missing target is made in the root, beneath a relative symlink too.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-v",
            &volume("/mnt/deep/new"),
            "bb",
            "cat",
            "/mnt/deep/new/hello"
        ]),
        "from the host\n"
    );
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-v",
            &volume("/data/up/bound"),
            "bb",
            "cat",
            "/bound/hello"
        ]),
        "from the host\n"
    );

    // Through the absolute symlink (dangling inside the root): refused with the path named, as runc refuses it;
    // nothing is made on the host.
    for args in [
        &["run", "--rm", "-w", "/data/abs/x", "bb", "true"][..],
        &["run", "--rm", "-v", &volume("/data/abs/m"), "bb", "true"],
    ] {
        let out = env.wharf(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(
            err.starts_with("Error: ") && err.contains("data/abs"),
            "{args:?}: {err}"
        );
    }
    // Where the link's target exists inside the root, the directory is made there, inside.
    let tree = env.busybox_tree("bb2", "run\n");
    std::os::unix::fs::symlink(&outside, tree.join("data/abs")).unwrap();
    std::fs::create_dir_all(tree.join(outside.strip_prefix("/").unwrap())).unwrap();
    env.ok(&["import", tree.to_str().unwrap(), "bb2", "--cmd", "/bin/sh"]);
    let inside = format!("{}/x\n", outside.display());
    assert_eq!(
        env.ok(&["run", "--rm", "-w", "/data/abs/x", "bb2", "pwd", "-P"]),
        inside
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "made outside the root");
    assert!(env.listed().is_empty(), "{:?}", env.listed());
}
