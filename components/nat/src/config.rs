//! The NAT's configuration (`[component.nat] config` in `system.toml`) and
//! the state regions it implies.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::conn::Conn;
use crate::ports::{Record, records_for};
use crate::table::buckets;

/// Configuration. Every field has a default.
///
/// ```toml
/// config = { max_connections = 65536, max_per_client = 8192 }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatConfig {
    /// The firewall's address on the uplink: every client connection leaves
    /// from it (source NAT). Normally learnt at run time: netfront tells the
    /// NAT the address sys-net's toolstack gave it (the `uplink` port); a
    /// value here is used until then. Without either, nothing leaves for the
    /// uplink (dropped and counted, `drop.no_uplink`).
    #[serde(default)]
    pub uplink_ip: Option<Ipv4Addr>,
    /// The address clients know the firewall by (their gateway), the source
    /// of the ICMP errors moat sends them. Default: the uplink address (as in
    /// Qubes, where a client's gateway is its netvm's own address).
    #[serde(default)]
    pub gateway_ip: Option<Ipv4Addr>,
    /// Connections the table holds (default 65,536; 48 bytes each plus
    /// index and port records, see `BYTES_PER_CONNECTION`).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Connections one client may hold (default 8,192), which also bounds
    /// how many ports towards one destination a single client can take.
    #[serde(default = "default_max_per_client")]
    pub max_per_client: u32,
    /// Lowest uplink port (and ICMP identifier) given out (default 1024).
    #[serde(default = "default_port_min")]
    pub port_min: u16,
    /// Highest (default 65535).
    #[serde(default = "default_port_max")]
    pub port_max: u16,
    /// The uplink's MTU: a larger packet with DF set is answered with ICMP
    /// fragmentation-needed (default 1500).
    #[serde(default = "default_mtu")]
    pub uplink_mtu: u16,
    /// The DNS addresses clients are given (Qubes: 10.139.1.1, 10.139.1.2):
    /// a packet the rules marked `Dns` must be addressed to one of these.
    #[serde(default = "default_client_dns")]
    pub client_dns: [Ipv4Addr; 2],
    /// The uplink's real DNS servers, in the same order: redirected queries
    /// go there. Default: the same addresses (sys-net answers on them).
    #[serde(default = "default_client_dns")]
    pub dns_servers: [Ipv4Addr; 2],
    /// ICMP errors (rejects, time exceeded) one client may be sent per
    /// second (default 10) …
    #[serde(default = "default_icmp_rate")]
    pub icmp_per_client_per_sec: u32,
    /// … in bursts of at most this many (default 20).
    #[serde(default = "default_icmp_burst")]
    pub icmp_per_client_burst: u32,
    /// ICMP errors in all per second (Linux `icmp_msgs_per_sec`, 1000).
    #[serde(default = "default_icmp_total")]
    pub icmp_total_per_sec: u32,
    /// An established TCP connection or assured UDP stream is evicted to
    /// make room only after this many seconds idle (default 120); younger
    /// ones are never broken for a new connection, which is refused instead.
    #[serde(default = "default_min_idle")]
    pub established_min_idle_secs: u32,
}

fn default_max_connections() -> u32 {
    65536
}
fn default_max_per_client() -> u32 {
    8192
}
fn default_port_min() -> u16 {
    1024
}
fn default_port_max() -> u16 {
    65535
}
fn default_mtu() -> u16 {
    1500
}
fn default_client_dns() -> [Ipv4Addr; 2] {
    [Ipv4Addr::new(10, 139, 1, 1), Ipv4Addr::new(10, 139, 1, 2)]
}
fn default_icmp_rate() -> u32 {
    10
}
fn default_icmp_burst() -> u32 {
    20
}
fn default_icmp_total() -> u32 {
    1000
}
fn default_min_idle() -> u32 {
    120
}

/// Largest table supported (4 Mi connections, about 336 MiB of state).
pub const MAX_CONNECTIONS: u32 = 1 << 22;

/// State bytes per connection of capacity, all regions included: the entry
/// (48), its two bucket heads (8, at one bucket per entry when the capacity
/// is a power of two), and in the worst case one port block record (24) and
/// its bucket head (4) plus superblock records (under 1 byte).
pub const BYTES_PER_CONNECTION: usize = 48 + 8 + 24 + 4 + 1;

/// Sizes of the state regions, in items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Connection entries (`conns`).
    pub conns: usize,
    /// Bucket heads of both connection indexes (`conn_heads`).
    pub conn_heads: usize,
    /// Port records (`port_records`).
    pub records: usize,
    /// Their bucket heads (`port_heads`).
    pub record_heads: usize,
}

impl Sizes {
    /// Sizes for `max_connections` (clamped to the supported range, so that
    /// this never fails; `NatConfig::check` refuses what is outside it).
    pub const fn of(max_connections: u32) -> Sizes {
        let n = if max_connections < 16 {
            16
        } else if max_connections > MAX_CONNECTIONS {
            MAX_CONNECTIONS
        } else {
            max_connections
        } as usize;
        let records = records_for(n);
        Sizes { conns: n, conn_heads: 2 * buckets(n), records, record_heads: records.next_power_of_two() }
    }

    /// Bytes of each region, by port name.
    pub fn bytes(&self, out: &mut dyn FnMut(&'static str, usize)) {
        out("conns", self.conns * core::mem::size_of::<Conn>());
        out("conn_heads", self.conn_heads * 4);
        out("port_records", self.records * core::mem::size_of::<Record>());
        out("port_heads", self.record_heads * 4);
    }
}

/// True for an address a host may have.
pub fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() || a.octets()[0] >= 240)
}

impl NatConfig {
    /// A configuration with every default and this uplink address.
    pub fn new(uplink_ip: Ipv4Addr) -> Self {
        NatConfig {
            uplink_ip: Some(uplink_ip),
            gateway_ip: None,
            max_connections: default_max_connections(),
            max_per_client: default_max_per_client(),
            port_min: default_port_min(),
            port_max: default_port_max(),
            uplink_mtu: default_mtu(),
            client_dns: default_client_dns(),
            dns_servers: default_client_dns(),
            icmp_per_client_per_sec: default_icmp_rate(),
            icmp_per_client_burst: default_icmp_burst(),
            icmp_total_per_sec: default_icmp_total(),
            established_min_idle_secs: default_min_idle(),
        }
    }

    /// The gateway address in effect at start.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway_ip.or(self.uplink_ip)
    }

    /// Refuses settings the NAT cannot work with; the text names the field.
    pub fn check(&self) -> Result<Sizes, &'static str> {
        if !(16..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err("max_connections must be 16 to 4194304");
        }
        if self.max_per_client == 0 || self.max_per_client > self.max_connections {
            return Err("max_per_client must be 1 to max_connections");
        }
        if self.port_min == 0 || self.port_min > self.port_max {
            return Err("port_min must be at least 1 and at most port_max");
        }
        if !(576..=9216).contains(&self.uplink_mtu) {
            return Err("uplink_mtu must be 576 to 9216");
        }
        if !self.uplink_ip.iter().chain(&self.gateway_ip).all(|a| unicast(*a)) {
            return Err("uplink_ip and gateway_ip must be unicast addresses");
        }
        if !self.client_dns.iter().chain(&self.dns_servers).all(|a| unicast(*a)) {
            return Err("client_dns and dns_servers must be unicast addresses");
        }
        if self.icmp_per_client_burst == 0 || self.icmp_total_per_sec == 0 {
            return Err("icmp_per_client_burst and icmp_total_per_sec must be at least 1");
        }
        Ok(Sizes::of(self.max_connections))
    }
}
