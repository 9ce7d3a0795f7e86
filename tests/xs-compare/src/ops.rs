//! The fixed script of XenStore operations, run against the real daemon and
//! against the test store with the same two connections: `c`, the client
//! under test (dom0 over the socket, or an unprivileged domain through its
//! ring), and `t`, the toolstack (dom0).
//!
//! It only touches nodes it creates (under the client's `data/xsc` and
//! under `/xsc`) and a few the toolstack made for the client's domain
//! (read, never changed), so the real dom0 is left as it was. Sections
//! that may end the client's connection come last.

use moat_xen::xs_wire::XsdSockmsgType as T;

use crate::conn::{Conn, Reply};
use crate::link::Link;

/// Whose view the client has.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// The client's domain.
    pub domid: u16,
    /// A domain the script may create and destroy (to fire
    /// `@introduceDomain`/`@releaseDomain`), if the toolstack can.
    pub spare: bool,
}

impl View {
    /// The client's home, `/local/domain/<domid>`.
    pub fn home(&self) -> String {
        format!("/local/domain/{}", self.domid)
    }
}

/// What only the toolstack outside the store can do.
pub trait Domains {
    /// Creates a domain (paused); `@introduceDomain` fires.
    fn create(&mut self);
    /// Destroys it; `@releaseDomain` fires.
    fn destroy(&mut self);
}

/// Section headings, compared like any other line.
fn section<A: Link>(c: &mut Conn<A>, name: &str) {
    if c.recording {
        c.log_line(format!("# {name}"));
    }
}

/// Runs the whole script.
pub fn run<A: Link, B: Link>(c: &mut Conn<A>, t: &mut Conn<B>, v: &View, domains: &mut dyn Domains) {
    cleanup(c, t, v);
    identity(c, t, v);
    tree(c, t, v);
    bad_input(c, t, v);
    perms(c, t, v);
    watches(c, t, v);
    special_watches(c, t, v, domains);
    transactions(c, t, v);
    limits(c, t, v);
    cleanup(c, t, v);
    risky(c, t, v);
}

/// Removes what an earlier run may have left (not written down).
fn cleanup<A: Link, B: Link>(_c: &mut Conn<A>, t: &mut Conn<B>, v: &View) {
    let was = t.recording;
    t.recording = false;
    t.rm(0, &format!("{}/data/xsc", v.home()));
    t.rm(0, "/xsc");
    t.recording = was;
}

fn identity<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, v: &View) {
    section(c, "identity");
    c.read(0, "domid");
    c.read(0, "name");
    c.call(0, moat_xen::xenstore::Request::GetDomainPath(v.domid));
    c.call(0, moat_xen::xenstore::Request::IsDomainIntroduced(v.domid));
    c.call(0, moat_xen::xenstore::Request::IsDomainIntroduced(999));
    // How the toolstack laid out the client's home.
    let home = v.home();
    c.dir(0, &home);
    c.dir(0, &format!("{home}/control"));
    for sub in [
        "",
        "/domid",
        "/name",
        "/data",
        "/control",
        "/control/shutdown",
        "/control/feature-poweroff",
        "/control/feature-reboot",
        "/control/sysrq",
        "/device",
        "/drivers",
        "/feature",
        "/attr",
        "/error",
        "/memory",
        "/memory/target",
        "/console",
        "/store",
        "/backend",
    ] {
        c.get_perms(0, &format!("{home}{sub}"));
    }
    c.dir(0, "/local");
    c.get_perms(0, "/local/domain");
    c.get_perms(0, "/");
}

