//! One tracked connection, its states and their timeouts, and the TCP
//! state machine.
//!
//! # Timeouts
//!
//! Linux conntrack's defaults (`/proc/sys/net/netfilter/nf_conntrack_*`,
//! unchanged from kernel 2.6 to 6.x except where noted), so a client sees
//! the same lifetimes behind moat as behind Linux sys-firewall:
//!
//! | state | timeout | Linux sysctl |
//! |---|---|---|
//! | TCP SYN_SENT, SYN_SENT2 | 120 s | `tcp_timeout_syn_sent` |
//! | TCP SYN_RECV | 60 s | `tcp_timeout_syn_recv` |
//! | TCP ESTABLISHED | 432000 s (5 days) | `tcp_timeout_established` |
//! | TCP FIN_WAIT | 120 s | `tcp_timeout_fin_wait` |
//! | TCP CLOSE_WAIT | 60 s | `tcp_timeout_close_wait` |
//! | TCP LAST_ACK | 30 s | `tcp_timeout_last_ack` |
//! | TCP TIME_WAIT | 120 s | `tcp_timeout_time_wait` |
//! | TCP CLOSE | 10 s | `tcp_timeout_close` |
//! | UDP unreplied, replied | 30 s | `udp_timeout` |
//! | UDP assured (stream) | 120 s | `udp_timeout_stream` (180 s before Linux 5.16) |
//! | ICMP query | 30 s | `icmp_timeout` |
//! | other protocols | 600 s | `generic_timeout` |
//!
//! Not modelled: Linux's shorter `tcp_timeout_max_retrans` /
//! `tcp_timeout_unacknowledged` (300 s) for connections with unacknowledged
//! data, which need sequence tracking (see [`tcp_step`]).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// No link (links are 1-based entry indices, so zeroed memory is empty).
pub const NIL: u32 = 0;

/// A connection-table entry: 48 bytes.
///
/// Links are 1-based indices (0 = none) so a zeroed state region is an empty
/// table. Ports are stored in host order. The outside remote address is the
/// client's destination unless `flags` says the connection was redirected to
/// a DNS server ([`Conn::dns`]).
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    /// Time of the last packet that refreshed it (ns since boot).
    pub last_seen: u64,
    /// Creation time, whole seconds since boot (UDP's 2-second stream rule).
    pub created_s: u32,
    /// The client's address.
    pub client_ip: [u8; 4],
    /// The destination as the client addressed it.
    pub remote_ip: [u8; 4],
    /// The client's port, or its ICMP query identifier.
    pub client_port: u16,
    /// The remote port, or the ICMP request type (8 echo, 13 timestamp, …).
    pub remote_port: u16,
    /// The port (or ICMP identifier) on the uplink side.
    pub nat_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// [`State`] code; 0 means the entry is free.
    pub state: u8,
    /// Client slot.
    pub slot: u8,
    /// [`flags`] bits.
    pub flags: u8,
    /// Padding (zero).
    pub pad: [u8; 2],
    /// Next entry in the outbound-key hash chain.
    pub next_out: u32,
    /// Next entry in the inbound-key hash chain.
    pub next_in: u32,
    /// Previous entry in its state's age list.
    pub prev_age: u32,
    /// Next entry in its state's age list (or in the free list).
    pub next_age: u32,
}

const _: () = assert!(core::mem::size_of::<Conn>() == 48);

/// Bits of [`Conn::flags`].
pub mod flags {
    /// The original (client) side sent a FIN.
    pub const FIN_ORIG: u8 = 1 << 0;
    /// The reply (remote) side sent a FIN.
    pub const FIN_REPLY: u8 = 1 << 1;
    /// Bits 2–3: DNS redirection, 0 = none, n = to DNS server n − 1.
    pub const DNS_SHIFT: u8 = 2;
    /// Mask of the DNS field.
    pub const DNS_MASK: u8 = 0b11 << DNS_SHIFT;
    /// Bits 4–7: bit `CHECK_SHIFT + k` set while re-check batch `k` names
    /// the connection ([`crate::recheck`]).
    pub const CHECK_SHIFT: u8 = 4;
}

