//! `moat-xs-compare`: runs the comparison inside the testbed's dom0 (or the
//! test store against itself anywhere) and prints `TESTBED-CHECK` lines.
//!
//! ```text
//! moat-xs-compare ops-dom0 --socket S [--spare-kernel K] [--out DIR]
//! moat-xs-compare ops-domain --socket S --domid N --name NAME [--out DIR]
//! moat-xs-compare component --socket S --domid N --name NAME [--out DIR]
//! moat-xs-compare self [--out DIR]       # the test store against itself
//! moat-xs-compare again ops-dom0|ops-domain|component --real FILE [--domid N --name NAME]
//! ```
//!
//! `again` compares a real daemon's transcript saved by an earlier run
//! (`xs-<daemon>-<mode>-real.txt` from the testbed's results) with a fresh
//! test-store run, on the host: how the test store and the known
//! differences are worked on without booting Xen each time.
//!
//! `--daemon ox|cx` names the daemon under test (oxenstored, the default,
//! or cxenstored) in the check names (`xs-<daemon>-<mode>-<section>`) and
//! picks its known differences.
//!
//! `--socket`: the daemon's Unix socket (the toolstack's connection, and the
//! client's for `ops-dom0`); `--domid`/`--name`: the relay domain whose
//! XenStore ring this program drives (mapped through `/dev/xen/gntdev`, see
//! [`RingLink`]). Each section of each
//! comparison prints `TESTBED-CHECK ok xs-<what>-<section>` or `fail` with
//! the first unexplained difference; the transcripts go to `--out`
//! (`xs-<what>-real.txt`, `xs-<what>-test.txt`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use moat_xs_compare::link::{RingLink, StreamLink, TestLink};
use moat_xs_compare::{Client, Daemon, compare, ops, slug};