fn tree<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, v: &View) {
    section(c, "tree");
    c.write(0, "data/xsc/a/b/c", b"v");
    c.dir(0, "data/xsc/a");
    c.read(0, "data/xsc/a/b");
    c.get_perms(0, "data/xsc/a/b");
    c.get_perms(0, "data/xsc/a/b/c");
    c.mkdir(0, "data/xsc/a/d");
    c.mkdir(0, "data/xsc/a/d");
    c.write(0, "data/xsc/a/e", b"");
    c.write(0, "data/xsc/a/0-_@x", b"odd name");
    c.dir(0, "data/xsc/a");
    c.read(0, "data/xsc/a/e");
    c.write(0, "data/xsc/a/bin", b"\x00\x01\xfe\xff nul\x00inside");
    c.read(0, "data/xsc/a/bin");
    c.rm(0, "data/xsc/a/zz");
    c.rm(0, "data/xsc/q/zz");
    c.read(0, "data/xsc/nope");
    c.dir(0, "data/xsc/nope");
    c.get_perms(0, "data/xsc/nope");
    c.write(0, "data/xsc/a/b", b"a value on a node with children");
    c.read(0, "data/xsc/a/b");
    c.dir(0, "data/xsc/a/b");
    c.rm(0, "data/xsc/a/b");
    c.read(0, "data/xsc/a/b/c");
    c.dir(0, "data/xsc/a");
    let abs = format!("{}/data/xsc/a", v.home());
    c.read(0, &format!("{abs}/e"));
    c.dir(0, &abs);
    c.rm(0, "data/xsc/a");
    c.dir(0, "data/xsc");

    // Elsewhere child lists are written down sorted; here as they came.
    section(c, "tree: child order");
    c.raw_order = true;
    for name in ["zeta", "alpha", "mid", "Beta", "10", "9"] {
        c.write(0, &format!("data/xsc/order/{name}"), b"");
    }
    c.dir(0, "data/xsc/order");
    c.rm(0, "data/xsc/order/alpha");
    c.write(0, "data/xsc/order/alpha", b"");
    c.dir(0, "data/xsc/order");
    c.raw_order = false;
}

fn bad_input<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, v: &View) {
    section(c, "bad input");
    let read = T::Read as u32;
    c.raw(read, 0, b"data//xsc\0", "READ data//xsc");
    c.raw(read, 0, b"data/xsc/\0", "READ data/xsc/ (trailing slash)");
    c.raw(read, 0, b"data/x sc\0", "READ 'data/x sc' (space)");
    c.raw(read, 0, b"data/x\xffsc\0", "READ data/x<ff>sc");
    c.raw(read, 0, b"\0", "READ '' (empty)");
    c.raw(read, 0, b"domid", "READ domid (no NUL)");
    c.raw(read, 0, b"domid\0\0", "READ domid (two NULs)");
    c.raw(read, 0, b"domid\0extra\0", "READ domid extra");
    c.raw(T::Write as u32, 0, b"data/xsc/a b\0v", "WRITE 'data/xsc/a b' = v");
    c.raw(T::Write as u32, 0, b"data/xsc/w", "WRITE data/xsc/w (no NUL, no value)");
    c.raw(T::Mkdir as u32, 0, b"data/xsc//m\0", "MKDIR data/xsc//m");
    c.raw(T::Rm as u32, 0, b"data/xsc/\0", "RM data/xsc/");
    c.raw(T::Directory as u32, 0, b"data/xsc\0", "DIRECTORY data/xsc");
    c.raw(T::GetDomainPath as u32, 0, b"abc\0", "GET_DOMAIN_PATH abc");
    c.raw(T::GetDomainPath as u32, 0, b"70000\0", "GET_DOMAIN_PATH 70000");
    c.raw(T::Watch as u32, 0, b"data/xsc\0", "WATCH data/xsc (no token)");
    c.raw(T::Watch as u32, 0, b"data/xsc\0tok\0extra\0", "WATCH data/xsc tok extra");
    c.raw(T::TransactionEnd as u32, 0, b"X\0", "TRANSACTION_END X");
    c.write(0, "data/xsc/p", b"1");
    c.raw(T::SetPerms as u32, 0, b"data/xsc/p\0x5\0", "SET_PERMS data/xsc/p x5");
    c.raw(T::SetPerms as u32, 0, b"data/xsc/p\0", "SET_PERMS data/xsc/p (no perms)");
    c.raw(T::SetPerms as u32, 0, b"data/xsc/p\0r\0", "SET_PERMS data/xsc/p r");
    c.raw(T::SetPerms as u32, 0, b"data/xsc/p\0n70000\0", "SET_PERMS data/xsc/p n70000");
    c.get_perms(0, "data/xsc/p");
    let d = v.domid;
    let owner = format!("n{d}\0").into_bytes();
    let mut no_nul = format!("data/xsc/p\0n{d}").into_bytes();
    c.raw(T::SetPerms as u32, 0, &no_nul, "SET_PERMS data/xsc/p n<self> (no final NUL)");
    no_nul.clear();
    c.get_perms(0, "data/xsc/p");
    let mut p = b"data/xsc/p\0".to_vec();
    p.extend_from_slice(&owner);
    c.raw(T::SetPerms as u32, 0, &p, "SET_PERMS data/xsc/p n<self>");
    c.read(0, "@releaseDomain");
    c.write(0, "@xsc", b"x");
    c.get_perms(0, "@releaseDomain");
    c.dir(0, "@introduceDomain");
}

