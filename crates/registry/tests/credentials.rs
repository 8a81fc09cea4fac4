//! Credential helpers, run as real programs (this file is its own test binary: it sets PATH).
#![allow(clippy::unwrap_used)]

use wharf_registry::credentials::lookup;
use wharf_registry::{Credentials, Error};

#[test]
fn runs_credential_helpers() {
    let dir = tempfile::tempdir().unwrap();
    // A real helper program on PATH, speaking the helper protocol.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-wharftest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\ncase \"$server\" in\n  helped.example) echo '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n  *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // SAFETY: the only test in this binary, and no other thread of it reads the environment
    // while this runs.
    unsafe { std::env::set_var("PATH", path) };

    let f = dir.path().join("config.json");
    std::fs::write(
        &f,
        r#"{"credHelpers":{"helped.example":"wharftest"},"auths":{"other.example":{"auth":"YTpi"}}}"#,
    )
    .unwrap();
    let files = vec![f.clone()];
    assert_eq!(
        lookup("helped.example", &files).unwrap(),
        Credentials::basic("hu", "hs")
    );
    assert_eq!(lookup("other.example", &files).unwrap(), Credentials::basic("a", "b"));

    std::fs::write(
        &f,
        r#"{"credsStore":"wharftest","auths":{"other.example":{"auth":"YTpi"}}}"#,
    )
    .unwrap();
    assert_eq!(
        lookup("helped.example", &files).unwrap(),
        Credentials::basic("hu", "hs")
    );
    // With a credsStore, Docker ignores `auths` values: the store said "not found".
    assert_eq!(lookup("other.example", &files).unwrap(), Credentials::Anonymous);

    std::fs::write(&f, r#"{"credsStore":"wharf-no-such-helper"}"#).unwrap();
    assert!(matches!(lookup("x.example", &files), Err(Error::Credentials { .. })));

    // $REGISTRY_AUTH_FILE comes first, then $DOCKER_CONFIG/config.json.
    let podman = dir.path().join("auth.json");
    std::fs::write(&podman, r#"{"auths":{"both.example":{"auth":"cDp4"}}}"#).unwrap();
    let docker_dir = dir.path().join("docker");
    std::fs::create_dir(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        r#"{"auths":{"both.example":{"auth":"ZDp5"},"docker-only.example":{"auth":"ZDp5"}}}"#,
    )
    .unwrap();
    // SAFETY: as above.
    unsafe {
        std::env::set_var("REGISTRY_AUTH_FILE", &podman);
        std::env::set_var("DOCKER_CONFIG", &docker_dir);
    }
    let files = wharf_registry::credentials::default_files();
    assert_eq!(files, [podman.clone(), docker_dir.join("config.json")]);
    assert_eq!(lookup("both.example", &files).unwrap(), Credentials::basic("p", "x"));
    assert_eq!(
        lookup("docker-only.example", &files).unwrap(),
        Credentials::basic("d", "y")
    );
}
