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
}
