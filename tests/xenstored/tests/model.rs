//! The test store against a model: any sequence of writes, mkdirs and
//! removals leaves the same tree as a plain map with XenStore's rules, and
//! a watch sees exactly one event per change at or below it.

use std::collections::BTreeMap;

use moat_ring::Region;
use moat_test_xenstored::XenStored;
use moat_test_xenstored::client::Client;
use moat_xen::xenstore::{Path, Request};
use proptest::prelude::*;

const PATHS: [&str; 8] = ["/a", "/a/b", "/a/b/c", "/a/x", "/d", "/d/e", "/d/e/f", "/a/b/c/g"];

#[derive(Clone, Debug)]
enum Op {
    Write(usize, u8),
    Mkdir(usize),
    Rm(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..PATHS.len(), any::<u8>()).prop_map(|(p, v)| Op::Write(p, v)),
        (0..PATHS.len()).prop_map(Op::Mkdir),
        (0..PATHS.len()).prop_map(Op::Rm),
    ]
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => "/",
    }
}

/// The model: path to value; `/` always exists.
fn apply(m: &mut BTreeMap<String, Vec<u8>>, op: &Op) -> bool {
    let create = |m: &mut BTreeMap<String, Vec<u8>>, p: &str| {
        let mut at = p.to_string();
        while at != "/" && !m.contains_key(&at) {
            m.insert(at.clone(), Vec::new());
            at = parent(&at).to_string();
        }
    };
    match *op {
        Op::Write(i, v) => {
            create(m, PATHS[i]);
            m.insert(PATHS[i].into(), vec![v]);
            true
        }
        Op::Mkdir(i) => {
            let existed = m.contains_key(PATHS[i]);
            create(m, PATHS[i]);
            !existed
        }
        Op::Rm(i) => {
            let p = PATHS[i];
            let existed = m.contains_key(p);
            m.retain(|k, _| !(k == p || k.starts_with(&format!("{p}/"))));
            existed
        }
    }
}

proptest! {
    #[test]
    fn tree_and_watches_follow_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = XenStored::new();
        let page = Region::alloc_zeroed(4096);
        s.connect(5, "w", page);
        let mut c = Client::new(page);
        // Everything new is readable by all (inherited from the root), so
        // the watch's events are not filtered by permissions.
        s.set_perms("/", &[moat_xen::xenstore::Perm { access: moat_xen::xenstore::Access::Read, domid: 0 }]).unwrap();
        s.mkdir("/a").unwrap();
        let mut model = BTreeMap::from([("/a".to_string(), Vec::new())]);
        c.call(&mut s, Request::Watch { path: Path::new(b"/a").unwrap(), token: b"t" }, 0);
        c.pump(&mut s);
        c.events.clear();
        let mut expected = 0;
        for op in &ops {
            let path = match op { Op::Write(i, _) | Op::Mkdir(i) | Op::Rm(i) => PATHS[*i] };
            let parent_ok = parent(path) == "/" || model.contains_key(parent(path));
            let result = match op {
                Op::Write(_, v) => s.write(path, &[*v]),
                Op::Mkdir(_) => s.mkdir(path),
                Op::Rm(_) => s.rm(path),
            };
            if matches!(op, Op::Rm(_)) && !parent_ok && !model.contains_key(path) {
                prop_assert!(result.is_err(), "rm with a missing parent fails");
                continue;
            }
            prop_assert!(result.is_ok());
            let changed = apply(&mut model, op);
            if changed && (path == "/a" || path.starts_with("/a/")) {
                expected += 1;
            }
        }
        for p in PATHS {
            prop_assert_eq!(s.read(p), model.get(p).cloned(), "value of {}", p);
            let mut kids: Vec<String> = model.keys().filter(|k| parent(k) == p && *k != p).map(|k| k[p.len() + 1..].to_string()).collect();
            kids.sort();
            let mut got = s.directory(p).unwrap_or_default();
            got.sort();
            prop_assert_eq!(got, kids, "children of {}", p);
        }
        c.pump(&mut s);
        prop_assert_eq!(c.events.len(), expected, "one event per change under the watch");
    }
}
