//! Running components of different types side by side: the [`Task`] object
//! the scheduler calls, and a [`Placer`] that gives each one its own pages.
//!
//! An image has no heap; each started component (its state and its bound
//! ports) is moved into fresh, page-aligned memory from a [`Placer`], so no
//! two components share a page and a later runtime can map each component's
//! pages into its own address space.

use moat_component::{Binder, Component, Context, Fault, Ports, Status};

/// A started component, as the scheduler sees it.
pub trait Task {
    /// The component's `Component::NAME` (its code, not its instance name).
    fn kind(&self) -> &'static str;
    /// One call of `Component::notified`.
    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault>;
    /// The component's counters.
    fn status(&self, out: &mut dyn Status);
}

/// A component and its bound ports.
pub struct Instance<C: Component> {
    component: C,
    ports: C::Ports,
}

impl<C: Component> Instance<C> {
    /// Decodes the configuration blob (postcard), binds the ports and runs
    /// `init`.
    pub fn start<B: Binder>(binder: &mut B, config: &[u8], cx: &mut Context) -> Result<Self, Fault> {
        let config: C::Config =
            postcard::from_bytes(config).map_err(|_| Fault::Config("configuration blob does not decode"))?;
        let mut ports = C::Ports::bind(binder)?;
        let component = C::init(config, &mut ports, cx)?;
        Ok(Instance { component, ports })
    }

    /// The component (for tests and reports).
    pub fn component(&self) -> &C {
        &self.component
    }
}

impl<C: Component> Task for Instance<C> {
    fn kind(&self) -> &'static str {
        C::NAME
    }

    fn notified(&mut self, cx: &mut Context) -> Result<(), Fault> {
        self.component.notified(&mut self.ports, cx)
    }

    fn status(&self, out: &mut dyn Status) {
        self.component.status(out)
    }
}

/// RAM an image sets aside for the started components themselves (each
/// `Instance` in pages of its own; their large tables are state regions in
/// the arena, so this stays small). Reports count it.
pub const COMPONENT_RESERVE: u64 = 2 << 20;

/// Page size the placer aligns to.
pub const PAGE: usize = 4096;

/// Hands out page-aligned, page-rounded pieces of one memory range, for
/// good (nothing is ever freed).
pub struct Placer {
    base: *mut u8,
    len: usize,
    used: usize,
}

impl Placer {
    /// A placer over `base..base + len`.
    ///
    /// # Safety
    ///
    /// The range must be writable memory that nothing else uses, valid for
    /// the rest of the program.
    pub unsafe fn new(base: *mut u8, len: usize) -> Self {
        Placer { base, len, used: 0 }
    }

    /// Bytes handed out so far (including alignment).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Moves `value` into pages of its own; gives it back if it does not fit.
    pub fn place<T: 'static>(&mut self, value: T) -> Result<&'static mut T, T> {
        let align = core::mem::align_of::<T>().max(PAGE);
        let addr = self.base.addr() + self.used;
        let start = addr.next_multiple_of(align) - self.base.addr();
        let size = core::mem::size_of::<T>().max(1).next_multiple_of(PAGE);
        let Some(end) = start.checked_add(size).filter(|&e| e <= self.len) else { return Err(value) };
        // SAFETY: start + size <= len, so the range is inside the placer's
        // memory, aligned for T, and never handed out before (used only
        // grows); new()'s contract makes it ours for good.
        let slot = unsafe {
            let p = self.base.add(start).cast::<T>();
            p.write(value);
            &mut *p
        };
        self.used = end;
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_gets_its_own_pages() {
        let layout = std::alloc::Layout::from_size_align(4 * PAGE, PAGE).unwrap();
        // SAFETY: non-zero size; freed at the end, after the last use.
        let base = unsafe { std::alloc::alloc_zeroed(layout) };
        // SAFETY: fresh, leaked memory nothing else uses.
        let mut p = unsafe { Placer::new(base, 4 * PAGE) };
        let a = p.place([1u64; 10]).unwrap();
        let b = p.place([2u8; PAGE + 1]).unwrap();
        let c = p.place(7u32).unwrap();
        assert_eq!(a[9], 1);
        assert_eq!(b[PAGE], 2);
        assert_eq!(*c, 7);
        assert_eq!(a.as_ptr().addr() % PAGE, 0);
        assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), PAGE);
        assert_eq!((c as *mut u32).addr() - b.as_ptr().addr(), 2 * PAGE);
        assert_eq!(p.used(), 4 * PAGE);
        assert_eq!(p.place(1u8).unwrap_err(), 1, "full");
        a[0] = 5;
        assert_eq!(b[0], 2, "values do not overlap");
        // SAFETY: the placed values (plain data, no Drop) are not used again.
        unsafe { std::alloc::dealloc(base, layout) };
    }
}
