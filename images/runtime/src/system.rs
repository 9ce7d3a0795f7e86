//! Starting a whole system from its manifest: every component instance is
//! looked up by kind, given pages of its own, bound, initialised and handed
//! to a [`Scheduler`].
//!
//! The set of component kinds an image can run is a table of [`Kind`]s the
//! image links in (`kind::<Echo>()`, …); the manifest picks instances from it
//! by `Component::NAME`.

use moat_component::{Component, Context, Fault, Instant, Signals};
use moat_ring::Region;

use crate::binder::{DeviceMem, LayoutBinder};
use crate::instance::{Instance, Placer, Task};
use crate::layout::{ConfigEnvelope, ConfigError, Manifest};
use crate::sched::{RouteError, Scheduler};

/// Starts one instance of a component type.
pub type StartFn = for<'b, 'm, 'a> fn(
    &'b mut LayoutBinder<'m, 'a>,
    &[u8],
    &mut Context,
    &mut Placer,
) -> Result<&'static mut dyn Task, Fault>;

/// A component type an image can run.
#[derive(Clone, Copy)]
pub struct Kind {
    /// `Component::NAME`, what manifests call it.
    pub name: &'static str,
    /// Starts an instance.
    pub start: StartFn,
    /// Its [`crate::layout::layout_hash`], which configuration blobs must
    /// carry.
    pub layout: fn() -> u64,
}

fn start_one<C: Component + 'static>(
    binder: &mut LayoutBinder<'_, '_>,
    config: &[u8],
    cx: &mut Context,
    placer: &mut Placer,
) -> Result<&'static mut dyn Task, Fault> {
    let instance = Instance::<C>::start(binder, config, cx)?;
    match placer.place(instance) {
        Ok(t) => Ok(t),
        Err(_) => Err(Fault::Internal("no memory left for the component")),
    }
}

/// The [`Kind`] of component type `C`.
pub const fn kind<C: Component + 'static>() -> Kind {
    Kind { name: C::NAME, start: start_one::<C>, layout: crate::layout::layout_hash_of::<C> }
}

/// Why a system did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError<'a> {
    /// The image has no code for component `.0`'s kind `.1`.
    UnknownKind(&'a str, &'a str),
    /// Component `.0`'s configuration blob is not for this code.
    Config(&'a str, ConfigError),
    /// Component `.0` failed to bind or initialise.
    Fault(&'a str, Fault),
    /// Component `.0` left port `.1` unbound: its crate and the system
    /// disagree.
    Unbound(&'a str, &'a str),
    /// A device port names a device the platform does not have.
    Route(RouteError),
}

/// Starts every component of `manifest`, in manifest order. Each `init`
/// gets 32 fresh bytes from `entropy` ([`Context::seed`]).
///
/// # Safety
///
/// `arena` must come from [`crate::binder::prepare`] for this manifest, and
/// this must be the only start of this system (each component is bound once;
/// see [`LayoutBinder::new`]). `devices` as for [`LayoutBinder::new`].
pub unsafe fn start<'a>(
    manifest: &Manifest<'a>,
    arena: Region,
    devices: &[DeviceMem],
    kinds: &[Kind],
    placer: &mut Placer,
    now: Instant,
    entropy: &mut dyn FnMut() -> [u8; 32],
) -> Result<Scheduler<'static, 'a>, StartError<'a>> {
    let mut sched = Scheduler::new(manifest, devices).map_err(StartError::Route)?;
    for (i, c) in manifest.components().enumerate() {
        let k = kinds.iter().find(|k| k.name == c.kind).ok_or(StartError::UnknownKind(c.name, c.kind))?;
        let config = ConfigEnvelope::open(c.config, (k.layout)()).map_err(|e| StartError::Config(c.name, e))?;
        crate::log::set_current(i);
        // SAFETY: forwarded contract; this loop binds each component once.
        let mut binder = unsafe { LayoutBinder::new(manifest, arena, i, devices) }
            .map_err(|e| StartError::Fault(c.name, Fault::Bind(e)))?;
        let mut cx = Context::new(now, Signals::ALL, c.budget).with_seed(entropy());
        let task = (k.start)(&mut binder, config, &mut cx, placer).map_err(|f| StartError::Fault(c.name, f))?;
        crate::log::set_current(crate::log::MONITOR as usize);
        if let Some(port) = binder.unbound() {
            return Err(StartError::Unbound(c.name, port));
        }
        sched.add(i, task, c.budget, &mut cx);
    }
    Ok(sched)
}
