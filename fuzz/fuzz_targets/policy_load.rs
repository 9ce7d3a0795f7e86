//! The policy-file loader on anything: up to three files separated by NUL
//! bytes. Diagnostics only, never a panic; what loads also compiles into a
//! configuration the rules component accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_policy::{Source, load_sources};

fuzz_target!(|data: &[u8]| {
    let sources: Vec<Source> = data
        .split(|&b| b == 0)
        .take(3)
        .enumerate()
        .map(|(i, part)| Source { name: format!("f{i}.toml"), text: String::from_utf8_lossy(part).into_owned() })
        .collect();
    match load_sources(&sources) {
        Ok(policy) => {
            // Too large for the blob is the one refusal left at this point.
            if let Err(e) = policy.to_config(1) {
                assert!(e.to_string().contains("larger than"), "{e}");
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
