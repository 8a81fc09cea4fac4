//! With the `isal` feature, compiles the small C face over the system's ISA-L inflate — when
//! ISA-L is there. A machine without it still builds: gzip layers then inflate with zlib-rs,
//! and the build says so in one warning. `WHARF_ISAL=require` turns a missing ISA-L into a
//! build error (for benchmarks that must measure it); `WHARF_ISAL=off` skips the probe.

fn main() {
    println!("cargo:rerun-if-changed=csrc/isal_inflate.c");
    println!("cargo:rerun-if-env-changed=WHARF_ISAL");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rustc-check-cfg=cfg(wharf_isal)");
    #[cfg(feature = "isal")]
    isal::probe();
}

#[cfg(feature = "isal")]
mod isal {
    use std::process::Command;

    /// Include and library directories pkg-config knows for libisal (empty when it does not).
    fn pkg_config() -> (Vec<String>, Vec<String>) {
        let out = Command::new("pkg-config")
            .args(["--cflags", "--libs", "libisal"])
            .output();
        let Some(out) = out.ok().filter(|o| o.status.success()) else {
            return (Vec::new(), Vec::new());
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut includes = Vec::new();
        let mut libdirs = Vec::new();
        for word in text.split_whitespace() {
            if let Some(dir) = word.strip_prefix("-I") {
                includes.push(dir.to_owned());
            } else if let Some(dir) = word.strip_prefix("-L") {
                libdirs.push(dir.to_owned());
            }
        }
        (includes, libdirs)
    }

    pub(super) fn probe() {
        let mode = std::env::var("WHARF_ISAL").unwrap_or_default();
        if mode == "off" {
            println!("cargo:warning=WHARF_ISAL=off: gzip layers inflate with zlib-rs");
            return;
        }
        let (includes, libdirs) = pkg_config();
        let mut build = cc::Build::new();
        build.file("csrc/isal_inflate.c").warnings(true).cargo_warnings(false);
        for dir in &includes {
            build.include(dir);
        }
        match build.try_compile("wharf_isal") {
            Ok(()) => {
                for dir in &libdirs {
                    println!("cargo:rustc-link-search=native={dir}");
                }
                println!("cargo:rustc-link-lib=isal");
                println!("cargo:rustc-cfg=wharf_isal");
            }
            Err(e) if mode == "require" => panic!(
                "WHARF_ISAL=require, but ISA-L's headers were not found or did not compile \
                 (Debian: apt-get install libisal-dev): {e}"
            ),
            Err(_) => println!(
                "cargo:warning=ISA-L not found (Debian: apt-get install libisal-dev); \
                 gzip layers inflate with zlib-rs, about a third slower"
            ),
        }
    }
}