struct Args {
    mode: String,
    socket: Option<PathBuf>,
    domid: Option<u16>,
    name: String,
    spare_kernel: Option<PathBuf>,
    out: Option<PathBuf>,
    daemon: String,
    real: Option<PathBuf>,
    again: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or("usage: moat-xs-compare ops-dom0|ops-domain|component|self [options]")?;
    let mut a = Args {
        mode,
        socket: None,
        domid: None,
        name: "xs-relay".into(),
        spare_kernel: None,
        out: None,
        daemon: "ox".into(),
        real: None,
        again: None,
    };
    if a.mode == "again" {
        a.again = Some(it.next().ok_or("again needs ops-dom0, ops-domain or component")?);
    }
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--socket" => a.socket = Some(v.into()),
            "--domid" => a.domid = Some(v.parse().map_err(|_| format!("bad domid {v}"))?),
            "--name" => a.name = v,
            "--spare-kernel" => a.spare_kernel = Some(v.into()),
            "--out" => a.out = Some(v.into()),
            "--daemon" => a.daemon = v,
            "--real" => a.real = Some(v.into()),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

/// Creates and destroys a paused domain with `xl` (fires the special
/// watches on the real daemon).
struct XlDomains {
    kernel: PathBuf,
}

impl ops::Domains for XlDomains {
    fn create(&mut self) {
        let cfg = "/tmp/xsc-spare.cfg";
        let text = format!(
            "name = \"xsc-spare\"\ntype = \"pvh\"\nkernel = \"{}\"\nmemory = 16\nvcpus = 1\n",
            self.kernel.display()
        );
        let _ = std::fs::write(cfg, text);
        let st = Command::new("xl").args(["create", "-p", "-q", cfg]).status();
        eprintln!("xl create -p: {st:?}");
    }
    fn destroy(&mut self) {
        let st = Command::new("xl").args(["destroy", "xsc-spare"]).status();
        eprintln!("xl destroy: {st:?}");
        // @releaseDomain follows the domain's death, which xl does not wait for.
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn need<'a, T>(v: &'a Option<T>, what: &str) -> Result<&'a T, String> {
    v.as_ref().ok_or(format!("{what} is required"))
}

fn socket(a: &Args) -> Result<StreamLink, String> {
    let p = need(&a.socket, "--socket")?;
    StreamLink::unix(p).map_err(|e| format!("cannot connect to {}: {e}", p.display()))
}

fn ring(a: &Args) -> Result<RingLink, String> {
    let domid = *need(&a.domid, "--domid")?;
    RingLink::domain(domid).map_err(|e| format!("cannot map the XenStore ring of domain {domid}: {e}"))
}

fn run() -> Result<bool, String> {
    let a = args()?;
    let like = Daemon::parse(&a.daemon).ok_or(format!("--daemon must be ox or cx, not {}", a.daemon))?;
    let (what, real, test) = match a.mode.as_str() {
        "ops-dom0" => {
            let spare = a.spare_kernel.is_some();
            let mut domains = XlDomains { kernel: a.spare_kernel.clone().unwrap_or_default() };
            let real = moat_xs_compare::ops_on(socket(&a)?, socket(&a)?, ops::View { domid: 0, spare }, &mut domains);
            (a.mode.as_str(), real, moat_xs_compare::ops_on_test_store_like(like, &Client::Dom0, spare))
        }
        "ops-domain" => {
            let domid = *need(&a.domid, "--domid")?;
            let view = ops::View { domid, spare: false };
            let mut none = XlDomains { kernel: PathBuf::new() };
            let real = moat_xs_compare::ops_on(ring(&a)?, socket(&a)?, view, &mut none);
            let client = Client::Domain { domid, name: a.name.clone() };
            (a.mode.as_str(), real, moat_xs_compare::ops_on_test_store_like(like, &client, false))
        }
        "component" => {
            let domid = *need(&a.domid, "--domid")?;
            let real = moat_xs_compare::component_on(ring(&a)?, socket(&a)?, domid, 40, Duration::from_millis(800));
            (a.mode.as_str(), real, moat_xs_compare::component_on_test_store_like(like, domid, &a.name, 40))
        }
        "again" => {
            let p = need(&a.real, "--real")?;
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let real: Vec<String> = text.lines().map(str::to_string).collect();
            let mode = a.again.as_deref().unwrap_or_default();
            let test = match mode {
                "ops-dom0" => moat_xs_compare::ops_on_test_store_like(like, &Client::Dom0, true),
                "ops-domain" => {
                    let domid = *need(&a.domid, "--domid")?;
                    moat_xs_compare::ops_on_test_store_like(
                        like,
                        &Client::Domain { domid, name: a.name.clone() },
                        false,
                    )
                }
                "component" => {
                    moat_xs_compare::component_on_test_store_like(like, *need(&a.domid, "--domid")?, &a.name, 40)
                }
                m => return Err(format!("unknown mode {m} to compare again")),
            };
            (mode, real, test)
        }
        "self" => {
            // The test store against itself, through the same machinery.
            let store = moat_xs_compare::test_store();
            let mut domains = moat_xs_compare::TestDomains { store: store.clone(), domid: 4000 };
            let real = moat_xs_compare::ops_on(
                TestLink::dom0(&store),
                TestLink::dom0(&store),
                ops::View { domid: 0, spare: true },
                &mut domains,
            );
            ("self", real, moat_xs_compare::ops_on_test_store(&Client::Dom0, true))
        }
        m => return Err(format!("unknown mode {m}")),
    };
    let what = format!("{}-{what}", a.daemon);
    // The real daemon's transcript always; the test store's (which the host
    // can make again) only when something differed. Everything goes back
    // over a 115200-baud console.
    if let Some(out) = &a.out {
        write(out, &format!("xs-{what}-real.txt"), &real);
    }
    let mut all_ok = true;
    for v in compare(&what, &real, &test) {
        let name = format!("xs-{what}-{}", slug(&v.section));
        for k in &v.known {
            println!("TESTBED-NOTE {name}: known difference {k}");
        }
        match v.diff {
            None => println!("TESTBED-CHECK ok {name}"),
            Some(d) => {
                all_ok = false;
                println!("TESTBED-CHECK fail {name}: {d}");
            }
        }
    }
    if let (Some(out), false) = (&a.out, all_ok) {
        write(out, &format!("xs-{what}-test.txt"), &test);
    }
    Ok(all_ok)
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(name), lines.join("\n") + "\n");
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("moat-xs-compare: {e}");
            println!("TESTBED-CHECK fail xs-compare: {e}");
            ExitCode::from(2)
        }
    }
}
