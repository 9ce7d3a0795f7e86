//! Links the image with `link.ld` and embeds the two manifests it runs:
//!
//! * `.moat.selftest`: the self-test system, laid out here from
//!   `selftest_plan.rs`;
//! * `.moat.manifest`: the system to run on Xen, read from the file named by
//!   `MOAT_MANIFEST` (what `moat build` lays out from `system.toml`); empty
//!   when unset, and the image then runs its self-test everywhere.

use std::path::PathBuf;

include!("selftest_plan.rs");

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=selftest_plan.rs");
    println!("cargo:rerun-if-env-changed=MOAT_MANIFEST");

    std::fs::write(out.join("selftest.manifest"), selftest_plan()).unwrap();

    let system = match std::env::var_os("MOAT_MANIFEST") {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", PathBuf::from(&path).display());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("MOAT_MANIFEST {path:?}: {e}"));
            moat_runtime::layout::Manifest::parse(&bytes)
                .unwrap_or_else(|e| panic!("MOAT_MANIFEST {path:?} is not a valid manifest: {e:?}"));
            bytes
        }
        None => Vec::new(),
    };
    std::fs::write(out.join("system.manifest"), system).unwrap();
}
