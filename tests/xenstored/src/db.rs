//! The tree: nodes with values, ordered children and permissions; the
//! permission rules; and what each change means for watches and
//! transactions.

use std::collections::{BTreeMap, HashMap, HashSet};

use moat_xen::xenstore::path::is_child;
use moat_xen::xenstore::{Access, Perm};
use moat_xen::xs_wire::XsdError;

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Who {
    /// The caller's domain.
    pub domid: u16,
    /// Privileged callers (dom0, the toolstack) bypass permissions.
    pub privileged: bool,
}

impl Who {
    /// The toolstack in dom0.
    pub const DOM0: Who = Who { domid: 0, privileged: true };
}

/// One node.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its value.
    pub value: Vec<u8>,
    /// Owner first; see [`moat_xen::xenstore::Perms::access`].
    pub perms: Vec<Perm>,
    /// Child names in creation order (as xenstored lists them).
    pub children: Vec<String>,
}

/// A change, for firing watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The node that changed.
    pub path: String,
    /// The node was removed (with everything below it).
    pub removed: bool,
    /// For a removal: every node that went, the node itself included.
    pub gone: Vec<String>,
    /// Its permissions (before removal, for a removal; the new ones for a
    /// permission change).
    pub perms: Vec<Perm>,
    /// For a permission change, the permissions it had before: a domain
    /// that could read the node under either learns of the change.
    pub old_perms: Option<Vec<Perm>>,
    /// Its parent's permissions, if it has a parent.
    pub parent_perms: Option<Vec<Perm>>,
}

impl Change {
    /// May `domid` learn of this change? (xenstored's rule: it can read the
    /// node or its parent.)
    pub fn visible_to(&self, who: Who) -> bool {
        who.privileged
            || access(&self.perms, who.domid).can_read()
            || self.old_perms.as_ref().is_some_and(|p| access(p, who.domid).can_read())
            || self.parent_perms.as_ref().is_some_and(|p| access(p, who.domid).can_read())
    }
}

/// The access `domid` has under `perms` (owner: everything; listed: its
/// entry, last wins; anyone else: the owner entry's).
pub fn access(perms: &[Perm], domid: u16) -> Access {
    match perms.split_first() {
        None => Access::None,
        Some((owner, _)) if owner.domid == domid => Access::Both,
        Some((owner, rest)) => rest.iter().rev().find(|p| p.domid == domid).map_or(owner.access, |p| p.access),
    }
}

