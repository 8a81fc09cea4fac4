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

/// The refusal of `wharf ARGS`: exit 125 and one `Error: …` line containing `said`.
fn refused(env: &Env, args: &[&str], said: &str) {
    let out = env.wharf(args);
    assert_eq!(out.status.code(), Some(125), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Error: ") && err.contains(said), "{args:?}: {err}");
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
    refused(
        &env,
        &["exec", "-w", "relative", "box", "true"],
        "it must be an absolute path",
    );
    refused(
        &env,
        &["exec", "-w", "/nowhere", "box", "true"],
        "cannot enter working directory \"nowhere\"",
    );
    refused(
        &env,
        &["exec", "-u", "nobody", "box", "true"],
        "user \"nobody\" not found",
    );
    refused(&env, &["exec", "-u", "web:nogroup", "box", "true"], "nogroup");
}
