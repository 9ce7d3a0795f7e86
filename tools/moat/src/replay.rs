//! `moat replay [SYSTEM_TOML] --config HOSTED_TOML --clients IN.pcap`: run
//! captured traffic through a system offline, to see what a policy does
//! with it before deploying it.
//!
//! Every component runs in this process on the same layout as `moat run
//! --hosted`; frames are fed in timestamp order from the client capture
//! (and `--uplink`), each followed by the graph running until quiet. Writes
//! what moat sent each way to `--out-uplink` / `--out-clients` (pcap), one
//! JSON object per input frame to `--json` (outcome, packets caused,
//! counters moved), and prints a summary: outcomes, and drops by reason.

use std::path::PathBuf;
use std::process::ExitCode;

use moat_hosted::config::HostedConfig;
use moat_hosted::replay::{ReplayFiles, replay};

/// Arguments of `moat replay`.
#[derive(clap::Args)]
pub struct Args {
    /// The system description.
    #[arg(value_name = "SYSTEM_TOML", default_value = "system.toml")]
    system: PathBuf,
    /// The hosted config (clients' addresses and MACs, the uplink's).
    #[arg(long, value_name = "HOSTED_TOML")]
    config: PathBuf,
    /// Capture of client traffic (Ethernet).
    #[arg(long, value_name = "PCAP")]
    clients: Option<PathBuf>,
    /// Capture of traffic arriving from the uplink (Ethernet).
    #[arg(long, value_name = "PCAP")]
    uplink: Option<PathBuf>,
    /// Write the frames moat sent to the uplink here.
    #[arg(long, value_name = "PCAP")]
    out_uplink: Option<PathBuf>,
    /// Write the frames moat sent to clients here.
    #[arg(long, value_name = "PCAP")]
    out_clients: Option<PathBuf>,
    /// Write one JSON object per input frame here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    if args.clients.is_none() && args.uplink.is_none() {
        eprintln!("moat replay: give --clients and/or --uplink captures");
        return ExitCode::FAILURE;
    }
    let system = match moat_system::load(&args.system) {
        Ok(s) => s,
        Err(report) => {
            eprint!("{report}");
            return ExitCode::FAILURE;
        }
    };
    let hosted = match HostedConfig::load(&args.config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("moat replay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = ReplayFiles {
        clients_in: args.clients,
        uplink_in: args.uplink,
        uplink_out: args.out_uplink,
        clients_out: args.out_clients,
        json: args.json,
    };
    match replay(&system, &hosted, &files) {
        Ok((_, summary)) => {
            println!("{} frames", summary.frames);
            for (outcome, n) in &summary.outcomes {
                println!("  {outcome} {n}");
            }
            println!("drops by reason");
            if summary.drops.is_empty() {
                println!("  none");
            }
            for (reason, n) in &summary.drops {
                println!("  {reason} {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moat replay: {e}");
            ExitCode::FAILURE
        }
    }
}
