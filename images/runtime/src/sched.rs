//! The monitor's scheduling loop: calls components when they have something
//! to do and carries their notifications along the rings the manifest wired.
//!
//! A component is *due* when one of its channels was signalled, when it asked
//! to run [`again`](moat_component::Context::again), or when its timer
//! ([`wake_at`](moat_component::Context::wake_at)) fell due. Each pass calls
//! every due component once, highest priority first, with the signals that
//! arrived for it; what it asks to notify is routed:
//!
//! * to the component at the other end of the ring whose channel it named
//!   (that component's channel for the same ring is set), or
//! * for a device port, to the outside party through the platform (a Xen
//!   event channel send).
//!
//! Events from outside (`Platform::take_events`) set the channel of the
//! device port they belong to. When nothing is due the loop asks the platform
//! to wait until the earliest timer or the next outside event.
//!
//! A component that returns a [`Fault`] is reported by name and never called
//! again; traffic through it stops (fail closed).

use moat_component::{Channel, Context, Fault, Instant, Signals, Status};

use crate::binder::DeviceMem;
use crate::instance::Task;
use crate::layout::{MAX_COMPONENTS, Manifest, PortKind, RUNTIME};

/// What an image provides to the loop: time, outside events, waiting.
pub trait Platform {
    /// Monotonic time.
    fn now(&mut self) -> Instant;
    /// Signals the outside party behind device event `event`.
    fn send(&mut self, event: u32);
    /// Hands every outside event that arrived since the last call to `sink`
    /// (and clears it).
    fn take_events(&mut self, sink: &mut dyn FnMut(u32));
    /// Waits until an outside event arrives or `deadline` passes (`None`:
    /// no timer pending). May return early.
    fn wait(&mut self, deadline: Option<Instant>);
    /// A component stopped with a fault.
    fn fault(&mut self, component: &str, fault: Fault);
}

/// Where a component's notification on one of its channels goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Not wired (a pool or state port has no channel).
    Nowhere,
    /// To component `task`'s channel `channel`.
    Local {
        /// Component index.
        task: u8,
        /// Its channel.
        channel: u8,
    },
    /// To a ring end the runtime plays and does not serve.
    Unserved,
    /// To the outside, through device `device` (index into the devices).
    External {
        /// Device index.
        device: u8,
    },
}

/// Why routes could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Port `i` is a device port whose device type the platform does not
    /// supply.
    NoDevice(usize),
    /// More devices than the loop tracks (64).
    TooManyDevices,
}

struct Slot<'t> {
    task: &'t mut dyn Task,
    budget: u32,
    pending: Signals,
    wake: Option<Instant>,
    again: bool,
    fault: Option<Fault>,
    calls: u64,
}

/// Most device ports a system may have.
pub const MAX_DEVICES: usize = 64;

