//! With the `isal` feature, compiles the small C face over the system's ISA-L inflate.

fn main() {
    println!("cargo:rerun-if-changed=csrc/isal_inflate.c");
    #[cfg(feature = "isal")]
    {
        cc::Build::new()
            .file("csrc/isal_inflate.c")
            .warnings(true)
            .compile("wharf_isal");
        println!("cargo:rustc-link-lib=isal");
    }
}