impl Conn {
    /// The DNS server index this connection was redirected to.
    pub fn dns(&self) -> Option<usize> {
        match (self.flags & flags::DNS_MASK) >> flags::DNS_SHIFT {
            0 => None,
            n => Some(usize::from(n - 1)),
        }
    }

    /// The state, if the code is a known one (entries in the table always are).
    pub fn state(&self) -> Option<State> {
        State::from_code(self.state)
    }
}

/// A connection's state. Each state has one timeout and one eviction tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// SYN seen from the client.
    SynSent = 1,
    /// SYN/ACK seen from the remote.
    SynRecv,
    /// Handshake completed.
    Established,
    /// One side sent FIN.
    FinWait,
    /// The FIN was acknowledged; the other side still sends.
    CloseWait,
    /// Both sides sent FIN.
    LastAck,
    /// The last FIN was acknowledged.
    TimeWait,
    /// Reset.
    Close,
    /// Simultaneous open: a SYN came back while ours was outstanding.
    SynSent2,
    /// UDP, nothing back yet.
    UdpUnreplied,
    /// UDP, answered within its first 2 seconds (a DNS lookup).
    UdpReplied,
    /// UDP, still busy both ways after 2 seconds: a stream.
    UdpAssured,
    /// ICMP query, no reply yet.
    IcmpUnreplied,
    /// ICMP query, answered.
    IcmpReplied,
    /// Another protocol, nothing back yet.
    OtherUnreplied,
    /// Another protocol, answered.
    OtherReplied,
}

/// Number of states (list heads are indexed by `code - 1`).
pub const STATES: usize = 16;

/// Eviction tiers, first evicted first (see [`State::tier`]).
pub const TIERS: usize = 4;

impl State {
    /// Every state, in code order.
    pub const ALL: [State; STATES] = [
        State::SynSent,
        State::SynRecv,
        State::Established,
        State::FinWait,
        State::CloseWait,
        State::LastAck,
        State::TimeWait,
        State::Close,
        State::SynSent2,
        State::UdpUnreplied,
        State::UdpReplied,
        State::UdpAssured,
        State::IcmpUnreplied,
        State::IcmpReplied,
        State::OtherUnreplied,
        State::OtherReplied,
    ];

    /// The state of a code, if any.
    pub fn from_code(code: u8) -> Option<State> {
        State::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// Index of its age list.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// Idle time after which the connection is gone, in seconds.
    pub const fn timeout_secs(self) -> u64 {
        match self {
            State::SynSent | State::SynSent2 => 120,
            State::SynRecv => 60,
            State::Established => 432_000,
            State::FinWait => 120,
            State::CloseWait => 60,
            State::LastAck => 30,
            State::TimeWait => 120,
            State::Close => 10,
            State::UdpUnreplied | State::UdpReplied => 30,
            State::UdpAssured => 120,
            State::IcmpUnreplied | State::IcmpReplied => 30,
            State::OtherUnreplied | State::OtherReplied => 600,
        }
    }

    /// The timeout in nanoseconds.
    pub const fn timeout_ns(self) -> u64 {
        self.timeout_secs() * 1_000_000_000
    }

    /// Eviction tier: when the table is full, the oldest idle entry of the
    /// lowest non-empty tier goes first.
    ///
    /// 0. closed: TCP CLOSE, TIME_WAIT — the endpoints are done with it;
    /// 1. unreplied: nothing ever came back (scans, probes, dead servers);
    /// 2. other non-established: handshakes and closes under way, short
    ///    UDP exchanges, answered pings;
    /// 3. established TCP and assured UDP streams — evicted only when idle
    ///    for at least `established_min_idle`, so an active connection is
    ///    never broken to make room.
    pub const fn tier(self) -> usize {
        match self {
            State::Close | State::TimeWait => 0,
            State::SynSent | State::SynSent2 | State::UdpUnreplied | State::IcmpUnreplied | State::OtherUnreplied => 1,
            State::SynRecv
            | State::FinWait
            | State::CloseWait
            | State::LastAck
            | State::UdpReplied
            | State::IcmpReplied
            | State::OtherReplied => 2,
            State::Established | State::UdpAssured => 3,
        }
    }

    /// Counter name.
    pub const fn name(self) -> &'static str {
        match self {
            State::SynSent => "syn_sent",
            State::SynRecv => "syn_recv",
            State::Established => "established",
            State::FinWait => "fin_wait",
            State::CloseWait => "close_wait",
            State::LastAck => "last_ack",
            State::TimeWait => "time_wait",
            State::Close => "close",
            State::SynSent2 => "syn_sent2",
            State::UdpUnreplied => "udp_unreplied",
            State::UdpReplied => "udp_replied",
            State::UdpAssured => "udp_assured",
            State::IcmpUnreplied => "icmp_unreplied",
            State::IcmpReplied => "icmp_replied",
            State::OtherUnreplied => "other_unreplied",
            State::OtherReplied => "other_replied",
        }
    }
}

