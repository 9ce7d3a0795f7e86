//! Announces the self-test's client (xenstore's role in a real system) to
//! the components that keep per-client state, once, on its first call.
#![forbid(unsafe_code)]

use moat_component::{BindError, Binder, Component, Context, Fault, MsgTx, PortDecl, Ports, Status};
use moat_control::ClientEvent;
use serde::{Deserialize, Serialize};

/// Configuration: the one client.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ClientsConfig {
    /// Its slot.
    pub slot: u8,
    /// Its address.
    pub ipv4: [u8; 4],
}

/// Where the announcement goes (named as xenstore's ports are).
pub struct ClientsPorts {
    to_rules: MsgTx,
    to_nat: MsgTx,
}

impl Ports for ClientsPorts {
    const DECL: &'static [PortDecl] =
        &[PortDecl::tx("clients_to_rules", ClientEvent::NAME), PortDecl::tx("clients_to_nat", ClientEvent::NAME)];

    fn bind<B: Binder>(b: &mut B) -> Result<Self, BindError> {
        Ok(ClientsPorts {
            to_rules: b.msg_tx("clients_to_rules", ClientEvent::NAME)?,
            to_nat: b.msg_tx("clients_to_nat", ClientEvent::NAME)?,
        })
    }
}

/// The component.
pub struct Clients {
    cfg: ClientsConfig,
    sent: u64,
}

impl Component for Clients {
    const NAME: &'static str = "selftest-clients";
    type Config = ClientsConfig;
    type Ports = ClientsPorts;

    fn init(cfg: ClientsConfig, _p: &mut ClientsPorts, _cx: &mut Context) -> Result<Self, Fault> {
        Ok(Clients { cfg, sent: 0 })
    }

    fn notified(&mut self, p: &mut ClientsPorts, cx: &mut Context) -> Result<(), Fault> {
        if self.sent == 0 {
            let up =
                ClientEvent::Up { slot: self.cfg.slot, ipv4: self.cfg.ipv4, ipv6: None, mac: [0, 0x16, 0x3e, 0, 0, 5] };
            let mut scratch = [0u8; 64];
            for tx in [&mut p.to_rules, &mut p.to_nat] {
                if !tx.send(&up, &mut scratch)? {
                    return Err(Fault::Internal("a fresh control ring has no room for one event"));
                }
                self.sent += 1;
            }
            defmt::info!("clients: client {=u8} is {=[u8]:?}", self.cfg.slot, self.cfg.ipv4[..]);
        }
        p.to_rules.flush(cx);
        p.to_nat.flush(cx);
        Ok(())
    }

    fn status(&self, out: &mut dyn Status) {
        out.put("sent", self.sent);
    }
}
