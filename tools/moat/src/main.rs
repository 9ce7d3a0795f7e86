//! `moat`: the command-line tool that checks, builds and inspects a moat
//! system (and, as other subcommands land, runs, replays and audits it).
//!
//! Each subcommand lives in its own module with an `Args` struct (clap
//! derive) and a `run(Args) -> ExitCode`; adding one is a module, a
//! [`Command`] variant and a match arm.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod replay;
mod run;

use moat::{build, inspect, log};

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
    /// Build the PVH image for a system.toml and report what is in it.
    Build(build::Args),
    /// Check a built image and print its report again.
    Inspect(inspect::Args),
    /// Decode the component logs in an image's console capture.
    Log(log::Args),
    /// Run a system: `--hosted` on this Linux machine, TAPs at the edges.
    Run(run::Args),
    /// Replay captured traffic through a system offline: verdicts and
    /// translated packets to pcap and JSON.
    Replay(replay::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(args) => check::run(args),
        Command::Build(args) => build::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Log(args) => log::run(args),
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::run(args),
    }
}
