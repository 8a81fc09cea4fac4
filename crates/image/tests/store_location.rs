//! Where the default store lives. A test binary of its own: it changes environment variables.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use wharf_image::Store;

#[test]
fn default_root_follows_wharf_root_then_uid() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: this test binary has no other test thread reading the environment.
    unsafe { std::env::set_var("WHARF_ROOT", dir.path().join("explicit")) };
    assert_eq!(Store::default_root().unwrap(), dir.path().join("explicit"));
    let s = Store::open_default().unwrap();
    assert_eq!(s.root(), dir.path().join("explicit"));
    assert!(dir.path().join("explicit/oci-layout").is_file());

    unsafe { std::env::remove_var("WHARF_ROOT") };
    let expected = if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/lib/wharf")
    } else {
        let xdg = dir.path().join("xdg");
        unsafe { std::env::set_var("XDG_DATA_HOME", &xdg) };
        xdg.join("wharf")
    };
    assert_eq!(Store::default_root().unwrap(), expected);
}
