//! `moat build [SYSTEM_TOML]`: check a system, lay it out, build the PVH
//! image for it, and report what is in the image.
//!
//! 1. `system.toml` is checked exactly as `moat check` does.
//! 2. The checked graph is laid out ([`lay_out`]) into a manifest
//!    (`moat_runtime::layout`): every registered component with its
//!    configuration blob (postcard in an envelope with a magic, a version
//!    and the layout hash of the component's ports and types), every pool
//!    and ring with an end in the image, state regions from the component's
//!    `state_bytes`, device ports. Planned components are not in the image:
//!    their ring ends become runtime ends the image leaves unserved (their
//!    peers see rings nobody fills or drains), and the report says so.
//! 3. `cargo build --release -p moat-pvh` with `MOAT_MANIFEST` (the
//!    manifest) and `MOAT_KINDS` (the registry's Rust path of each kind, so
//!    the image links exactly the kinds it names), in a generated workspace
//!    ([`workspace`]) whose root holds the source tree through symbolic
//!    links: cargo hashes path dependencies inside the workspace root by
//!    their relative path but those outside it by their absolute path, and
//!    those hashes name every symbol and order the code. With
//!    `--remap-path-prefix` for that workspace, cargo's home and the target
//!    directory, the image is the same wherever the tree is checked out.
//! 4. The ELF is copied to `out/<system name>.pvh` (or `--out`) and the
//!    report is made from that file, as `moat inspect` makes it.
//!
//! Reproducible: manifests are laid out in file order, kinds sorted, the
//! image has no timestamps and no absolute paths; building the same inputs
//! twice gives the same SHA-256 (`tools/moat/tests/build.rs` checks it with
//! two separate target directories).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use moat_runtime::layout::layout_hash;
use moat_runtime::plan::{CapList, Plan, config_blob};
use moat_system::model::{End, PortKind, System, Wire};
use sha2::{Digest, Sha256};

/// Arguments of `moat build`.
#[derive(clap::Args)]
pub struct Args {
    /// The system description to build.
    #[arg(value_name = "SYSTEM_TOML", default_value = "system.toml")]
    system: PathBuf,
    /// Where to write the image (default: `out/<system name>.pvh` in the
    /// source tree).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Cargo target directory for the image build (default: `target/pvh`).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Print only the report (no progress, cargo's output only on failure).
    #[arg(long, short)]
    quiet: bool,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `system.toml`.
    pub system: PathBuf,
    /// Image path (default `out/<name>.pvh` in the source tree).
    pub out: Option<PathBuf>,
    /// Cargo target directory (default `target/pvh` in the source tree).
    pub target_dir: Option<PathBuf>,
    /// Show progress and cargo's output as it builds.
    pub progress: bool,
}

/// A built image.
#[derive(Debug)]
pub struct Built {
    /// Where it is.
    pub image: PathBuf,
    /// The report.
    pub report: String,
    /// Wall time of the whole build, seconds.
    pub seconds: f64,
}

/// Why a build failed.
#[derive(Debug)]
pub enum Error {
    /// `system.toml` did not check.
    Check(moat_system::Report),
    /// Anything else, in words.
    Other(String),
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Other(s)
    }
}

