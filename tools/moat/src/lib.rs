//! The `moat` tool's library: what the subcommands do, for the CLI and for
//! tests that build and inspect images (`images/pvh-test`).

pub mod build;
pub mod image;
pub mod inspect;
pub mod log;
pub mod report;
