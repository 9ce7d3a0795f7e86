//! `moat`: the command-line tool that checks (and, as other subcommands
//! land, builds, inspects, runs, replays and audits) a moat system.
//!
//! Each subcommand lives in its own module with an `Args` struct (clap
//! derive) and a `run(Args) -> ExitCode`; adding one is a module, a
//! [`Command`] variant and a match arm.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod replay;
mod run;

/// moat: a firewall VM for Qubes OS built from small isolated components.
#[derive(Parser)]
#[command(name = "moat", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system.toml and print its component graph.
    Check(check::Args),
    /// Run a system: `--hosted` on this Linux machine, TAPs at the edges.
    Run(run::Args),
    /// Replay captured traffic through a system offline: verdicts and
    /// translated packets to pcap and JSON.
    Replay(replay::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => check::run(args),
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::run(args),
    }
}