fn perms<A: Link, B: Link>(c: &mut Conn<A>, t: &mut Conn<B>, v: &View) {
    section(c, "perms");
    let d = v.domid;
    c.write(0, "data/xsc/p", b"1");
    c.get_perms(0, "data/xsc/p");
    c.set_perms(0, "data/xsc/p", &format!("n{d} r0"));
    c.get_perms(0, "data/xsc/p");
    c.set_perms(0, "data/xsc/p", &format!("b{d} n0 r{d}"));
    c.get_perms(0, "data/xsc/p");
    c.set_perms(0, "data/xsc/p", &format!("n{d} r4321"));
    c.get_perms(0, "data/xsc/p");
    c.set_perms(0, "data/xsc/p", "n0");
    c.get_perms(0, "data/xsc/p");
    c.write(0, "data/xsc/p/child", b"c");
    c.get_perms(0, "data/xsc/p/child");

    // Nodes of dom0's, and what the client may do with them.
    t.write(0, "/xsc/priv", b"secret");
    t.get_perms(0, "/xsc/priv");
    c.read(0, "/xsc/priv");
    c.read(0, "/xsc/priv/nope");
    c.read(0, "/xsc/nope/nope");
    c.dir(0, "/xsc");
    c.get_perms(0, "/xsc/priv");
    c.write(0, "/xsc/priv", b"mine");
    c.write(0, "/xsc/priv/child", b"mine");
    c.mkdir(0, "/xsc/newdir");
    c.rm(0, "/xsc/priv");
    c.rm(0, "/xsc/priv/nope");
    c.set_perms(0, "/xsc/priv", &format!("n{d}"));
    t.set_perms(0, "/xsc/priv", &format!("n0 r{d}"));
    c.read(0, "/xsc/priv");
    c.read(0, "/xsc/priv/nope");
    c.dir(0, "/xsc/priv");
    c.write(0, "/xsc/priv", b"mine");
    c.write(0, "/xsc/priv/child", b"mine");
    t.set_perms(0, "/xsc/priv", &format!("n0 w{d}"));
    c.read(0, "/xsc/priv");
    c.write(0, "/xsc/priv", b"written");
    c.write(0, "/xsc/priv/child", b"child");
    c.get_perms(0, "/xsc/priv/child");
    c.read(0, "/xsc/priv/child");
    c.rm(0, "/xsc/priv/child");
    t.set_perms(0, "/xsc/priv", "r0");
    c.read(0, "/xsc/priv");
    c.write(0, "/xsc/priv", b"x");
    t.set_perms(0, "/xsc/priv", &format!("n{d}"));
    c.read(0, "/xsc/priv");
    c.set_perms(0, "/xsc/priv", &format!("n{d} b0"));
    c.get_perms(0, "/xsc/priv");
    c.write(0, "/xsc/priv/child", b"child");
    c.get_perms(0, "/xsc/priv/child");
    c.rm(0, "/xsc/priv");
    t.read(0, "/xsc/priv");
    t.rm(0, "/xsc");
}