/// The scheduling state of one system.
pub struct Scheduler<'t, 'a> {
    names: [&'a str; MAX_COMPONENTS],
    priority: [u8; MAX_COMPONENTS],
    slots: [Option<Slot<'t>>; MAX_COMPONENTS],
    routes: [[Route; Channel::MAX as usize]; MAX_COMPONENTS],
    /// Device event number → (component, channel), one per device port.
    inbound: [(u32, u8, u8); MAX_DEVICES],
    /// Event number of each platform device (index of Route::External).
    events: [u32; MAX_DEVICES],
    devices: usize,
    /// Devices to signal at the next pass (notifications made during init).
    ext_pending: u64,
    /// Notifications on channels that lead nowhere (a component bug).
    pub stray: u64,
    /// Notifications towards unserved runtime ends.
    pub unserved: u64,
    /// Passes that ran at least one component.
    pub passes: u64,
}

impl<'t, 'a> Scheduler<'t, 'a> {
    /// Routes for `manifest`; `devices` are the platform's device memories
    /// (their order gives the device indices of [`Route::External`]).
    pub fn new(manifest: &Manifest<'a>, devices: &[DeviceMem]) -> Result<Self, RouteError> {
        let mut s = Scheduler {
            names: [""; MAX_COMPONENTS],
            priority: [0; MAX_COMPONENTS],
            slots: [const { None }; MAX_COMPONENTS],
            routes: [[Route::Nowhere; Channel::MAX as usize]; MAX_COMPONENTS],
            inbound: [(0, 0, 0); MAX_DEVICES],
            events: [0; MAX_DEVICES],
            devices: 0,
            ext_pending: 0,
            stray: 0,
            unserved: 0,
            passes: 0,
        };
        if devices.len() > MAX_DEVICES {
            return Err(RouteError::TooManyDevices);
        }
        for (i, d) in devices.iter().enumerate() {
            s.events[i] = d.event;
        }
        for (i, c) in manifest.components().enumerate() {
            s.names[i] = c.name;
            s.priority[i] = c.priority;
        }
        for (i, p) in manifest.ports() {
            if p.component == RUNTIME {
                continue;
            }
            let (from, ch) = (p.component as usize, p.channel as usize);
            match p.kind {
                PortKind::Rx | PortKind::Tx => {
                    // parse() guarantees a peer on every ring, with a channel
                    // unless the runtime plays it.
                    s.routes[from][ch] = match manifest.peer(i) {
                        Some((_, q)) if q.component == RUNTIME => Route::Unserved,
                        Some((_, q)) => Route::Local { task: q.component as u8, channel: q.channel },
                        None => Route::Nowhere,
                    };
                }
                PortKind::Device => {
                    let d = devices.iter().position(|d| d.kind == p.message).ok_or(RouteError::NoDevice(i))?;
                    s.routes[from][ch] = Route::External { device: d as u8 };
                    if s.devices == MAX_DEVICES {
                        return Err(RouteError::TooManyDevices);
                    }
                    s.inbound[s.devices] = (devices[d].event, p.component as u8, p.channel);
                    s.devices += 1;
                }
                PortKind::Pool | PortKind::State => {}
            }
        }
        Ok(s)
    }

    /// Where component `task`'s channel `ch` leads.
    pub fn route(&self, task: usize, ch: Channel) -> Route {
        self.routes[task][ch.index() as usize]
    }

    /// Starts scheduling component `index` (its manifest index), which was
    /// just initialised with `init_cx`: its requests from `init` are applied,
    /// and its first call gets every channel.
    pub fn add(&mut self, index: usize, task: &'t mut dyn Task, budget: u32, init_cx: &mut Context) {
        let slot = Slot {
            task,
            budget,
            pending: Signals::ALL,
            wake: init_cx.requested_wake(),
            again: init_cx.wants_again(),
            fault: None,
            calls: 0,
        };
        self.slots[index] = Some(slot);
        let notify = init_cx.take_notify();
        self.deliver(index, notify, None);
    }

    fn deliver(&mut self, from: usize, notify: Signals, mut platform: Option<&mut dyn Platform>) {
        for ch in notify.iter() {
            match self.routes[from][ch.index() as usize] {
                Route::Nowhere => self.stray += 1,
                Route::Unserved => self.unserved += 1,
                Route::Local { task, channel } => {
                    if let (Some(slot), Some(c)) = (self.slots[task as usize].as_mut(), Channel::new(channel)) {
                        slot.pending.insert(c);
                    }
                }
                Route::External { device } => match platform.as_deref_mut() {
                    Some(p) => p.send(self.inbound_event(device)),
                    None => self.ext_pending |= 1 << device,
                },
            }
        }
    }

    fn inbound_event(&self, device: u8) -> u32 {
        self.events[device as usize]
    }

    fn order(&self) -> ([u8; MAX_COMPONENTS], usize) {
        let mut order = [0u8; MAX_COMPONENTS];
        let mut n = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if s.is_some() {
                order[n] = i as u8;
                n += 1;
            }
        }
        // Highest priority first; equal priorities keep manifest order.
        order[..n].sort_unstable_by_key(|&i| (core::cmp::Reverse(self.priority[i as usize]), i));
        (order, n)
    }

    /// One pass: takes outside events, then calls every due component once.
    /// Returns how many components ran.
    pub fn run_once(&mut self, platform: &mut dyn Platform) -> usize {
        let inbound = &self.inbound[..self.devices];
        let slots = &mut self.slots;
        platform.take_events(&mut |event| {
            for &(e, task, channel) in inbound {
                if e == event
                    && let (Some(slot), Some(c)) = (slots[task as usize].as_mut(), Channel::new(channel))
                {
                    slot.pending.insert(c);
                }
            }
        });
        while self.ext_pending != 0 {
            let d = self.ext_pending.trailing_zeros() as u8;
            self.ext_pending &= !(1 << d);
            platform.send(self.inbound_event(d));
        }
        let now = platform.now();
        let (order, n) = self.order();
        let mut ran = 0;
        for &i in &order[..n] {
            let i = i as usize;
            let Some(slot) = self.slots[i].as_mut() else { continue };
            let timer = slot.wake.is_some_and(|w| w <= now);
            if slot.fault.is_some() || !(timer || slot.again || !slot.pending.is_empty()) {
                continue;
            }
            if timer {
                slot.wake = None;
            }
            let mut cx = Context::new(now, core::mem::take(&mut slot.pending), slot.budget);
            slot.calls += 1;
            ran += 1;
            crate::log::set_current(i);
            let result = slot.task.notified(&mut cx);
            crate::log::set_current(crate::log::MONITOR as usize);
            if let Err(f) = result {
                slot.fault = Some(f);
                platform.fault(self.names[i], f);
                continue;
            }
            slot.again = cx.wants_again();
            if let Some(w) = cx.requested_wake() {
                slot.wake = Some(slot.wake.map_or(w, |old| old.min(w)));
            }
            let notify = cx.take_notify();
            self.deliver(i, notify, Some(platform));
        }
        if ran > 0 {
            self.passes += 1;
        }
        ran
    }

    /// True if some component is due without waiting.
    pub fn busy(&self) -> bool {
        self.slots.iter().flatten().any(|s| s.fault.is_none() && (s.again || !s.pending.is_empty()))
    }

    /// The earliest timer of a running component.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().filter(|s| s.fault.is_none()).filter_map(|s| s.wake).min()
    }

