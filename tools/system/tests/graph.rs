//! The repository's `system.toml` describes exactly the graph of
//! `docs/graph.md`: the same rings (each active ring with its `_free` ring
//! back), messages, pools, owners, mappings and component crates. Since
//! `moat check` already proves every port is wired, agreeing on the wiring
//! means agreeing on every port too.

use std::collections::BTreeSet;
use std::path::Path;

use moat_system::model::{End, Owner, System};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn system() -> System {
    moat_system::load(&root().join("system.toml")).unwrap_or_else(|r| panic!("{r}"))
}

/// Table rows of `docs/graph.md` as cells with backticks removed.
fn rows() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("docs/graph.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().replace('`', "")).collect())
        .collect()
}

fn end(s: &System, e: &End) -> String {
    match e {
        End::Runtime(_) => "runtime".into(),
        e => s.end_name(e),
    }
}

#[test]
fn rings_match_the_documented_graph() {
    let mut documented = BTreeSet::new();
    for r in rows() {
        let is_end = |c: &str| c.contains('.') && !c.contains(' ');
        match r.as_slice() {
            [from, to] if is_end(from) && is_end(to) => {
                documented.insert((from.clone(), to.clone(), "PacketDesc".to_string()));
                documented.insert((format!("{to}_free"), format!("{from}_free"), "PacketDesc".to_string()));
            }
            [from, to, message, _] if is_end(to) || is_end(from) => {
                let runtime = |e: &String| if e.starts_with("(runtime") { "runtime".to_string() } else { e.clone() };
                documented.insert((runtime(from), runtime(to), message.clone()));
            }
            _ => {}
        }
    }
    assert_eq!(documented.len(), 25, "graph.md: 7 active packet rings, 7 free rings, 11 control rings");
    let s = system();
    let described: BTreeSet<_> =
        s.rings.iter().map(|r| (end(&s, &r.from), end(&s, &r.to), r.message.clone())).collect();
    assert_eq!(described, documented);
}

#[test]
fn pools_match_the_documented_graph() {
    let s = system();
    let mut seen = 0;
    for r in rows() {
        let [name, owner, buffers, maps] = r.as_slice() else { continue };
        let Some(p) = s.pools.iter().find(|p| p.name == *name) else { continue };
        seen += 1;
        assert_eq!(p.owner, Owner::Component(s.components.iter().position(|c| c.name == *owner).unwrap()));
        assert_eq!(*buffers, format!("{} × {} B", p.count, p.buffer_size));
        let described: BTreeSet<String> = p
            .maps
            .iter()
            .map(|&(c, _, w)| format!("{} {}", s.components[c].name, if w { "rw" } else { "r" }))
            .collect();
        let documented: BTreeSet<String> = maps.split(", ").map(String::from).collect();
        assert_eq!(described, documented, "pool {name}");
    }
    assert_eq!(seen, s.pools.len());
}

#[test]
fn components_match_the_documented_crates() {
    let s = system();
    let documented: BTreeSet<(String, String)> = rows()
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [name, krate, _] if krate.starts_with("components/") && name != "echo" => {
                Some((name.clone(), krate.clone()))
            }
            _ => None,
        })
        .collect();
    let described: BTreeSet<(String, String)> =
        s.components.iter().map(|c| (c.name.clone(), c.crate_path.clone())).collect();
    assert_eq!(described, documented);
}

#[test]
fn xenstore_grants_come_from_the_clients_caps() {
    let s = system();
    let xs = s.components.iter().find(|c| c.name == "xenstore").expect("xenstore component");
    let config: moat_xenstore::XenstoreConfig = postcard::from_bytes(xs.config_blob.as_ref().unwrap()).unwrap();
    for (client, grant) in [("netback", &config.netback), ("netfront", &config.netfront)] {
        let caps = &s.components.iter().find(|c| c.name == client).unwrap().caps;
        let read: Vec<&str> = grant.read.iter().map(|p| p.as_str()).collect();
        let write: Vec<&str> = grant.write.iter().map(|p| p.as_str()).collect();
        assert_eq!(read, caps.xenstore_read, "{client} read grant");
        assert_eq!(write, caps.xenstore_write, "{client} write grant");
        assert!(!write.is_empty(), "{client} can write its own device directory");
    }
}