fn watches<A: Link, B: Link>(c: &mut Conn<A>, t: &mut Conn<B>, v: &View) {
    section(c, "watches");
    let home = v.home();
    let d = v.domid;
    c.mkdir(0, "data/xsc");
    c.watch("data/xsc/w", "tw");
    t.write(0, &format!("{home}/data/xsc/w/x"), b"1");
    c.sync();
    t.write(0, &format!("{home}/data/xsc/wx"), b"");
    t.write(0, &format!("{home}/data/xsc"), b"parent");
    c.sync();
    c.write(0, "data/xsc/w/y", b"2");
    c.mkdir(0, "data/xsc/w/y");
    c.mkdir(0, "data/xsc/w/z");
    c.write(0, "data/xsc/w/y", b"2");
    t.set_perms(0, &format!("{home}/data/xsc/w/x"), &format!("n{d}"));
    c.sync();
    t.rm(0, &format!("{home}/data/xsc/w/x"));
    c.sync();
    t.rm(0, &format!("{home}/data/xsc/w/nothere"));
    c.sync();
    t.rm(0, &format!("{home}/data/xsc"));
    c.sync();

    section(c, "watches: never-existing node");
    c.watch("data/xsc/never/x", "tn");
    t.write(0, &format!("{home}/data/xsc/never/y"), b"");
    c.sync();
    t.rm(0, &format!("{home}/data/xsc/never"));
    c.sync();
    c.unwatch("data/xsc/never/x", "tn");

    section(c, "watches: tokens, absolute paths, unwatch");
    let abs = format!("{home}/data/xsc/abs");
    c.watch(&abs, "ta");
    c.watch(&abs, "ta");
    c.watch(&abs, "ta2");
    c.watch("data/xsc/abs", "ta3");
    c.watch("data/xsc/abs", "ta");
    c.write(0, "data/xsc/abs/k", b"1");
    c.unwatch(&abs, "ta");
    c.unwatch(&abs, "ta");
    c.unwatch("data/xsc/abs", "ta2");
    c.unwatch(&abs, "ta2");
    c.unwatch("data/xsc/abs", "nosuch");
    c.write(0, "data/xsc/abs/k", b"2");
    c.unwatch("data/xsc/abs", "ta3");
    c.unwatch("data/xsc/abs", "ta");
    c.watch("/", "root");
    c.sync();
    c.unwatch("/", "root");

    section(c, "watches: events need read permission");
    t.mkdir(0, "/xsc");
    c.watch("/xsc", "tp");
    t.write(0, "/xsc/secret", b"1");
    c.sync();
    t.set_perms(0, "/xsc/secret", &format!("n0 r{d}"));
    c.sync();
    t.write(0, "/xsc/secret", b"2");
    c.sync();
    t.set_perms(0, "/xsc/secret", "n0");
    c.sync();
    t.write(0, "/xsc/secret", b"3");
    c.sync();
    t.rm(0, "/xsc/secret");
    c.sync();
    t.rm(0, "/xsc");
    c.sync();
    c.unwatch("/xsc", "tp");

    section(c, "watches: inside a transaction, reset");
    let tx = c.start();
    c.call(tx, moat_xen::xenstore::Request::Watch { path: crate::conn::path("data/xsc/txw"), token: b"tx" });
    c.end(tx, false);
    c.write(0, "data/xsc/txw", b"1");
    c.watch("data/xsc/r", "r1");
    c.watch("data/xsc/r2", "r2");
    c.call(0, moat_xen::xenstore::Request::ResetWatches);
    c.write(0, "data/xsc/r", b"1");
    c.write(0, "data/xsc/r2", b"1");
    c.write(0, "data/xsc/txw", b"2");
    c.unwatch("data/xsc/r", "r1");
    c.rm(0, "data/xsc");
}

fn special_watches<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, v: &View, domains: &mut dyn Domains) {
    section(c, "special watches");
    c.watch("@releaseDomain", "rel");
    c.watch("@introduceDomain", "intro");
    c.watch("@other", "other");
    c.unwatch("@other", "other");
    if v.spare {
        domains.create();
        c.sync();
        domains.destroy();
        c.sync();
    }
    c.unwatch("@releaseDomain", "rel");
    c.unwatch("@introduceDomain", "intro");
}

/// Puts `data/xsc` back to `s` = `value` and nothing else (not written
/// down, its events swallowed), so that each transaction section starts
/// from the same state whatever the one before it did.
fn tx_reset<A: Link, B: Link>(c: &mut Conn<A>, t: &mut Conn<B>, v: &View, value: &[u8]) {
    let (was_c, was_t) = (c.recording, t.recording);
    c.recording = false;
    t.recording = false;
    let dir = format!("{}/data/xsc", v.home());
    if let Reply::Ok(names) = t.dir(0, &dir) {
        for n in names.split(|b| *b == 0).filter(|n| !n.is_empty() && *n != b"s") {
            t.rm(0, &format!("{dir}/{}", String::from_utf8_lossy(n)));
        }
    }
    t.write(0, &format!("{dir}/s"), value);
    c.sync();
    c.recording = was_c;
    t.recording = was_t;
}

