//! The hosted config: which TAP devices stand in for the client VMs and for
//! sys-net, and which components the adapters play.
//!
//! ```toml
//! [uplink]                        # in place of netfront (and sys-net's settings)
//! tap = "moat-up"                 # created if it does not exist
//! netns = "sys-net"               # optional: the TAP lives in this network namespace
//! address = "10.138.0.2"          # moat's address towards sys-net
//! gateway = "10.138.0.1"          # sys-net's address; its MAC is found with ARP
//! dns = ["10.139.1.1", "10.139.1.2"]
//! mac = "02:6d:6f:61:74:01"       # optional: moat's MAC on the uplink
//!
//! [[client]]                      # one per client VM, in place of netback's vifs
//! name = "work"                   # optional: its VM name, for policies that name clients
//! tap = "moat-c1"
//! netns = "work"                  # optional
//! ip = "10.137.0.10"
//! mac = "00:16:3e:5e:6c:00"       # the client's MAC (frames from any other are dropped)
//!
//! [substitute]                    # optional: instance name = "clients" | "uplink" | "control"
//! netback = "clients"             # default: by crate (components/netback, netfront, xenstore)
//!
//! [offload]                       # optional
//! segmentation = true             # default: TSO through the graph (see docs/hosted.md)
//!
//! [sched]                         # optional
//! cpus = [1]                      # the CPUs the graph's processes share; [] lets
//!                                 # the kernel place them; default: the last CPU
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use moat_net::ethernet::Mac;
use serde::Deserialize;

use crate::adapter::link::parse_mac;
use crate::plan::Role;

/// The MAC clients see for every address (Qubes' netback convention).
pub const CLIENT_GATEWAY_MAC: Mac = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff];

/// moat's uplink MAC unless configured: locally administered, "moat".
pub const DEFAULT_UPLINK_MAC: Mac = [0x02, 0x6d, 0x6f, 0x61, 0x74, 0x01];

/// The whole hosted config.
#[derive(Clone, Debug, Default)]
pub struct HostedConfig {
    /// Client TAPs, slot = index.
    pub clients: Vec<Client>,
    /// The uplink TAP.
    pub uplink: Option<Uplink>,
    /// Substitutions by instance name.
    pub substitute: Vec<(String, Role)>,
    /// What the TAPs offload, and what the graph is laid out for.
    pub offload: Offload,
    /// Where the graph's processes run.
    pub cpus: Cpus,
}

/// The CPUs the graph's processes may run on (all of them the same set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cpus {
    /// One CPU, the highest-numbered the supervisor may use: every hand-off
    /// between processes is then a wake-up on the same CPU, which costs far
    /// less (and waits far less behind other work) than one across CPUs.
    #[default]
    One,
    /// Wherever the kernel puts them.
    Any,
    /// These.
    List(Vec<usize>),
}

impl Cpus {
    /// The set to restrict every process to, if any, checked against the
    /// CPUs this process may use.
    pub fn resolve(&self) -> Result<Option<Vec<usize>>, String> {
        let allowed = crate::sys::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
        match self {
            Cpus::Any => Ok(None),
            Cpus::One => Ok(allowed.last().map(|&c| vec![c])),
            Cpus::List(l) => match l.iter().find(|c| !allowed.contains(c)) {
                Some(c) => Err(format!("sched.cpus: CPU {c} is not one this process may use ({allowed:?})")),
                None => Ok(Some(l.clone())),
            },
        }
    }
}

/// Offloads between the kernel and the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offload {
    /// TCP segmentation offload end to end: both TAPs hand over and take
    /// TCP/IPv4 super-packets of up to 64 KiB (and partial checksums, which
    /// TSO needs), the pools' buffers are raised to 64 KiB, and csum is told
    /// the uplink negotiated checksum offload. Off: 1500-byte frames, the
    /// pools as `system.toml` has them, checksum offload from clients only
    /// (what the Xen image does).
    pub segmentation: bool,
}

impl Default for Offload {
    fn default() -> Self {
        Offload { segmentation: true }
    }
}

/// One client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// TAP name.
    pub tap: String,
    /// Network namespace holding the TAP.
    pub netns: Option<String>,
    /// The client's IPv4 address.
    pub ip: Ipv4Addr,
    /// The client's MAC.
    pub mac: Mac,
    /// Its Qubes VM name, for policies that name clients.
    pub name: Option<String>,
}

