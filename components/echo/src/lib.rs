//! `echo`: the smallest moat component, and the worked example of the
//! contract.
//!
//! It relays packet descriptors from `input` to `output` unchanged and counts
//! them. Buffers come back the way they went: what `output`'s consumer hands
//! back on `output_free` goes back upstream on `input_free`. A [`Custody`] set
//! catches a descriptor that arrives twice or comes back without having been
//! sent; both are counted and the descriptor is not forwarded.
#![no_std]
#![forbid(unsafe_code)]

use moat_component::{
    BindError, Binder, Component, Context, Custody, Fault, PacketDesc, PortDecl, Ports, Rx, Status, Tx,
};
use serde::{Deserialize, Serialize};

/// Configuration: nothing to configure but whether to count bytes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct EchoConfig {
    /// Count bytes as well as packets.
    pub count_bytes: bool,
}

/// Echo's ports.
pub struct EchoPorts {
    input: Rx<PacketDesc>,
    input_free: Tx<PacketDesc>,
    output: Tx<PacketDesc>,
    output_free: Rx<PacketDesc>,
    pool: moat_component::Pool,
}

impl Ports for EchoPorts {
    const DECL: &'static [PortDecl] = &[
        PortDecl::rx("input", "PacketDesc"),
        PortDecl::tx("input_free", "PacketDesc"),
        PortDecl::tx("output", "PacketDesc"),
        PortDecl::rx("output_free", "PacketDesc"),
        PortDecl::pool_ro("pool"),
    ];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(EchoPorts {
            input: b.rx("input")?,
            input_free: b.tx("input_free")?,
            output: b.tx("output")?,
            output_free: b.rx("output_free")?,
            pool: b.pool("pool")?,
        })
    }
}

/// The component.
pub struct Echo {
    config: EchoConfig,
    custody: Custody,
    packets: u64,
    bytes: u64,
    bad_descriptors: u64,
    bad_returns: u64,
}

impl Component for Echo {
    const NAME: &'static str = "echo";
    type Config = EchoConfig;
    type Ports = EchoPorts;

    fn init(config: EchoConfig, ports: &mut EchoPorts, _cx: &mut Context) -> Result<Self, Fault> {
        Ok(Echo {
            config,
            custody: Custody::new(*ports.pool.geometry()),
            packets: 0,
            bytes: 0,
            bad_descriptors: 0,
            bad_returns: 0,
        })
    }

    fn notified(&mut self, p: &mut EchoPorts, cx: &mut Context) -> Result<(), Fault> {
        // Returns first: they free space upstream and cost nothing.
        for _ in 0..cx.budget() {
            let Some(d) = p.output_free.pop()? else { break };
            match self.custody.give_back(&d) {
                Ok(_) => {
                    if !p.input_free.push(&d)? {
                        // Upstream's free ring holds every buffer it lent us,
                        // so it cannot be full: the peer lied about its size.
                        return Err(p.input_free.fault());
                    }
                }
                Err(_) => self.bad_returns += 1,
            }
        }
        // Forward at most what fits downstream, so nothing is held back here.
        let room = p.output.free()?.min(cx.budget());
        for _ in 0..room {
            let Some(d) = p.input.pop()? else { break };
            if self.custody.receive(&d).is_err() {
                self.bad_descriptors += 1;
                continue;
            }
            self.packets += 1;
            if self.config.count_bytes {
                self.bytes += u64::from(d.len);
            }
            let pushed = p.output.push(&d)?;
            debug_assert!(pushed, "room was checked");
        }
        p.output.flush(cx);
        p.input_free.flush(cx);
        p.input.finish(cx)?;
        p.output_free.finish(cx)?;
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        out.put("packets", self.packets);
        out.put("bytes", self.bytes);
        out.put("held", u64::from(self.custody.held()));
        out.put("drop.bad_descriptor", self.bad_descriptors);
        out.put("error.bad_return", self.bad_returns);
    }
}