fn transactions<A: Link, B: Link>(c: &mut Conn<A>, t: &mut Conn<B>, v: &View) {
    section(c, "transactions: isolation and commit");
    let s = format!("{}/data/xsc/s", v.home());
    c.write(0, "data/xsc/s", b"0");
    c.watch("data/xsc", "tall");
    let tx = c.start();
    c.write(tx, "data/xsc/s", b"a");
    c.read(tx, "data/xsc/s");
    c.dir(tx, "data/xsc");
    t.read(0, &s);
    c.sync();
    c.end(tx, true);
    c.read(0, "data/xsc/s");

    section(c, "transactions: conflict");
    tx_reset(c, t, v, b"a");
    let tx = c.start();
    c.read(tx, "data/xsc/s");
    t.write(0, &s, b"b");
    c.sync();
    c.write(tx, "data/xsc/o", b"x");
    c.end(tx, true);
    c.read(0, "data/xsc/o");

    section(c, "transactions: the same value written meanwhile");
    tx_reset(c, t, v, b"b");
    let tx = c.start();
    c.read(tx, "data/xsc/s");
    t.write(0, &s, b"b");
    c.sync();
    c.write(tx, "data/xsc/o", b"y");
    c.end(tx, true);
    c.read(0, "data/xsc/o");

    section(c, "transactions: read-only, changed meanwhile");
    tx_reset(c, t, v, b"b");
    let tx = c.start();
    c.read(tx, "data/xsc/s");
    t.write(0, &s, b"c");
    c.sync();
    c.end(tx, true);

    section(c, "transactions: unrelated change meanwhile");
    tx_reset(c, t, v, b"b");
    let tx = c.start();
    c.read(tx, "data/xsc/s");
    t.write(0, &format!("{}/data/xsc/unrelated", v.home()), b"u");
    c.sync();
    c.write(tx, "data/xsc/o2", b"z");
    c.end(tx, true);
    c.read(0, "data/xsc/o2");

    section(c, "transactions: a new sibling meanwhile");
    tx_reset(c, t, v, b"b");
    let tx = c.start();
    c.dir(tx, "data/xsc");
    t.write(0, &format!("{}/data/xsc/sibling", v.home()), b"");
    c.sync();
    c.write(tx, "data/xsc/o3", b"z");
    c.end(tx, true);

    section(c, "transactions: abort");
    tx_reset(c, t, v, b"b");
    let tx = c.start();
    c.write(tx, "data/xsc/s", b"z");
    c.end(tx, false);
    c.read(0, "data/xsc/s");

    section(c, "transactions: several kinds of change, events at commit");
    tx_reset(c, t, v, b"b");
    c.write(0, "data/xsc/o", b"x");
    let tx = c.start();
    c.mkdir(tx, "data/xsc/m");
    c.write(tx, "data/xsc/m/k", b"1");
    c.rm(tx, "data/xsc/o");
    c.rm(tx, "data/xsc/nothere");
    c.set_perms(tx, "data/xsc/s", &format!("n{} r0", v.domid));
    c.get_perms(tx, "data/xsc/s");
    c.write(tx, "data/xsc/m/k", b"2");
    c.sync();
    c.end(tx, true);
    c.get_perms(0, "data/xsc/s");

    section(c, "transactions: errors");
    tx_reset(c, t, v, b"b");
    c.read(999, "data/xsc/s");
    let tx = c.start();
    c.call(tx, moat_xen::xenstore::Request::TransactionStart);
    c.end(0, true);
    c.end(tx, true);
    c.end(tx, true);
    c.read(tx, "data/xsc/s");
    let tx = c.start();
    t.rm(0, &format!("{}/data/xsc/m", v.home()));
    c.sync();
    c.write(tx, "data/xsc/m/k", b"3");
    c.end(tx, true);
    c.unwatch("data/xsc", "tall");
    c.rm(0, "data/xsc");
}

