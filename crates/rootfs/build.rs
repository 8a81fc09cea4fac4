//! With the `isal` feature, compiles the small C face over the system's ISA-L inflate.

fn main() {
    println!("cargo:rerun-if-changed=csrc/isal_inflate.c");
    #[cfg(feature = "isal")]
    {
        if let Err(e) = cc::Build::new()
            .file("csrc/isal_inflate.c")
            .warnings(true)
            .try_compile("wharf_isal")
        {
            panic!(
                "wharf-rootfs's `isal` feature needs ISA-L's headers and library \
                 (Debian: apt-get install libisal-dev), or build without it \
                 (`default-features = false` on the wharf façade): {e}"
            );
        }
        println!("cargo:rustc-link-lib=isal");
    }
}
