//! The rules component's policy: compiled from `[system] policy`.
//!
//! Policy files are the one place a firewall policy is written; `moat check`
//! compiles them with `moat_policy::compile_files` (which installs the result
//! in a real rules engine, so anything the component would refuse is refused
//! here) and puts the result in every rules component's configuration.

use std::ops::Range;

use crate::model::System;

use super::Errors;

/// The rules component's crate.
const RULES: &str = "components/rules";

/// Fills every rules component's config from the system's policy files.
/// `policy_span` points at `[system] policy` for errors.
pub(crate) fn derive(system: &mut System, policy_span: Range<usize>, errs: &mut Errors) {
    let rules: Vec<usize> = (0..system.components.len())
        .filter(|&i| system.components[i].entry.map(|e| e.crate_path) == Some(RULES))
        .collect();
    if rules.is_empty() {
        return;
    }
    if system.policy.is_empty() {
        errs.at(
            policy_span,
            "the rules component has no policy",
            "list policy files in `[system] policy`, e.g. [\"policies/qubes-default.toml\"]",
        );
        return;
    }
    if !system.policy.iter().all(|p| p.is_file()) {
        return; // already reported, file by file
    }
    let config = match moat_policy::compile_files(&system.policy) {
        Ok(c) => c,
        Err(e) => {
            errs.at(
                policy_span,
                format!("the policy does not compile:\n{}", indent(&e.to_string())),
                "fix the policy files; `docs/policies.md` describes the format",
            );
            return;
        }
    };
    match postcard::to_allocvec(&config) {
        Ok(blob) => {
            for i in rules {
                system.components[i].config_blob = Some(blob.clone());
            }
        }
        Err(_) => errs.at(policy_span, "the compiled policy did not encode", "this is a moat bug; report it"),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
