//! `system.toml`: the schema, the component registry, and validation into
//! the checked graph that `moat check`, `moat build` and the hosted runtime
//! share.
//!
//! ```no_run
//! let system = moat_system::load(std::path::Path::new("system.toml"))?;
//! for c in &system.components {
//!     println!("{} ({} ports)", c.name, c.ports.len());
//! }
//! # Ok::<(), moat_system::Report>(())
//! ```
//!
//! The file is user input: every problem comes back as a [`Report`] whose
//! errors name line and column and say what to do; nothing here panics on
//! any input. The schema is documented in `docs/system-toml.md`.

mod check;
mod diag;
mod messages;
pub mod model;
mod raw;
pub mod registry;
mod size;
mod suggest;

use std::path::Path;

pub use diag::{Diagnostic, Report, Span, line_col};
pub use messages::{MAX_RING, MIN_CONTROL_RING, plain_size};
pub use model::System;
pub use size::Size;

/// Reads and checks the `system.toml` at `path`. Errors are printed with
/// `path` as given.
pub fn load(path: &Path) -> Result<System, Report> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => check_source(&source, &file, path.parent().unwrap_or(Path::new("."))),
        Err(e) => Err(Report {
            file,
            source: String::new(),
            errors: vec![Diagnostic { span: None, message: format!("cannot read: {e}"), help: None }],
        }),
    }
}

/// Checks `source`, the text of the file called `file`; relative policy
/// paths are resolved against `base_dir`.
pub fn check_source(source: &str, file: &str, base_dir: &Path) -> Result<System, Report> {
    check::check(source, base_dir).map_err(|errors| Report { file: file.into(), source: source.into(), errors })
}