pub fn run(args: Args) -> ExitCode {
    let opts = Options { system: args.system, out: args.out, target_dir: args.target_dir, progress: !args.quiet };
    match build(&opts) {
        Ok(b) => {
            print!("{}", b.report);
            if opts.progress {
                eprintln!("moat build: {} ({:.1} s)", b.image.display(), b.seconds);
            }
            ExitCode::SUCCESS
        }
        Err(Error::Check(report)) => {
            eprint!("{report}");
            let n = report.errors.len();
            eprintln!("moat build: {n} error{} in {}", if n == 1 { "" } else { "s" }, report.file);
            ExitCode::FAILURE
        }
        Err(Error::Other(e)) => {
            eprintln!("moat build: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The moat source tree this tool was built from (it holds `images/pvh`).
pub fn source_root() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().map_err(|e| format!("moat source tree {}: {e}", root.display()))?;
    if !root.join("images/pvh/Cargo.toml").is_file() {
        return Err(format!("{} has no images/pvh: moat build needs the moat source tree", root.display()));
    }
    Ok(root)
}

/// Checks, lays out and builds; returns the image and its report.
pub fn build(opts: &Options) -> Result<Built, Error> {
    let t0 = Instant::now();
    let system = moat_system::load(&opts.system).map_err(Error::Check)?;
    let root = source_root()?;
    let (manifest, kinds) = lay_out(&system)?;
    let planned: Vec<&str> = system.components.iter().filter(|c| c.planned()).map(|c| c.name.as_str()).collect();
    if opts.progress {
        eprintln!(
            "moat build: {} checked: {} component(s) in the image, {} planned (not in this image)",
            opts.system.display(),
            system.components.len() - planned.len(),
            planned.len()
        );
    }
    let target = match &opts.target_dir {
        Some(d) => absolute(d)?,
        None => root.join("target/pvh"),
    };
    if opts.progress {
        eprintln!("moat build: building images/pvh for x86_64-unknown-none in {} ...", target.display());
    }
    // Builds of other systems into the same target directory would replace
    // the manifest or the ELF between our write and our read: one build at
    // a time.
    let dir = target.join("moat");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock_path = dir.join("build.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let manifest_path = dir.join(format!("{}.manifest", system.name));
    write_atomically(&manifest_path, &manifest)?;
    let elf = cargo_build(&root, &target, &manifest_path, &kinds, opts.progress)?;
    let bytes = std::fs::read(&elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    drop(lock);
    let out = match &opts.out {
        Some(p) => absolute(p)?,
        None => root.join("out").join(format!("{}.pvh", system.name)),
    };
    write_atomically(&out, &bytes)?;
    let img = crate::image::read(&bytes).map_err(|e| format!("the built image is not valid: {e}"))?;
    if img.manifest != manifest.as_slice() {
        return Err(Error::Other("the built image does not embed the manifest laid out for it".into()));
    }
    let report = crate::report::report(&out.display().to_string(), &img)?;
    Ok(Built { image: out, report, seconds: t0.elapsed().as_secs_f64() })
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Writes through a temporary file and a rename, so a reader (another build,
/// a test booting the image) never sees half a file; leaves a file that
/// already holds `bytes` alone (an unchanged manifest must not make cargo
/// rebuild the image).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp =
        dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("x"), std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// SHA-256 over the policy files in order, each as its length (u64, little
/// endian) then its bytes; all zero without policy files. (The rules
/// component's policy format is not settled; this hashes what the files
/// say, whatever it means.)
pub fn policy_hash(files: &[PathBuf]) -> Result<[u8; 32], String> {
    if files.is_empty() {
        return Ok([0; 32]);
    }
    let mut h = Sha256::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| format!("policy {}: {e}", f.display()))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().into())
}

/// Lays a checked system out: the manifest bytes and `MOAT_KINDS`.
pub fn lay_out(s: &System) -> Result<(Vec<u8>, String), String> {
    let mut p = Plan::new(&s.name);
    for c in &s.components {
        let Some(e) = c.entry else { continue };
        let payload = c.config_blob.clone().unwrap_or_default();
        let hash = layout_hash(e.name, e.ports, (e.config_type)(), e.config_size);
        p.component(&c.name, e.name, c.priority, c.budget, config_blob(hash, &payload));
        p.declare(&c.name, e.ports);
        p.rust_path(e.name, (e.type_name)());
        let caps = CapList {
            grant_copy: c.caps.grant_copy,
            grant_access: c.caps.grant_access,
            event_channels: c.caps.event_channels,
            xenstore_read: c.caps.xenstore_read.clone(),
            xenstore_write: c.caps.xenstore_write.clone(),
        };
        let stack = u32::try_from(c.stack).map_err(|_| format!("component `{}`: stack too large", c.name))?;
        p.set_component(&c.name, stack, caps).map_err(|e| e.0)?;
    }
    let at = |c: usize, port: usize| format!("{}.{}", s.components[c].name, s.components[c].ports[port].name);
    for pool in &s.pools {
        let maps: Vec<(String, bool)> = pool
            .maps
            .iter()
            .filter(|&&(c, _, _)| !s.components[c].planned())
            .map(|&(c, port, w)| (at(c, port), w))
            .collect();
        if maps.is_empty() {
            continue; // only planned components map it
        }
        let maps: Vec<(&str, bool)> = maps.iter().map(|(a, w)| (a.as_str(), *w)).collect();
        p.pool(&pool.name, pool.id, pool.buffer_size, pool.count, &maps).map_err(|e| e.0)?;
    }
    for r in &s.rings {
        let end = |e: &End| match e {
            End::Port { component, port } if !s.components[*component].planned() => (at(*component, *port), true),
            End::Port { component, port } => (format!("runtime.{}", at(*component, *port)), false),
            End::Runtime(label) => (format!("runtime.{label}"), false),
        };
        let ((from, a), (to, b)) = (end(&r.from), end(&r.to));
        if a || b {
            p.ring(&from, &to, &r.message, r.slot_size as usize, r.capacity).map_err(|e| e.0)?;
        }
    }
    for c in s.components.iter().filter(|c| !c.planned()) {
        for port in &c.ports {
            let at = format!("{}.{}", c.name, port.name);
            match (port.kind, port.wire) {
                (PortKind::State, Wire::State(n)) => {
                    p.state(&at, usize::try_from(n).map_err(|_| format!("{at}: state too large"))?).map_err(|e| e.0)?;
                }
                (PortKind::Device, _) => {
                    p.device(&at, &port.message).map_err(|e| e.0)?;
                }
                _ => {}
            }
        }
        if let Some(e) = c.entry {
            p.expect_ports(&c.name, e.ports).map_err(|e| format!("laying out `{}`: {}", c.name, e.0))?;
        }
    }
    p.policy_hash(policy_hash(&s.policy)?);
    let planned: Vec<&str> = s.components.iter().filter(|c| c.planned()).map(|c| c.name.as_str()).collect();
    p.planned(&planned);
    let manifest = p.encode().map_err(|e| format!("laying out the system: {}", e.0))?;
    let kinds: Vec<String> = p.rust_paths().into_iter().map(|(k, path)| format!("{k}={path}")).collect();
    Ok((manifest, kinds.join(";")))
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.into()).to_string()
}

/// Makes (or refreshes) the workspace the image is built in:
/// `<target>/moat/ws`, holding a symbolic link to every top-level entry of
/// the source tree, the root `Cargo.toml` with `images/pvh` as its only
/// member and the image's profiles, the image's lock file and its
/// `.cargo/config.toml`. Returns its path. (The tree's crates lie inside
/// the workspace root, so cargo makes them members: harmless, as only
/// `moat-pvh` is built.)
pub fn workspace(root: &Path, target: &Path) -> Result<PathBuf, String> {
    let ws = target.join("moat").join("ws");
    let io = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    std::fs::create_dir_all(ws.join(".cargo")).map_err(|e| io(&ws, e))?;
    for entry in std::fs::read_dir(root).map_err(|e| io(root, e))? {
        let entry = entry.map_err(|e| io(root, e))?;
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if n.starts_with('.') || ["Cargo.toml", "Cargo.lock", "target", "out"].contains(&n.as_ref()) {
            continue;
        }
        let link = ws.join(&name);
        if std::fs::read_link(&link).ok().as_deref() != Some(entry.path().as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(entry.path(), &link).map_err(|e| io(&link, e))?;
        }
    }
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| io(&p, e));
    let mut manifest: toml::Table = read(root.join("Cargo.toml"))?.parse().map_err(|e| format!("Cargo.toml: {e}"))?;
    let image: toml::Table =
        read(root.join("images/pvh/Cargo.toml"))?.parse().map_err(|e| format!("images/pvh/Cargo.toml: {e}"))?;
    let Some(toml::Value::Table(workspace)) = manifest.get_mut("workspace") else {
        return Err("Cargo.toml has no [workspace]".into());
    };
    workspace.insert("members".into(), toml::Value::Array(vec!["images/pvh".into()]));
    workspace.remove("exclude");
    workspace.remove("default-members");
    manifest.remove("profile");
    if let Some(profile) = image.get("profile") {
        manifest.insert("profile".into(), profile.clone());
    }
    let text = format!("# Generated by `moat build` from Cargo.toml and images/pvh/Cargo.toml.\n{manifest}");
    write_if_changed(&ws.join("Cargo.toml"), text.as_bytes())?;
    // The image's lock file pins what the image links; cargo then adds the
    // other members' development dependencies to the copy. Copy again only
    // when the image's lock file changed.
    let lock = read(root.join("images/pvh/Cargo.lock"))?;
    if std::fs::read_to_string(ws.join(".image.lock")).ok().as_deref() != Some(&lock) {
        write_if_changed(&ws.join("Cargo.lock"), lock.as_bytes())?;
        write_if_changed(&ws.join(".image.lock"), lock.as_bytes())?;
    }
    write_if_changed(&ws.join(".cargo/config.toml"), read(root.join("images/pvh/.cargo/config.toml"))?.as_bytes())?;
    Ok(ws)
}

/// Writes only when the contents change, so cargo's fingerprints stay.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the image build; returns the ELF's path.
fn cargo_build(root: &Path, target: &Path, manifest: &Path, kinds: &str, progress: bool) -> Result<PathBuf, String> {
    let ws = workspace(root, target)?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    // Later prefixes win where several match (the workspace lies in the
    // target directory, which may lie in the source tree).
    let remaps = [
        (root.to_path_buf(), "/moat"),
        (cargo_home, "/cargo"),
        (target.to_path_buf(), "/target"),
        (ws.clone(), "/moat"),
    ];
    let flags: Vec<String> =
        remaps.iter().map(|(from, to)| toml_str(&format!("--remap-path-prefix={}={to}", from.display()))).collect();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&ws)
        .args(["build", "--release", "-p", "moat-pvh", "--config"])
        .arg(format!("target.x86_64-unknown-none.rustflags=[{}]", flags.join(",")))
        .arg("--target-dir")
        .arg(target);
    // The image's own .cargo/config.toml and the repository's toolchain
    // decide, not an outer cargo's environment.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = k == "CARGO_HOME" || k == "RUSTUP_HOME";
        if !keep && (k.starts_with("CARGO") || k.starts_with("RUST") || k.starts_with("MOAT_")) {
            cmd.env_remove(k);
        }
    }
    cmd.env("MOAT_MANIFEST", manifest).env("MOAT_KINDS", kinds);
    let ok = if progress {
        cmd.stdin(Stdio::null()).status().map_err(|e| format!("running cargo: {e}"))?.success()
    } else {
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo build failed:\n{}", String::from_utf8_lossy(&out.stderr)));
        }
        true
    };
    if !ok {
        return Err("cargo build of the image failed (output above)".into());
    }
    let elf = target.join("x86_64-unknown-none/release/moat-pvh");
    if !elf.is_file() {
        return Err(format!("the image build did not produce {}", elf.display()));
    }
    Ok(elf)
}
