//! Does moat's test XenStore behave like the real one?
//!
//! The xenstore component's tests run against `moat-test-xenstored`. This
//! crate runs the same operations against the real `oxenstored` (inside the
//! testbed's dom0, `tests/xen`) and against the test store, and compares
//! what came back, line by line:
//!
//! * [`ops`]: a fixed script of reads, writes, directories, permissions,
//!   watches, transactions, limits and malformed requests, from a client
//!   connection and a toolstack connection. The client is dom0 over the
//!   daemon's socket, or an unprivileged domain: dom0 maps a small relay
//!   guest's XenStore ring page and drives the guest's half of it
//!   ([`link::RingLink`]); the guest (`relay/`) only passes on the event
//!   the daemon needs, so it is that domain's own connection.
//! * [`component`]: the real xenstore component, bound through the host
//!   harness, with its ring page connected through [`component::Shim`] to
//!   the relay domain's ring; the toolstack adds vifs, the uplink and
//!   shutdown requests as libxl would, and everything the component tells
//!   the other components is compared.
//!
//! Differences that are understood and documented in the test store's
//! crate docs are listed in [`known`]; any other difference fails.

pub mod component;
pub mod conn;
pub mod known;
pub mod link;
pub mod ops;

use std::cell::RefCell;
use std::rc::Rc;

use moat_ring::Region;
use moat_test_xenstored::XenStored;

use crate::conn::{Conn, Log, Transcript};
use crate::link::{Link, Shared, TestLink};

/// A fresh test store set up as the testbed's dom0 is before anything else
/// runs: what `xen-init-dom0` writes (`/local/domain/0` with `domid`,
/// `name` and `control/feature-*`, and `/local/pool/0`).
pub fn test_store() -> Shared {
    test_store_like(Daemon::Ox)
}

/// The real daemon a comparison is against: the test store takes its
/// event order from it (`XenStored::own_events_first`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    /// oxenstored: a request's own events after its reply.
    Ox,
    /// cxenstored (what Qubes runs): before it.
    Cx,
}

impl Daemon {
    /// `ox` or `cx`, as the check names and `--daemon` spell them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ox" => Some(Daemon::Ox),
            "cx" => Some(Daemon::Cx),
            _ => None,
        }
    }
}

/// [`test_store`] with `daemon`'s event order.
pub fn test_store_like(daemon: Daemon) -> Shared {
    let mut s = XenStored::new();
    s.own_events_first = daemon == Daemon::Cx;
    for (k, v) in [
        ("/local/domain/0/domid", "0"),
        ("/local/domain/0/name", "Domain-0"),
        ("/local/domain/0/control/feature-poweroff", "1"),
        ("/local/domain/0/control/feature-reboot", "1"),
        ("/local/domain/0/control/feature-suspend", "1"),
        ("/local/pool/0/name", "Pool-0"),
    ] {
        s.write(k, v.as_bytes()).expect("fresh store");
    }
    Rc::new(RefCell::new(s))
}

/// A new, empty transcript.
pub fn new_log() -> Log {
    Rc::new(RefCell::new(Transcript::default()))
}

/// Who the client is in a test-store run.
#[derive(Clone, Debug)]
pub enum Client {
    /// dom0, privileged (the daemon's socket).
    Dom0,
    /// An unprivileged domain, introduced by the test store.
    Domain {
        /// Its id.
        domid: u16,
        /// Its name.
        name: String,
    },
}

/// Test-store stand-ins for creating and destroying a domain.
pub struct TestDomains {
    /// The store.
    pub store: Shared,
    /// The id the spare domain gets.
    pub domid: u16,
}

impl ops::Domains for TestDomains {
    fn create(&mut self) {
        self.store.borrow_mut().connect(self.domid, "xsc-spare", Region::alloc_zeroed(4096));
    }
    fn destroy(&mut self) {
        let mut s = self.store.borrow_mut();
        s.release_domain(self.domid);
        let _ = s.rm(&format!("/local/domain/{}", self.domid));
    }
}

/// The script against the test store.
pub fn ops_on_test_store(client: &Client, spare: bool) -> Vec<String> {
    ops_on_test_store_like(Daemon::Ox, client, spare)
}

/// [`ops_on_test_store`] with `daemon`'s event order.
pub fn ops_on_test_store_like(daemon: Daemon, client: &Client, spare: bool) -> Vec<String> {
    let store = test_store_like(daemon);
    let log = new_log();
    let (link, domid) = match client {
        Client::Dom0 => (TestLink::dom0(&store), 0),
        Client::Domain { domid, name } => (TestLink::domain(&store, *domid, name), *domid),
    };
    let mut c = Conn::new(link, "c", &log);
    let mut t = Conn::new(TestLink::dom0(&store), "t", &log);
    let mut domains = TestDomains { store: store.clone(), domid: 4000 };
    ops::run(&mut c, &mut t, &ops::View { domid, spare }, &mut domains);
    log.borrow().lines.clone()
}

/// The script against any store, given the two connections' links.
pub fn ops_on<A: Link, B: Link>(c: A, t: B, view: ops::View, domains: &mut dyn ops::Domains) -> Vec<String> {
    let log = new_log();
    let mut c = Conn::new(c, "c", &log);
    let mut t = Conn::new(t, "t", &log);
    ops::run(&mut c, &mut t, &view, domains);
    log.borrow().lines.clone()
}