fn limits<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, v: &View) {
    section(c, "limits: value sizes");
    for n in [2048usize, 2049, 4000] {
        let value = vec![b'x'; n];
        c.write(0, "data/xsc/big", &value);
        c.read(0, "data/xsc/big");
    }
    // The largest payload: path, NUL and value make exactly 4096 bytes.
    let p = "data/xsc/full";
    let value = vec![b'y'; 4096 - p.len() - 1];
    c.write(0, p, &value);
    c.read(0, p);

    section(c, "limits: path lengths");
    // By the length of the absolute path they name (relative ones resolve
    // under the home), around the limits daemons use: 1024 (oxenstored's
    // default quota), 2048 and 3072 (the protocol's relative and absolute).
    let home = v.home();
    for n in [1024usize, 1025, 2048, 2049, 3072, 3073] {
        for relative in [true, false] {
            let mut p = format!("{home}/data/xsc/");
            while p.len() < n {
                p.push_str("long-component/");
            }
            p.truncate(n);
            if p.ends_with('/') {
                p.pop();
                p.push('x');
            }
            let sent = if relative { p[home.len() + 1..].to_string() } else { p.clone() };
            let what = format!("{} path to {n} bytes", if relative { "relative" } else { "absolute" });
            let r = c.raw(T::Write as u32, 0, &[sent.as_bytes(), b"\0v"].concat(), &format!("WRITE {what}"));
            if r == Reply::Ok(Vec::new()) {
                c.raw(T::Read as u32, 0, &[sent.as_bytes(), b"\0"].concat(), &format!("READ {what}"));
            }
        }
    }
    c.rm(0, "data/xsc");

    section(c, "limits: watches");
    let (mut ok, mut first_err) = (0, None);
    let was = c.recording;
    c.recording = false;
    for i in 0..130 {
        match c.watch(&format!("data/xsc/lw/{i}"), &format!("lw{i}")) {
            Reply::Ok(_) => ok += 1,
            other => {
                first_err.get_or_insert((i, other));
            }
        }
    }
    // The initial event of the last watch set, not written down either.
    c.sync();
    c.recording = was;
    c.log_line(format!("c= 130 watches: {ok} accepted, first refusal {first_err:?}"));
    c.call(0, moat_xen::xenstore::Request::ResetWatches);
    c.sync();

    section(c, "limits: open transactions");
    let (mut txs, mut first_err) = (Vec::new(), None);
    c.recording = false;
    for i in 0..16 {
        match c.call(0, moat_xen::xenstore::Request::TransactionStart) {
            Reply::Tx(id) => txs.push(id),
            other => {
                first_err.get_or_insert((i, other));
            }
        }
    }
    for id in &txs {
        c.end(*id, false);
    }
    c.recording = was;
    c.log_line(format!("c= 16 transactions: {} started, first refusal {first_err:?}", txs.len()));
}

/// Requests that may end the connection (last).
fn risky<A: Link, B: Link>(c: &mut Conn<A>, _t: &mut Conn<B>, _v: &View) {
    section(c, "risky: types the codec does not send");
    c.write(0, "data/xsc/d/a", b"");
    c.write(0, "data/xsc/d/b", b"");
    c.call(0, moat_xen::xenstore::Request::DirectoryPart { path: crate::conn::path("data/xsc/d"), offset: 0 });
    c.raw(T::Control as u32, 0, b"xsc-no-such-command\0", "CONTROL xsc-no-such-command");
    c.call(0, moat_xen::xenstore::Request::Release(4321));
    // The test store drops the connection here, as cxenstored does.
    section(c, "risky: unknown types");
    // (Not empty: oxenstored leaves an empty message on its socket
    // unanswered until more bytes come.)
    c.raw(20, 0, b"\0", "type 20 (XS_RESTRICT, removed)");
    c.raw(T::WatchEvent as u32, 0, b"data/xsc\0tok\0", "WATCH_EVENT from the client");
    c.raw(T::Error as u32, 0, b"EINVAL\0", "ERROR from the client");
    c.raw(0xffff, 0, b"\0", "type 0xffff (XS_INVALID)");
    c.raw(12345, 0, b"\0", "type 12345");
    c.read(0, "data/xsc/d/a");
    c.rm(0, "data/xsc");
    section(c, "risky: oversized payload");
    let mut msg = Vec::new();
    msg.extend_from_slice(b"data/xsc/huge\0");
    msg.resize(4097, b'z');
    c.raw(T::Write as u32, 0, &msg, "WRITE with a 4097-byte payload");
    c.read(0, "domid");
}