/// Which way a packet travels relative to the connection's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client to remote (the original direction).
    Orig,
    /// Remote to client (the reply direction).
    Reply,
}

/// What a TCP segment does to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Forward it; the connection is now in this state (refreshed).
    To(State),
    /// Forward it without changing or refreshing the connection (a late
    /// retransmission, or something the endpoint will answer with a reset).
    Ignore,
    /// Drop it: it cannot belong to this connection in this state.
    Invalid,
}

/// TCP flag bits as `moat_net::tcp::flags`.
mod tcpf {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const ACK: u16 = 0x010;
}

/// True for a segment that may open a connection: SYN without ACK, RST, FIN.
pub fn tcp_opens(tcp_flags: u16) -> bool {
    tcp_flags & (tcpf::SYN | tcpf::ACK | tcpf::RST | tcpf::FIN) == tcpf::SYN
}

/// The TCP state machine of a middlebox that sees both directions, after
/// Linux conntrack's (`nf_conntrack_proto_tcp.c`): the segment's strongest
/// flag (RST, then SYN/SYN+ACK, FIN, ACK) and its direction move the
/// connection on. It differs from Linux in one respect: which sides have
/// sent a FIN is remembered (`fin_bits`, updated here), so a retransmitted
/// FIN does not count as the other side closing.
///
/// Sequence numbers and windows are not tracked (Linux's `tcp_in_window`),
/// so out-of-window segments are not detected; the outside key already has
/// a random port, which is what an off-path attacker must guess.
pub fn tcp_step(state: State, dir: Dir, tcp_flags: u16, fin_bits: &mut u8) -> Step {
    use State::*;
    let f = tcp_flags;
    if f & tcpf::RST != 0 {
        return Step::To(Close);
    }
    let mine = match dir {
        Dir::Orig => flags::FIN_ORIG,
        Dir::Reply => flags::FIN_REPLY,
    };
    if f & tcpf::SYN != 0 {
        let synack = f & tcpf::ACK != 0;
        return match (dir, synack, state) {
            // Retransmitted SYN; a SYN after a finished connection reopens it
            // (RFC 1122 §4.2.2.13 lets the client reuse the tuple).
            (Dir::Orig, false, SynSent) => Step::To(SynSent),
            (Dir::Orig, false, SynSent2) => Step::To(SynSent2),
            (Dir::Orig, false, TimeWait | Close) => {
                *fin_bits = 0;
                Step::To(SynSent)
            }
            (Dir::Orig, false, _) => Step::Ignore,
            // Simultaneous open: our SYN/ACK to their SYN.
            (Dir::Orig, true, SynSent2) => Step::To(SynRecv),
            (Dir::Orig, true, _) => Step::Invalid,
            (Dir::Reply, false, SynSent) => Step::To(SynSent2),
            (Dir::Reply, false, _) => Step::Invalid,
            (Dir::Reply, true, SynSent | SynRecv) => Step::To(SynRecv),
            (Dir::Reply, true, SynSent2) => Step::Invalid,
            // A late SYN/ACK retransmission: the client answers it.
            (Dir::Reply, true, _) => Step::Ignore,
        };
    }
    if f & tcpf::FIN != 0 {
        return match state {
            SynSent | SynSent2 => Step::Invalid,
            SynRecv | Established | FinWait | CloseWait | LastAck => {
                *fin_bits |= mine;
                if *fin_bits == flags::FIN_ORIG | flags::FIN_REPLY { Step::To(LastAck) } else { Step::To(FinWait) }
            }
            TimeWait | Close => Step::To(state),
            _ => Step::Invalid,
        };
    }
    if f & tcpf::ACK != 0 {
        return match (state, dir) {
            // ACK before the SYN/ACK: from the client, nonsense; from the
            // remote, perhaps a half-open connection it will reset.
            (SynSent | SynSent2, Dir::Orig) => Step::Invalid,
            (SynSent | SynSent2, Dir::Reply) => Step::Ignore,
            (SynRecv, Dir::Orig) => Step::To(Established),
            (SynRecv, Dir::Reply) => Step::To(SynRecv),
            (Established, _) => Step::To(Established),
            // The side that did not close acknowledges the FIN.
            (FinWait, _) if *fin_bits & mine == 0 => Step::To(CloseWait),
            (FinWait, _) => Step::To(FinWait),
            (CloseWait, _) => Step::To(CloseWait),
            (LastAck | TimeWait, _) => Step::To(TimeWait),
            (Close, _) => Step::To(Close),
            _ => Step::Invalid,
        };
    }
    // No RST, SYN, FIN or ACK: no TCP stack sends that.
    Step::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u16 = tcpf::SYN;
    const SYNACK: u16 = tcpf::SYN | tcpf::ACK;
    const ACK: u16 = tcpf::ACK;
    const FINACK: u16 = tcpf::FIN | tcpf::ACK;
    const RST: u16 = tcpf::RST;

    fn run(steps: &[(Dir, u16)]) -> Vec<Step> {
        let mut s = State::SynSent;
        let mut fins = 0;
        steps
            .iter()
            .map(|&(d, f)| {
                let step = tcp_step(s, d, f, &mut fins);
                if let Step::To(n) = step {
                    s = n;
                }
                step
            })
            .collect()
    }

    use Dir::{Orig as O, Reply as R};
    use State::*;

    #[test]
    fn handshake_and_orderly_close() {
        let got =
            run(&[(O, SYN), (R, SYNACK), (O, ACK), (O, ACK), (R, ACK), (O, FINACK), (R, ACK), (R, FINACK), (O, ACK)]);
        let want = [SynSent, SynRecv, Established, Established, Established, FinWait, CloseWait, LastAck, TimeWait];
        assert_eq!(got, want.map(Step::To));
    }

    #[test]
    fn simultaneous_close_and_retransmitted_fin() {
        let got = run(&[(O, SYN), (R, SYNACK), (O, ACK), (O, FINACK), (O, FINACK), (R, FINACK), (R, ACK), (O, ACK)]);
        let want = [SynSent, SynRecv, Established, FinWait, FinWait, LastAck, TimeWait, TimeWait];
        assert_eq!(got, want.map(Step::To), "a retransmitted FIN is not the other side closing");
    }

    #[test]
    fn odd_segments() {
        assert_eq!(run(&[(O, SYN), (O, SYN)]), [Step::To(SynSent); 2], "retransmitted SYN");
        assert_eq!(run(&[(O, SYN), (O, ACK)]), [Step::To(SynSent), Step::Invalid]);
        assert_eq!(
            run(&[(O, SYN), (R, SYN), (O, SYNACK), (R, ACK)]),
            [SynSent, SynSent2, SynRecv, SynRecv].map(Step::To)
        );
        assert_eq!(run(&[(O, SYN), (R, RST)]), [Step::To(SynSent), Step::To(Close)]);
        assert_eq!(run(&[(O, SYN), (R, SYNACK), (O, ACK), (R, SYNACK)]).last(), Some(&Step::Ignore));
        assert_eq!(run(&[(O, SYN), (O, 0)]).last(), Some(&Step::Invalid));
        assert_eq!(run(&[(O, SYN), (O, RST), (O, SYN)]).last(), Some(&Step::To(SynSent)), "reopened");
        assert!(tcp_opens(SYN) && !tcp_opens(SYNACK) && !tcp_opens(ACK) && !tcp_opens(SYN | RST));
    }

    #[test]
    fn states_round_trip_and_have_timeouts() {
        for s in State::ALL {
            assert_eq!(State::from_code(s as u8), Some(s));
            assert!(s.timeout_secs() >= 10 && s.tier() < TIERS);
        }
        assert_eq!(State::from_code(0), None);
        assert_eq!(State::from_code(17), None);
    }
}
