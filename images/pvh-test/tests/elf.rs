//! The image file itself: a PVH entry note Xen and QEMU accept, segments
//! that are never writable and executable at once, and the self-test system
//! embedded where `moat inspect` looks for it.

use object::elf::{FileHeader64, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{LittleEndian as LE, Object, ObjectSection, ObjectSymbol};

use moat_pvh_test::build_image;
use moat_runtime::layout::Manifest;

include!("../../pvh/selftest_plan.rs");

#[test]
fn pvh_note_names_the_32_bit_entry() {
    let data = std::fs::read(build_image()).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let entry = file.symbols().find(|s| s.name() == Ok("pvh_start32")).expect("pvh_start32 symbol").address();
    let hdr = FileHeader64::<LE>::parse(&*data).unwrap();
    let mut found = 0;
    for ph in hdr.program_headers(LE, &*data).unwrap() {
        if ph.p_type(LE) != PT_NOTE {
            continue;
        }
        let mut notes = ph.notes(LE, &*data).unwrap().expect("note segment");
        while let Some(note) = notes.next().unwrap() {
            if note.name() == b"Xen" && note.n_type(LE) == 18 {
                let desc = note.desc();
                assert_eq!(desc.len(), 8, "8-byte XEN_ELFNOTE_PHYS32_ENTRY payload");
                assert_eq!(u64::from_le_bytes(desc.try_into().unwrap()), entry);
                found += 1;
            }
        }
    }
    assert_eq!(found, 1, "exactly one PHYS32_ENTRY note in a PT_NOTE segment");
    assert!(entry < 1 << 32, "a 32-bit entry");
}

#[test]
fn loadable_segments_are_never_writable_and_executable() {
    let data = std::fs::read(build_image()).unwrap();
    let hdr = FileHeader64::<LE>::parse(&*data).unwrap();
    let loads: Vec<_> = hdr.program_headers(LE, &*data).unwrap().iter().filter(|p| p.p_type(LE) == PT_LOAD).collect();
    let flags: Vec<u32> = loads.iter().map(|p| p.p_flags(LE)).collect();
    assert_eq!(flags, [PF_R | PF_X, PF_R, PF_R | PF_W], "text, rodata, data");
    for p in &loads {
        assert_eq!(p.p_paddr(LE), p.p_vaddr(LE), "loaded at its physical address");
        assert_eq!(p.p_paddr(LE) % 4096, 0, "page-aligned, so each can be mapped with its own permissions");
    }
    assert_eq!(loads[0].p_paddr(LE), 0x10_0000, "linked at 1 MiB");
}

#[test]
fn selftest_manifest_is_embedded_and_valid() {
    let data = std::fs::read(build_image()).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sec = file.section_by_name(".moat.selftest").expect(".moat.selftest section");
    let bytes = sec.data().unwrap();
    assert_eq!(bytes, selftest_plan().encode().unwrap().as_slice(), "the build embeds selftest_plan() unchanged");
    let m = Manifest::parse(bytes).unwrap();
    assert_eq!(m.header().system, "selftest");
    let system = file.section_by_name(".moat.manifest").expect(".moat.manifest section");
    let checked = moat_system::load(&moat_pvh_test::root().join("system.toml")).unwrap();
    let (laid_out, _) = moat::build::lay_out(&checked).unwrap();
    assert_eq!(system.data().unwrap(), laid_out.as_slice(), "the image embeds system.toml as laid out");
    let m = Manifest::parse(&laid_out).unwrap();
    assert_eq!(m.header().system, "sys-firewall");
}