/// The component against the test store, as domain `domid` called `name`.
pub fn component_on_test_store(domid: u16, name: &str, net: u16) -> Vec<String> {
    component_on_test_store_like(Daemon::Ox, domid, name, net)
}

/// [`component_on_test_store`] with `daemon`'s event order.
pub fn component_on_test_store_like(daemon: Daemon, domid: u16, name: &str, net: u16) -> Vec<String> {
    let store = test_store_like(daemon);
    let log = new_log();
    let mut t = Conn::new(TestLink::dom0(&store), "t", &log);
    let s = store.clone();
    let name = name.to_string();
    let mut rig = component::Rig::<TestLink>::new(&log, move |page| {
        s.borrow_mut().connect(domid, &name, page);
        component::Store::Test(s)
    });
    component::run(&mut rig, &mut t, component::Ids { domid, net });
    log.borrow().lines.clone()
}

/// The component with its ring forwarded to `link` (a domain's ring);
/// nothing moving for `quiet` counts as settled.
pub fn component_on<L: Link, B: Link>(link: L, t: B, domid: u16, net: u16, quiet: std::time::Duration) -> Vec<String> {
    let log = new_log();
    let mut t = Conn::new(t, "t", &log);
    let mut rig = component::Rig::new(&log, move |page| component::Store::Real(component::Shim::new(link, page)));
    rig.quiet = quiet;
    component::run(&mut rig, &mut t, component::Ids { domid, net });
    log.borrow().lines.clone()
}

/// One section's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The section's heading (without `# `).
    pub section: String,
    /// The first unexplained difference, if any.
    pub diff: Option<String>,
    /// Known differences met in this section (their ids).
    pub known: Vec<&'static str>,
}

/// Splits a transcript into its sections (lines before the first heading
/// form a section called `start`).
pub fn sections(lines: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![("start".into(), Vec::new())];
    for l in lines {
        match l.strip_prefix("# ") {
            Some(h) => out.push((h.to_string(), Vec::new())),
            None => out.last_mut().expect("one section").1.push(l.clone()),
        }
    }
    if out[0].1.is_empty() {
        out.remove(0);
    }
    out
}

/// Compares two transcripts section by section, allowing the `known`
/// differences of `what` (`"ops-dom0"`, `"ops-domain"`, `"component"`).
pub fn compare(what: &str, real: &[String], test: &[String]) -> Vec<Verdict> {
    let (r, t) = (sections(real), sections(test));
    let mut out = Vec::new();
    let names: Vec<&String> = {
        let mut v: Vec<&String> = r.iter().map(|(n, _)| n).collect();
        for (n, _) in &t {
            if !v.contains(&n) {
                v.push(n);
            }
        }
        v
    };
    for name in names {
        let empty = Vec::new();
        let rl = r.iter().find(|(n, _)| n == name).map_or(&empty, |(_, l)| l);
        let tl = t.iter().find(|(n, _)| n == name).map_or(&empty, |(_, l)| l);
        let (diff, known) = compare_lines(what, name, rl, tl);
        out.push(Verdict { section: name.clone(), diff, known });
    }
    out
}

/// Runs of consecutive watch events of one connection, sorted: when one
/// change fires several watches, daemons send their events in different
/// orders (oxenstored newest watch first, the test store oldest first), and
/// no client may depend on it.
fn sort_event_runs(lines: &mut [String]) {
    let mut i = 0;
    while i < lines.len() {
        let Some(conn) = event_conn(&lines[i]) else {
            i += 1;
            continue;
        };
        let mut j = i;
        while j < lines.len() && event_conn(&lines[j]) == Some(conn) {
            j += 1;
        }
        lines[i..j].sort();
        i = j;
    }
}

fn event_conn(l: &str) -> Option<&str> {
    l.split_once("! EVENT ").map(|(c, _)| c)
}

fn compare_lines(what: &str, section: &str, real: &[String], test: &[String]) -> (Option<String>, Vec<&'static str>) {
    let rules: Vec<&known::Known> = known::KNOWN.iter().filter(|k| k.applies(what, section)).collect();
    // Lines starting with `~` are notes (timings), not compared.
    let mut real: Vec<String> = real.iter().filter(|l| !l.starts_with('~')).cloned().collect();
    let mut test: Vec<String> = test.iter().filter(|l| !l.starts_with('~')).cloned().collect();
    sort_event_runs(&mut real);
    sort_event_runs(&mut test);
    let (real, test) = (&real[..], &test[..]);
    let (mut i, mut j) = (0, 0);
    let mut met = Vec::new();
    while i < real.len() || j < test.len() {
        if real.get(i) == test.get(j) {
            i += 1;
            j += 1;
            continue;
        }
        let before = if i == 0 { "" } else { real[i - 1].as_str() };
        if let Some(k) = rules.iter().find(|k| k.matches(before, &real[i..], &test[j..])) {
            met.push(k.id);
            i += k.real.len();
            j += k.test.len();
            continue;
        }
        let ctx = |l: &[String], at: usize| l[at.saturating_sub(3)..at].join(" | ");
        let (a, b) = (real.get(i).map(String::as_str), test.get(j).map(String::as_str));
        return (
            Some(format!(
                "after [{}]: real {:?} / test store {:?}",
                ctx(real, i),
                a.unwrap_or("(nothing)"),
                b.unwrap_or("(nothing)")
            )),
            met,
        );
    }
    met.dedup();
    (None, met)
}

/// A section heading as a check name: lower case, `-` for anything else.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}