/// The uplink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// TAP name.
    pub tap: String,
    /// Network namespace holding the TAP.
    pub netns: Option<String>,
    /// moat's address.
    pub address: Ipv4Addr,
    /// The gateway (sys-net).
    pub gateway: Ipv4Addr,
    /// DNS servers behind the gateway.
    pub dns: Vec<Ipv4Addr>,
    /// moat's MAC on the uplink.
    pub mac: Mac,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    client: Vec<RawClient>,
    uplink: Option<RawUplink>,
    #[serde(default)]
    substitute: BTreeMap<String, String>,
    offload: Option<RawOffload>,
    sched: Option<RawSched>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSched {
    cpus: Option<Vec<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffload {
    segmentation: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<String>,
    tap: String,
    netns: Option<String>,
    ip: Ipv4Addr,
    mac: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUplink {
    tap: String,
    netns: Option<String>,
    address: Ipv4Addr,
    gateway: Ipv4Addr,
    #[serde(default)]
    dns: Vec<Ipv4Addr>,
    mac: Option<String>,
}

impl HostedConfig {
    /// Reads a hosted config file.
    pub fn load(path: &Path) -> Result<HostedConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and checks the text of a hosted config.
    pub fn parse(text: &str) -> Result<HostedConfig, String> {
        let raw: Raw = toml::from_str(text).map_err(|e| e.to_string())?;
        let mac = |s: &str, what: &str| parse_mac(s).ok_or(format!("{what}: `{s}` is not a MAC (aa:bb:cc:dd:ee:ff)"));
        let mut clients = Vec::new();
        for (i, c) in raw.client.into_iter().enumerate() {
            let client = Client {
                mac: mac(&c.mac, &format!("client {i}"))?,
                tap: c.tap,
                netns: c.netns,
                ip: c.ip,
                name: c.name,
            };
            if clients.iter().any(|o: &Client| o.tap == client.tap && o.netns == client.netns) {
                return Err(format!("client {i}: TAP `{}` is used twice", client.tap));
            }
            if clients.iter().any(|o: &Client| o.ip == client.ip) {
                return Err(format!("client {i}: address {} is used twice", client.ip));
            }
            clients.push(client);
        }
        if clients.len() > usize::from(moat_net::meta::Iface::MAX_CLIENTS) {
            return Err(format!("at most {} clients", moat_net::meta::Iface::MAX_CLIENTS));
        }
        let uplink = match raw.uplink {
            Some(u) => Some(Uplink {
                mac: match &u.mac {
                    Some(m) => mac(m, "uplink")?,
                    None => DEFAULT_UPLINK_MAC,
                },
                tap: u.tap,
                netns: u.netns,
                address: u.address,
                gateway: u.gateway,
                dns: u.dns,
            }),
            None => None,
        };
        let mut substitute = Vec::new();
        for (name, role) in raw.substitute {
            let r = Role::parse(&role)
                .ok_or(format!("substitute.{name}: `{role}` is not a role (clients, uplink or control)"))?;
            substitute.push((name, r));
        }
        let mut offload = Offload::default();
        if let Some(seg) = raw.offload.and_then(|o| o.segmentation) {
            offload.segmentation = seg;
        }
        let cpus = match raw.sched.and_then(|s| s.cpus) {
            None => Cpus::One,
            Some(l) if l.is_empty() => Cpus::Any,
            Some(l) => Cpus::List(l),
        };
        Ok(HostedConfig { clients, uplink, substitute, offload, cpus })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let c = HostedConfig::parse(
            r#"
            [uplink]
            tap = "up0"
            address = "10.138.0.2"
            gateway = "10.138.0.1"
            dns = ["10.139.1.1"]
            [[client]]
            tap = "c0"
            netns = "work"
            ip = "10.137.0.10"
            mac = "00:16:3e:00:00:01"
            [substitute]
            back = "clients"
            "#,
        )
        .unwrap();
        assert_eq!(c.clients[0].mac, [0, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(c.clients[0].netns.as_deref(), Some("work"));
        let u = c.uplink.unwrap();
        assert_eq!((u.gateway, u.mac), (Ipv4Addr::new(10, 138, 0, 1), DEFAULT_UPLINK_MAC));
        assert_eq!(c.substitute, [("back".to_string(), Role::Clients)]);
        assert!(c.offload.segmentation, "on unless turned off");
        let off = HostedConfig::parse("[offload]\nsegmentation = false").unwrap();
        assert!(!off.offload.segmentation);
        assert_eq!(c.cpus, Cpus::One);
        assert_eq!(HostedConfig::parse("[sched]\ncpus = []").unwrap().cpus, Cpus::Any);
        assert_eq!(HostedConfig::parse("[sched]\ncpus = [0]").unwrap().cpus, Cpus::List(vec![0]));
        assert_eq!(Cpus::Any.resolve(), Ok(None));
        assert_eq!(Cpus::One.resolve().unwrap().map(|l| l.len()), Some(1));
        assert!(Cpus::List(vec![100_000]).resolve().unwrap_err().contains("CPU 100000"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| HostedConfig::parse(t).unwrap_err();
        assert!(e("[[client]]\ntap='a'\nip='10.0.0.1'\nmac='zz'").contains("client 0: `zz` is not a MAC"));
        assert!(e("[[client]]\ntap='a'\nip='10.0.0.300'\nmac='00:00:00:00:00:01'").contains("invalid"));
        let twice = "[[client]]\ntap='a'\nip='10.0.0.1'\nmac='00:00:00:00:00:01'\n\
                     [[client]]\ntap='b'\nip='10.0.0.1'\nmac='00:00:00:00:00:02'";
        assert!(e(twice).contains("address 10.0.0.1 is used twice"));
        assert!(e("[substitute]\nnetback='tap'").contains("not a role"));
        assert!(e("colour = 'blue'").contains("unknown field"));
        assert!(e("[offload]\ntso = true").contains("unknown field"));
    }
}
