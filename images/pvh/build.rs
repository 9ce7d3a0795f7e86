//! Links the image with `link.ld` (and defmt's `defmt.x`), embeds the two
//! manifests it runs, and generates the table of component kinds it links.
//!
//! * `.moat.selftest`: the self-test system, laid out here from
//!   `selftest_plan.rs`;
//! * `.moat.manifest`: the system to run on Xen, read from the file named by
//!   `MOAT_MANIFEST` (what `moat build` lays out from `system.toml`); empty
//!   when unset, and the image then runs its self-test everywhere;
//! * `kinds.rs`: `KINDS`, one `kind::<Type>()` per component kind either
//!   manifest names, sorted. The Rust paths come from the self-test plan and
//!   from `MOAT_KINDS` (`kind=path` pairs separated by `;`, which `moat
//!   build` takes from the component registry), so a new component needs
//!   no edit in the image's source: only its crate as a dependency in
//!   `Cargo.toml`, which this script checks;
//! * `.moat.kinds`: the same table as text (`kind=path;…`) for reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

include!("selftest_plan.rs");

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=selftest_plan.rs");
    println!("cargo:rerun-if-changed=../../policies/qubes-default.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=MOAT_MANIFEST");
    println!("cargo:rerun-if-env-changed=MOAT_KINDS");

    let selftest = selftest_plan();
    let mut paths: BTreeMap<String, String> = selftest.rust_paths().into_iter().collect();
    let selftest = selftest.encode().expect("the self-test system lays out");
    std::fs::write(out.join("selftest.manifest"), &selftest).unwrap();

    for pair in std::env::var("MOAT_KINDS").unwrap_or_default().split(';').filter(|s| !s.is_empty()) {
        let (kind, path) = pair.split_once('=').unwrap_or_else(|| panic!("MOAT_KINDS: `{pair}` is not kind=path"));
        paths.insert(kind.into(), path.into());
    }

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
    std::fs::write(out.join("system.manifest"), &system).unwrap();

    let mut used = std::collections::BTreeSet::new();
    for bytes in [&selftest, &system] {
        if bytes.is_empty() {
            continue;
        }
        let m = moat_runtime::layout::Manifest::parse(bytes).expect("checked above");
        used.extend(m.components().map(|c| c.kind.to_string()));
    }
    let cargo_toml = std::fs::read_to_string(format!("{dir}/Cargo.toml")).unwrap();
    let mut kinds = String::from("/// Every component kind the embedded systems use.\npub static KINDS: &[Kind] = &[\n");
    let mut listed = Vec::new();
    for kind in &used {
        let path = paths.get(kind).unwrap_or_else(|| {
            panic!("component kind `{kind}` has no Rust path: build with `moat build`, which passes MOAT_KINDS")
        });
        let krate = path.split("::").next().unwrap_or_default();
        let package = krate.replace('_', "-");
        if !cargo_toml.contains(&format!("\n{package} ")) && !cargo_toml.contains(&format!("\n{package}=")) {
            panic!(
                "component kind `{kind}` is `{path}`, but `{package}` is not a dependency of images/pvh: \
                 add `{package} = {{ path = \"../../components/...\" }}` to images/pvh/Cargo.toml [dependencies]"
            );
        }
        kinds.push_str(&format!("    kind::<{path}>(),\n"));
        listed.push(format!("{kind}={path}"));
    }
    kinds.push_str("];\n");
    std::fs::write(out.join("kinds.rs"), kinds).unwrap();
    // The same list as text, for `moat inspect` to attribute code to kinds.
    std::fs::write(out.join("kinds.txt"), listed.join(";")).unwrap();
}
