//! One process of the graph: what a forked child does, from mapping its
//! regions to running its event loop.
//!
//! The supervisor forks before it maps any shared region itself, so a child
//! starts with none; it maps exactly its own ports' regions (pools it only
//! reads through a read-only descriptor, so the mapping cannot be made
//! writable), then closes every descriptor but its wakes and its control
//! socket. What it can reach is what `system.toml` gave it.

use std::os::fd::RawFd;

use moat_component::{Context, Signals};

use crate::adapter::{clients::Clients, link::Frames, uplink::Uplink};
use crate::binder::{HostBinder, map_ports};
use crate::config::HostedConfig;
use crate::kinds::Task;
use crate::plan::{Plan, Role, Runs};
use crate::sys;
use crate::tap::{Offload, Tap};
use crate::worker::{self, Loop, Wakes};

/// Exit status of a process whose component faulted.
pub const EXIT_FAULT: i32 = 70;
/// Exit status of a process whose component panicked.
pub const EXIT_PANIC: i32 = 71;

/// The body of forked child `i`. Never returns.
pub fn child_main(
    plan: &Plan,
    i: usize,
    ctrl: RawFd,
    base_ns: u64,
    hosted: &HostedConfig,
    cpus: Option<&[usize]>,
) -> ! {
    sys::die_with_parent();
    sys::unblock_all_signals();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Some(cpus) = cpus {
            sys::set_cpus(cpus).map_err(|e| format!("cannot run on CPUs {cpus:?}: {e}"))?;
        }
        body(plan, i, ctrl, base_ns, hosted)
    }));
    let (code, msg) = match r {
        Ok(Ok(())) => (0, None),
        Ok(Err(msg)) => (EXIT_FAULT, Some(msg)),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "?".into());
            (EXIT_PANIC, Some(format!("panicked: {what}")))
        }
    };
    if let Some(m) = msg {
        let _ = sys::send_msg(ctrl, format!("fault {m}").as_bytes());
    }
    sys::exit_now(code)
}

/// Opens the adapter's TAPs and starts it.
fn start_adapter(role: Role, b: &mut HostBinder<'_>, hosted: &HostedConfig) -> Result<Box<dyn Task>, String> {
    match role {
        Role::Clients => {
            let offload = if hosted.offload.segmentation { Offload::Segmentation } else { Offload::Csum };
            let mut links: Vec<Box<dyn Frames>> = Vec::new();
            for c in &hosted.clients {
                let tap = Tap::open(&c.tap, c.netns.as_deref(), offload).map_err(|e| format!("client TAP: {e}"))?;
                links.push(Box::new(tap));
            }
            Clients::start(b, hosted.clients.clone(), links)
                .map(|c| Box::new(c) as Box<dyn Task>)
                .map_err(|f| worker::describe(&f))
        }
        Role::Uplink => {
            let u = hosted.uplink.clone().ok_or("the hosted config has no [uplink]")?;
            let offload = if hosted.offload.segmentation { Offload::Segmentation } else { Offload::None };
            let tap = Tap::open(&u.tap, u.netns.as_deref(), offload).map_err(|e| format!("uplink TAP: {e}"))?;
            Uplink::start(b, u, Box::new(tap)).map(|c| Box::new(c) as Box<dyn Task>).map_err(|f| worker::describe(&f))
        }
        Role::Control => Err("the control role is played by the supervisor".into()),
    }
}

fn body(plan: &Plan, i: usize, ctrl: RawFd, base_ns: u64, hosted: &HostedConfig) -> Result<(), String> {
    let spec = &plan.procs[i];
    sys::unmap_inherited("/memfd:moat:").map_err(|e| format!("cannot drop inherited mappings: {e}"))?;
    let regions = map_ports(plan, i).map_err(|e| format!("cannot map regions: {e}"))?;
    let mut keep = plan.keep_of(i);
    keep.push(ctrl);
    // Region descriptors go too: the mappings stay, and without a
    // descriptor a read-only mapping has no way to become writable.
    sys::close_all_but(&keep);
    // SAFETY: the regions are this process's mappings of spec's ports from
    // the same plan, and this is the process's only binder.
    let mut binder = unsafe { HostBinder::new(spec, regions) };
    let seed = sys::entropy().map_err(|e| format!("no entropy: {e}"))?;
    let mut cx = Context::new(worker::now(base_ns), Signals::ALL, spec.budget).with_seed(seed);
    let mut task = match spec.runs {
        Runs::Component(kind) => kind.start(&mut binder, &spec.config, &mut cx).map_err(|f| worker::describe(&f))?,
        Runs::Adapter(role) => start_adapter(role, &mut binder, hosted)?,
    };
    let _idle = match spec.runs {
        Runs::Adapter(_) => binder.bind_idle_control().map_err(|e| format!("cannot bind control ports: {e:?}"))?,
        Runs::Component(_) => Default::default(),
    };
    if let Some(port) = binder.unbound() {
        return Err(format!("port `{port}` was not bound: the crate and system.toml disagree"));
    }
    let mut wakes = Wakes::default();
    for (ch, mine, peer) in plan.wakes_of(i) {
        use std::os::fd::AsRawFd;
        wakes.mine.push((ch, mine.as_raw_fd()));
        wakes.peer.push((ch, peer.as_raw_fd()));
    }
    let mut lp = Loop::new(wakes, ctrl, task.fds(), spec.budget, base_ns).map_err(|e| e.to_string())?;
    lp.after_call(&mut cx).map_err(|e| e.to_string())?;
    sys::send_msg(ctrl, b"ready").map_err(|e| e.to_string())?;
    match lp.run(&mut *task) {
        worker::Ended::Stopped => Ok(()),
        worker::Ended::Fault(f) => Err(worker::describe(&f)),
        worker::Ended::Io(e) => Err(format!("event loop: {e}")),
    }
}
