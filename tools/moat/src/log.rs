//! `moat log IMAGE [CAPTURE]`: decode the component log frames in a console
//! capture (or standard input) with the defmt table of the image that
//! printed them.
//!
//! The image prints each frame as `moat: log COMPONENT HEX` (possibly after
//! a prefix such as Xen's `(d5) `); every such line is replaced by
//! `[TIME] LEVEL COMPONENT: message`, and every other line is passed through,
//! so the output reads as the console did, with the logs in words.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use defmt_decoder::Table;

/// Arguments of `moat log`.
#[derive(clap::Args)]
pub struct Args {
    /// The image that printed the capture (its ELF carries the defmt table).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The console capture (default: standard input).
    #[arg(value_name = "CAPTURE")]
    capture: Option<PathBuf>,
    /// Print only the decoded log lines.
    #[arg(long)]
    only_logs: bool,
}

pub fn run(args: Args) -> ExitCode {
    let elf = match std::fs::read(&args.image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("moat log: {}: {e}", args.image.display());
            return ExitCode::FAILURE;
        }
    };
    let input: Box<dyn Read> = match &args.capture {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("moat log: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(std::io::stdin()),
    };
    let decoder = match Decoder::new(&elf) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("moat log: {}: {e}", args.image.display());
            return ExitCode::FAILURE;
        }
    };
    for line in BufReader::new(input).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        match decoder.line(&line) {
            Some(text) => println!("{text}"),
            None if !args.only_logs => println!("{line}"),
            None => {}
        }
    }
    ExitCode::SUCCESS
}

/// Decodes log lines with one image's table.
pub struct Decoder {
    table: Table,
}

/// The marker the image prints before each frame.
pub const MARKER: &str = "moat: log ";

impl Decoder {
    /// The decoder for the image whose ELF is `elf`.
    pub fn new(elf: &[u8]) -> Result<Decoder, String> {
        match Table::parse(elf) {
            Ok(Some(table)) => Ok(Decoder { table }),
            Ok(None) => Err("the image carries no defmt table (no .defmt section)".into()),
            Err(e) => Err(format!("reading the defmt table: {e}")),
        }
    }

    /// The decoded text of a console line, or `None` if it is not a log
    /// line.
    pub fn line(&self, line: &str) -> Option<String> {
        let at = line.find(MARKER)?;
        let rest = line[at + MARKER.len()..].trim_end();
        let (component, hex) = rest.split_once(' ')?;
        let Some(bytes) = unhex(hex) else {
            return Some(format!("{component}: (log frame is not hex: {hex})"));
        };
        let mut d = self.table.new_stream_decoder();
        d.received(&bytes);
        Some(match d.decode() {
            Ok(frame) => {
                let ts = frame.display_timestamp().map(|t| format!("[{t}] ")).unwrap_or_default();
                let level = frame.level().map(|l| l.as_str().to_uppercase()).unwrap_or_else(|| "PRINT".into());
                format!("{ts}{level:5} {component}: {}", frame.display_message())
            }
            Err(e) => format!("{component}: (undecodable log frame {hex}: {e:?})"),
        })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
