//! `moat inspect IMAGE`: check that a file is a moat PVH image (the PVH
//! entry note, the embedded manifests) and print the report `moat build`
//! printed for it.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `moat inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The image (`moat build` prints its path).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    match inspect(&args.image) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("moat inspect: {}: {e}", args.image.display());
            ExitCode::FAILURE
        }
    }
}

/// The report for the image at `path`.
pub fn inspect(path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let img = crate::image::read(&bytes)?;
    crate::report::report(&path.display().to_string(), &img)
}
