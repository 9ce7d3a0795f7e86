//! `moat run --hosted [SYSTEM_TOML] --config HOSTED_TOML`: run a system on
//! this Linux machine, each component in its own process, TAP devices in
//! place of the Xen drivers (see `docs/hosted.md`).
//!
//! Status (per-component counters, drops by reason, connections) is printed
//! on `SIGUSR1`, every `--interval` seconds and at exit; `--status-json`
//! also writes it as JSON. The exit status is 1 if a component stopped (the
//! graph then fails closed), 0 after `SIGINT`/`SIGTERM`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use moat_hosted::config::HostedConfig;
use moat_hosted::run::{RunOptions, serve};

/// Arguments of `moat run`.
#[derive(clap::Args)]
pub struct Args {
    /// Run on this Linux machine (the only way so far; the PVH image boots
    /// under Xen).
    #[arg(long)]
    hosted: bool,
    /// The system description to run.
    #[arg(value_name = "SYSTEM_TOML", default_value = "system.toml")]
    system: PathBuf,
    /// The hosted config: client and uplink TAPs, addresses, substitutions.
    #[arg(long, value_name = "HOSTED_TOML")]
    config: PathBuf,
    /// Print status every this many seconds.
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
    /// Also write each status as JSON to this file.
    #[arg(long, value_name = "FILE")]
    status_json: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    if !args.hosted {
        eprintln!("moat run: only --hosted is supported so far (the PVH image is booted by Xen, not by moat run)");
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
            eprintln!("moat run: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interval = match args.interval {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => {
            eprintln!("moat run: --interval must be a positive number of seconds");
            return ExitCode::FAILURE;
        }
        None => None,
    };
    match serve(&system, &hosted, &RunOptions { interval, status_json: args.status_json }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moat run: {e}");
            ExitCode::FAILURE
        }
    }
}