    /// Runs passes until `stop` says so, waiting on the platform whenever
    /// nothing is due.
    pub fn run_until(&mut self, platform: &mut dyn Platform, mut stop: impl FnMut(&Self, Instant) -> bool) {
        loop {
            let ran = self.run_once(platform);
            let now = platform.now();
            if stop(self, now) {
                return;
            }
            if ran == 0 && !self.busy() {
                platform.wait(self.next_deadline());
            }
        }
    }

    /// Instance name of component `i`.
    pub fn name(&self, i: usize) -> &'a str {
        self.names[i]
    }

    /// Index of the running component called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.slots.iter().enumerate().position(|(i, s)| s.is_some() && self.names[i] == name)
    }

    /// Component `i`'s counters.
    pub fn status(&self, i: usize, out: &mut dyn Status) {
        if let Some(s) = self.slots[i].as_ref() {
            s.task.status(out);
        }
    }

    /// One counter of component `i`.
    pub fn counter(&self, i: usize, key: &str) -> Option<u64> {
        let mut v = None;
        self.status(
            i,
            &mut moat_component::StatusFn(|k: &str, x| {
                if k == key {
                    v = Some(x)
                }
            }),
        );
        v
    }

    /// The first component that faulted, if any.
    pub fn faulted(&self) -> Option<(&'a str, Fault)> {
        self.slots.iter().enumerate().find_map(|(i, s)| Some((self.names[i], s.as_ref()?.fault?)))
    }

    /// Calls made to component `i`.
    pub fn calls(&self, i: usize) -> u64 {
        self.slots[i].as_ref().map_or(0, |s| s.calls)
    }
}
