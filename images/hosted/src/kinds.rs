//! The component types the hosted image can run, and the [`Task`] object a
//! process's event loop calls (a component or a TAP adapter).
//!
//! Adding a component: one line in [`KINDS`] (and the crate as a
//! dependency), next to its line in `tools/system/src/registry.rs`.

use std::os::fd::RawFd;

use moat_component::{Component, Context, Fault, Ports, Status};

use crate::binder::HostBinder;

/// What a process's event loop drives.
pub trait Task {
    /// One call: `Component::notified` for components.
    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault>;
    /// Counters.
    fn status(&self, out: &mut dyn Status);
    /// Extra descriptors to watch for input (TAP devices). Readiness of
    /// descriptor `i` arrives as channel `63 - i` in `Context::signals`.
    fn fds(&self) -> Vec<RawFd> {
        Vec::new()
    }
    /// Which of [`fds`](Self::fds) the task can take input from now (bit
    /// `i`): an adapter with no free buffer stops watching its TAP instead
    /// of spinning on it.
    fn wants_input(&self) -> u64 {
        u64::MAX
    }
}

/// A started component and its ports.
pub struct Instance<C: Component> {
    component: C,
    ports: C::Ports,
}

impl<C: Component> Task for Instance<C> {
    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault> {
        self.component.notified(&mut self.ports, cx)
    }
    fn status(&self, out: &mut dyn Status) {
        self.component.status(out)
    }
}

/// Decodes the config blob, binds the ports, runs `init`.
pub type StartFn = fn(&mut HostBinder<'_>, &[u8], &mut Context) -> Result<Box<dyn Task>, Fault>;

/// A component type the hosted image links in.
#[derive(Debug)]
pub struct Kind {
    /// `Component::NAME` (what the registry entry says).
    pub name: &'static str,
    start: StartFn,
}

impl Kind {
    /// Starts an instance with `binder`'s ports.
    pub fn start(&self, binder: &mut HostBinder<'_>, config: &[u8], cx: &mut Context) -> Result<Box<dyn Task>, Fault> {
        (self.start)(binder, config, cx)
    }
}

fn start<C: Component + 'static>(
    binder: &mut HostBinder<'_>,
    config: &[u8],
    cx: &mut Context,
) -> Result<Box<dyn Task>, Fault> {
    let config: C::Config =
        postcard::from_bytes(config).map_err(|_| Fault::Config("configuration blob does not decode"))?;
    let mut ports = C::Ports::bind(binder)?;
    let component = C::init(config, &mut ports, cx)?;
    Ok(Box::new(Instance::<C> { component, ports }))
}

/// The [`Kind`] of `C`.
pub const fn kind<C: Component + 'static>() -> Kind {
    Kind { name: C::NAME, start: start::<C> }
}

/// Every component type the hosted image can run.
pub static KINDS: &[Kind] =
    &[kind::<moat_echo::Echo>(), kind::<moat_csum::Csum>(), kind::<moat_rules::Rules>(), kind::<moat_nat::Nat>()];

/// The kind named `name` (`Component::NAME`).
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}
