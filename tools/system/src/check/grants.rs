//! XenStore grants: derived from `caps`, enforced by the xenstore component.
//!
//! A component's `caps.xenstore_read` / `caps.xenstore_write` say which
//! XenStore paths it may touch. The xenstore component is the one that
//! enforces them, so its configuration must carry them: this pass writes
//! each client's caps into the xenstore component's `config` (its `netback`
//! and `netfront` grants, after whoever feeds its `from_netback` and
//! `from_netfront` ports), so there is one place to write a grant and no way
//! for the two to disagree. A component with no caps gets an empty grant:
//! it may touch nothing.

use heapless::{String as HString, Vec as HVec};
use moat_xenstore::XenstoreConfig;
use moat_xenstore::policy::Grant;

use crate::model::{End, System, Wire};

use super::Errors;

/// The xenstore component's crate.
const XENSTORE: &str = "components/xenstore";

/// Rewrites every xenstore component's config blob with grants from caps.
pub(crate) fn derive(system: &mut System, span: impl Fn(usize) -> std::ops::Range<usize>, errs: &mut Errors) {
    for i in 0..system.components.len() {
        let c = &system.components[i];
        if c.entry.map(|e| e.crate_path) != Some(XENSTORE) {
            continue;
        }
        let Some(blob) = &c.config_blob else { continue };
        let Ok(mut config) = postcard::from_bytes::<XenstoreConfig>(blob) else {
            errs.at(span(i), "xenstore config did not decode", "this is a moat bug; report it");
            continue;
        };
        config.netback = grant_of(system, i, "from_netback", &span, errs);
        config.netfront = grant_of(system, i, "from_netfront", &span, errs);
        match postcard::to_allocvec(&config) {
            Ok(b) => system.components[i].config_blob = Some(b),
            Err(_) => errs.at(span(i), "xenstore config did not encode", "this is a moat bug; report it"),
        }
    }
}

/// The grant for whichever component feeds xenstore component `x`'s `port`.
fn grant_of(
    system: &System,
    x: usize,
    port: &str,
    span: &impl Fn(usize) -> std::ops::Range<usize>,
    errs: &mut Errors,
) -> Grant {
    let Some(p) = system.components[x].ports.iter().find(|p| p.name == port) else { return Grant::default() };
    let Wire::Ring(r) = p.wire else { return Grant::default() };
    let End::Port { component, .. } = system.rings[r].from else { return Grant::default() };
    let client = &system.components[component];
    let mut grant = Grant::default();
    for (list, out) in [(&client.caps.xenstore_read, &mut grant.read), (&client.caps.xenstore_write, &mut grant.write)]
    {
        *out = to_prefixes(list).unwrap_or_else(|| {
            errs.at(
                span(component),
                format!(
                    "component `{}` has more or longer XenStore grants than the xenstore component holds",
                    client.name
                ),
                format!(
                    "at most {} prefixes per list, each at most {} bytes",
                    moat_xenstore::policy::PREFIXES,
                    moat_xenstore::policy::PREFIX_MAX
                ),
            );
            HVec::new()
        });
    }
    if grant.validate().is_err() {
        errs.at(
            span(component),
            format!("component `{}` has a XenStore grant the xenstore component refuses", client.name),
            "prefixes are paths whose components are names or a lone `*`",
        );
    }
    grant
}

fn to_prefixes<const L: usize, const N: usize>(list: &[String]) -> Option<HVec<HString<L>, N>> {
    list.iter().map(|s| HString::try_from(s.as_str()).ok()).collect::<Option<Vec<_>>>()?.into_iter().try_fold(
        HVec::new(),
        |mut v, s| {
            v.push(s).ok()?;
            Some(v)
        },
    )
}