/// The whole store (or a transaction's copy of it).
#[derive(Clone, Debug)]
pub struct Db {
    nodes: BTreeMap<String, Node>,
    /// Bumped on every change.
    generation: u64,
    /// Generation of the last change of every path ever changed (removals
    /// included), for transaction conflict detection.
    changed: HashMap<String, u64>,
    /// Inside a transaction: every path read, listed or changed.
    accessed: Option<HashSet<String>>,
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

fn leaf(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |i| i + 1)..]
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    /// A store holding only `/`, owned by dom0 and readable by nobody else.
    pub fn new() -> Self {
        let root =
            Node { value: Vec::new(), perms: vec![Perm { access: Access::None, domid: 0 }], children: Vec::new() };
        Db { nodes: BTreeMap::from([("/".into(), root)]), generation: 0, changed: HashMap::new(), accessed: None }
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A copy for a transaction that records what it touches.
    pub fn snapshot(&self) -> Db {
        Db { accessed: Some(HashSet::new()), ..self.clone() }
    }

    /// True if any path the transaction copy `tx` touched changed here after
    /// generation `since`.
    pub fn conflicts(&self, tx: &Db, since: u64) -> bool {
        let touched = tx.accessed.as_ref().expect("a transaction copy");
        touched.iter().any(|p| self.changed.get(p).is_some_and(|g| *g > since))
    }

    fn note(&mut self, path: &str) {
        if let Some(a) = self.accessed.as_mut() {
            a.insert(path.to_string());
        }
    }

    fn touch(&mut self, path: &str) {
        self.generation += 1;
        self.changed.insert(path.to_string(), self.generation);
        self.note(path);
    }

    /// The node at `path` (no permission check: for the toolstack's view).
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn readable(&mut self, who: Who, path: &str) -> Result<&Node, XsdError> {
        self.note(path);
        let node = self.nodes.get(path).ok_or(XsdError::Enoent)?;
        if who.privileged || access(&node.perms, who.domid).can_read() { Ok(node) } else { Err(XsdError::Eacces) }
    }

    fn may_write(&self, who: Who, node: &Node) -> bool {
        who.privileged || access(&node.perms, who.domid).can_write()
    }

    /// `XS_READ`.
    pub fn read(&mut self, who: Who, path: &str) -> Result<Vec<u8>, XsdError> {
        Ok(self.readable(who, path)?.value.clone())
    }

    /// `XS_DIRECTORY`.
    pub fn directory(&mut self, who: Who, path: &str) -> Result<Vec<String>, XsdError> {
        Ok(self.readable(who, path)?.children.clone())
    }

    /// `XS_GET_PERMS`.
    pub fn get_perms(&mut self, who: Who, path: &str) -> Result<Vec<Perm>, XsdError> {
        Ok(self.readable(who, path)?.perms.clone())
    }

    /// Creates `path` and missing parents. Creating needs write access to
    /// the nearest existing ancestor; new nodes inherit their parent's
    /// permissions, but an unprivileged creator becomes the owner.
    fn create(&mut self, who: Who, path: &str) -> Result<(), XsdError> {
        let mut missing = Vec::new();
        let mut at = path;
        while !self.nodes.contains_key(at) {
            missing.push(at.to_string());
            at = parent_of(at).ok_or(XsdError::Einval)?;
        }
        self.note(at);
        let anchor = &self.nodes[at];
        if !self.may_write(who, anchor) {
            return Err(XsdError::Eacces);
        }
        for p in missing.into_iter().rev() {
            let parent = parent_of(&p).expect("not the root").to_string();
            let mut perms = self.nodes[&parent].perms.clone();
            if !who.privileged {
                perms[0].domid = who.domid;
            }
            self.nodes.get_mut(&parent).expect("exists").children.push(leaf(&p).to_string());
            self.nodes.insert(p.clone(), Node { value: Vec::new(), perms, children: Vec::new() });
            self.touch(&parent);
            self.touch(&p);
        }
        Ok(())
    }

    fn change(&self, path: &str, removed: bool, perms: Vec<Perm>) -> Change {
        let parent_perms = parent_of(path).and_then(|p| self.nodes.get(p)).map(|n| n.perms.clone());
        Change { path: path.to_string(), removed, gone: Vec::new(), perms, old_perms: None, parent_perms }
    }

    /// `XS_WRITE`.
    pub fn write(&mut self, who: Who, path: &str, value: &[u8]) -> Result<Change, XsdError> {
        self.note(path);
        match self.nodes.get(path) {
            Some(n) if !self.may_write(who, n) => return Err(XsdError::Eacces),
            Some(_) => {}
            None => self.create(who, path)?,
        }
        self.nodes.get_mut(path).expect("exists now").value = value.to_vec();
        self.touch(path);
        Ok(self.change(path, false, self.nodes[path].perms.clone()))
    }

    /// `XS_MKDIR`: nothing changes (and no watch fires) if `path` exists.
    pub fn mkdir(&mut self, who: Who, path: &str) -> Result<Option<Change>, XsdError> {
        self.note(path);
        if self.nodes.contains_key(path) {
            return Ok(None);
        }
        self.create(who, path)?;
        Ok(Some(self.change(path, false, self.nodes[path].perms.clone())))
    }

    /// `XS_RM`: removing a missing node is fine if its parent exists.
    pub fn rm(&mut self, who: Who, path: &str) -> Result<Option<Change>, XsdError> {
        self.note(path);
        let Some(node) = self.nodes.get(path) else {
            let parent = parent_of(path).ok_or(XsdError::Einval)?;
            self.note(parent);
            return if self.nodes.contains_key(parent) { Ok(None) } else { Err(XsdError::Enoent) };
        };
        let parent = parent_of(path).ok_or(XsdError::Einval)?.to_string();
        if !self.may_write(who, node) {
            return Err(XsdError::Eacces);
        }
        let mut change = self.change(path, true, node.perms.clone());
        let doomed: Vec<String> =
            self.nodes.keys().filter(|k| is_child(k.as_bytes(), path.as_bytes())).cloned().collect();
        for p in &doomed {
            self.nodes.remove(p);
            self.touch(p);
        }
        change.gone = doomed;
        let name = leaf(path);
        self.nodes.get_mut(&parent).expect("parent of an existing node").children.retain(|c| c != name);
        self.touch(&parent);
        Ok(Some(change))
    }

    /// `XS_SET_PERMS`: the owner or a privileged caller only; an
    /// unprivileged owner cannot give the node away.
    pub fn set_perms(&mut self, who: Who, path: &str, perms: &[Perm]) -> Result<Change, XsdError> {
        self.note(path);
        let node = self.nodes.get(path).ok_or(XsdError::Enoent)?;
        if perms.is_empty() {
            return Err(XsdError::Einval);
        }
        if !who.privileged && (node.perms[0].domid != who.domid || perms[0].domid != who.domid) {
            return Err(XsdError::Eacces);
        }
        let old = node.perms.clone();
        self.nodes.get_mut(path).expect("exists").perms = perms.to_vec();
        self.touch(path);
        Ok(Change { old_perms: Some(old), ..self.change(path, false, perms.to_vec()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM5: Who = Who { domid: 5, privileged: false };
    const DOM6: Who = Who { domid: 6, privileged: false };

    fn perm(access: Access, domid: u16) -> Perm {
        Perm { access, domid }
    }

    #[test]
    fn create_inherits_and_checks_permissions() {
        let mut db = Db::new();
        db.write(Who::DOM0, "/local/domain/5", b"").unwrap();
        db.set_perms(Who::DOM0, "/local/domain/5", &[perm(Access::None, 5)]).unwrap();
        assert_eq!(db.write(DOM6, "/local/domain/5/x", b"v"), Err(XsdError::Eacces));
        db.write(DOM5, "/local/domain/5/a/b", b"v").unwrap();
        assert_eq!(db.node("/local/domain/5/a").unwrap().perms, [perm(Access::None, 5)]);
        assert_eq!(db.read(DOM6, "/local/domain/5/a/b"), Err(XsdError::Eacces));
        assert_eq!(db.read(DOM5, "/local/domain/5/a/b").unwrap(), b"v");
        assert_eq!(db.directory(DOM5, "/local/domain/5").unwrap(), ["a"]);
        assert_eq!(db.read(DOM5, "/nope"), Err(XsdError::Enoent));
        assert_eq!(db.write(DOM5, "/local/x", b""), Err(XsdError::Eacces), "dom0's tree");
        assert_eq!(
            db.set_perms(DOM5, "/local/domain/5/a", &[perm(Access::Read, 6)]),
            Err(XsdError::Eacces),
            "cannot give a node away"
        );
        db.set_perms(DOM5, "/local/domain/5/a", &[perm(Access::None, 5), perm(Access::Read, 6)]).unwrap();
        assert!(db.directory(DOM6, "/local/domain/5/a").is_ok());
    }

    #[test]
    fn rm_and_mkdir_rules() {
        let mut db = Db::new();
        db.write(Who::DOM0, "/a/b/c", b"1").unwrap();
        assert!(db.mkdir(Who::DOM0, "/a/b").unwrap().is_none(), "existing: no change");
        assert!(db.rm(Who::DOM0, "/a/x").unwrap().is_none(), "missing child of an existing parent");
        assert_eq!(db.rm(Who::DOM0, "/q/x").unwrap_err(), XsdError::Enoent);
        let c = db.rm(Who::DOM0, "/a/b").unwrap().unwrap();
        assert!(c.removed);
        assert!(db.node("/a/b/c").is_none());
        assert!(db.directory(Who::DOM0, "/a").unwrap().is_empty());
    }

    #[test]
    fn transactions_see_conflicts_on_what_they_touched() {
        let mut db = Db::new();
        db.write(Who::DOM0, "/a", b"1").unwrap();
        db.write(Who::DOM0, "/b", b"1").unwrap();
        let start = db.generation();
        let mut tx = db.snapshot();
        tx.read(Who::DOM0, "/a").unwrap();
        db.write(Who::DOM0, "/b", b"2").unwrap();
        assert!(!db.conflicts(&tx, start), "untouched path changed");
        db.write(Who::DOM0, "/a", b"2").unwrap();
        assert!(db.conflicts(&tx, start));
        let start = db.generation();
        let mut tx = db.snapshot();
        tx.directory(Who::DOM0, "/").unwrap();
        db.write(Who::DOM0, "/c", b"").unwrap();
        assert!(db.conflicts(&tx, start), "a new child changes the listed parent");
    }
}
