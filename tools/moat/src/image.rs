//! Reading a built image back: its PVH note, segments, embedded manifests
//! and the code each component kind contributed.

use object::elf::{FileHeader64, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol, SymbolKind};
use sha2::{Digest, Sha256};

/// `XEN_ELFNOTE_PHYS32_ENTRY`.
pub const PHYS32_ENTRY: u32 = 18;

/// A loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Load address.
    pub addr: u64,
    /// Bytes in memory (including zero-filled `.bss`).
    pub mem: u64,
    /// Bytes in the file.
    pub file: u64,
    /// `PF_*` flags.
    pub flags: u32,
}

impl Segment {
    /// `R-X`, `R--`, `RW-`.
    pub fn perms(&self) -> String {
        let f = |bit, c| if self.flags & bit != 0 { c } else { '-' };
        [f(PF_R, 'R'), f(PF_W, 'W'), f(PF_X, 'X')].iter().collect()
    }
}

/// What `moat inspect` learns from an image file.
pub struct Image<'a> {
    /// The file.
    pub bytes: &'a [u8],
    /// The PVH entry the note names.
    pub entry: u64,
    /// Loadable segments in file order.
    pub segments: Vec<Segment>,
    /// `.moat.manifest` (empty when the image embeds no system).
    pub manifest: &'a [u8],
    /// `.moat.selftest`.
    pub selftest: &'a [u8],
    /// `(kind, rust path)` of every component kind linked in.
    pub kinds: Vec<(String, String)>,
    /// Bytes of code and of statics per kind, then (last) the rest
    /// (runtime, monitor, libraries).
    pub code: Vec<Attributed>,
}

/// Symbol bytes attributed to one kind (or to the runtime).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributed {
    /// Component kind, or `runtime`.
    pub kind: String,
    /// Function bytes.
    pub code: u64,
    /// Static data bytes.
    pub statics: u64,
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The module a type's code lives in, as it appears in demangled symbol
/// names: `moat_csum::Csum` → `moat_csum::`. A symbol belongs to the kind
/// whose module it names most specifically (generic code such as
/// `start_one::<moat_csum::Csum>` names the component's type; v0 mangling,
/// which the image uses, keeps those generic arguments).
pub fn module_of(path: &str) -> String {
    match path.rsplit_once("::") {
        Some((module, _)) => format!("{module}::"),
        None => format!("{path}::"),
    }
}

/// The kind (index into `modules`) a symbol's code belongs to.
pub fn owner(symbol: &str, modules: &[String]) -> Option<usize> {
    let name = format!("{:#}", rustc_demangle::demangle(symbol));
    (0..modules.len()).filter(|&i| name.contains(modules[i].as_str())).max_by_key(|&i| modules[i].len())
}

/// Reads an image, checking that it is an x86-64 ELF with exactly one
/// PVH entry note in a `PT_NOTE` segment.
pub fn read(bytes: &[u8]) -> Result<Image<'_>, String> {
    let hdr = FileHeader64::<LE>::parse(bytes).map_err(|e| format!("not a 64-bit ELF: {e}"))?;
    if hdr.e_machine(LE) != object::elf::EM_X86_64 {
        return Err("not an x86-64 ELF".into());
    }
    let phdrs = hdr.program_headers(LE, bytes).map_err(|e| format!("bad program headers: {e}"))?;
    let mut entries = Vec::new();
    let mut segments = Vec::new();
    for ph in phdrs {
        match ph.p_type(LE) {
            PT_NOTE => {
                let Ok(Some(mut notes)) = ph.notes(LE, bytes) else { return Err("unreadable PT_NOTE segment".into()) };
                while let Ok(Some(note)) = notes.next() {
                    if note.name() == b"Xen" && note.n_type(LE) == PHYS32_ENTRY {
                        let d = note.desc();
                        let entry = match d.len() {
                            4 => u64::from(u32::from_le_bytes(d.try_into().unwrap_or_default())),
                            8 => u64::from_le_bytes(d.try_into().unwrap_or_default()),
                            n => return Err(format!("PVH entry note has a {n}-byte payload")),
                        };
                        entries.push(entry);
                    }
                }
            }
            PT_LOAD => segments.push(Segment {
                addr: ph.p_paddr(LE),
                mem: ph.p_memsz(LE),
                file: ph.p_filesz(LE),
                flags: ph.p_flags(LE),
            }),
            _ => {}
        }
    }
    let entry = match entries[..] {
        [e] if e < 1 << 32 => e,
        [e] => return Err(format!("PVH entry {e:#x} is not a 32-bit address")),
        [] => return Err("no XEN_ELFNOTE_PHYS32_ENTRY note in a PT_NOTE segment: not a PVH image".into()),
        _ => return Err("more than one PVH entry note".into()),
    };
    let file = object::File::parse(bytes).map_err(|e| format!("not an ELF object: {e}"))?;
    let section = |name| file.section_by_name(name).and_then(|s| s.data().ok()).unwrap_or(&[]);
    let (manifest, selftest) = (section(".moat.manifest"), section(".moat.selftest"));
    if selftest.is_empty() {
        return Err("no .moat.selftest section: not a moat image".into());
    }
    let kinds: Vec<(String, String)> = std::str::from_utf8(section(".moat.kinds"))
        .unwrap_or("")
        .split(';')
        .filter_map(|kv| kv.split_once('=').map(|(k, p)| (k.to_string(), p.to_string())))
        .collect();
    let modules: Vec<String> = kinds.iter().map(|(_, p)| module_of(p)).collect();
    let mut code: Vec<Attributed> =
        kinds.iter().map(|(k, _)| Attributed { kind: k.clone(), ..Default::default() }).collect();
    code.push(Attributed { kind: "runtime".into(), ..Default::default() });
    for sym in file.symbols() {
        let (Ok(name), size) = (sym.name(), sym.size()) else { continue };
        let slot = owner(name, &modules).unwrap_or(kinds.len());
        match sym.kind() {
            SymbolKind::Text => code[slot].code += size,
            SymbolKind::Data => code[slot].statics += size,
            _ => {}
        }
    }
    Ok(Image { bytes, entry, segments, manifest, selftest, kinds, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_belong_to_the_most_specific_module_they_name() {
        let modules: Vec<String> =
            ["moat_csum::Csum", "moat_runtime::selftest::Traffic", "moat_runtime::selftest::clients::C"]
                .iter()
                .map(|p| module_of(p))
                .collect();
        assert_eq!(modules[0], "moat_csum::");
        assert_eq!(owner("_ZN9moat_csum4Csum8notified17h0123456789abcdefE", &modules), Some(0), "legacy");
        // moat_runtime::instance::Instance<moat_csum::Csum>::notified, with
        // the crate root of moat_runtime as a v0 back-reference.
        let v0 = "_RNvMNtCs1234_12moat_runtime8instanceINtB2_8InstanceNtCs5678_9moat_csum4CsumE8notified";
        assert_eq!(owner(v0, &modules), Some(0));
        assert_eq!(owner("_ZN12moat_runtime8selftest6packet3udp17h0123456789abcdefE", &modules), Some(1));
        assert_eq!(owner("_ZN12moat_runtime8selftest7clients1f17h0123456789abcdefE", &modules), Some(2));
        assert_eq!(owner("_ZN12moat_runtime5sched3run17h0123456789abcdefE", &modules), None);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(read(b"not an elf").err().unwrap().contains("not a 64-bit ELF"));
        assert!(read(&[]).is_err());
    }
}
