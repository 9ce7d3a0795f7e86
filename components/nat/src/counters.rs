//! Every counter the NAT keeps, with the stable name `status` shows.

macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum C {
            $($(#[$doc])* $variant,)*
        }

        impl C {
            /// Every counter, in index order.
            pub const ALL: &'static [C] = &[$(C::$variant,)*];
            /// Its status name.
            pub const fn name(self) -> &'static str {
                match self { $(C::$variant => $name,)* }
            }
        }
    };
}

counters! {
    /// Connections created.
    Created => "conn.created",
    /// Connections removed by their state's timeout.
    Expired => "conn.expired",
    /// Closed (TCP CLOSE/TIME_WAIT) connections evicted for room.
    EvictedClosed => "conn.evicted.closed",
    /// Unreplied connections evicted for room.
    EvictedUnreplied => "conn.evicted.unreplied",
    /// Other non-established connections evicted for room.
    EvictedOther => "conn.evicted.other",
    /// Established/assured connections evicted for room (idle long enough).
    EvictedEstablished => "conn.evicted.established",
    /// A client's closed connection removed to make room for a new one of
    /// the same client, at its `max_per_client` limit.
    EvictedClientLimit => "conn.evicted.client_limit",
    /// Connections removed because their client went away.
    RemovedClientDown => "conn.removed.client_down",
    /// Connections removed because the rules no longer allow them.
    RemovedByRules => "conn.removed.rules",
    /// New connection refused: table full of active established connections.
    RefusedTableFull => "refused.table_full",
    /// New connection refused: a hash chain is full.
    RefusedChain => "refused.chain_full",
    /// New connection refused: the client is at its limit.
    RefusedClientLimit => "refused.client_limit",
    /// New connection refused: every port towards the destination is taken.
    RefusedPorts => "refused.ports_exhausted",
    /// New connection refused: a port record could not be stored.
    RefusedPortRecord => "refused.port_record",
    /// Packets translated to the uplink.
    Outbound => "pass.outbound",
    /// Packets translated back to clients.
    Inbound => "pass.inbound",
    /// Client-to-client packets delivered (not translated).
    InterVm => "pass.inter_vm",
    /// DNS queries redirected.
    DnsRedirected => "pass.dns",
    /// ICMP errors from the uplink translated back.
    IcmpErrorsIn => "pass.icmp_error_in",
    /// ICMP errors from clients translated out.
    IcmpErrorsOut => "pass.icmp_error_out",
    /// Rejects answered with ICMP administratively prohibited.
    SentReject => "icmp.sent.reject",
    /// TTL expiries answered with ICMP time exceeded.
    SentTimeExceeded => "icmp.sent.time_exceeded",
    /// Oversized DF packets answered with fragmentation needed.
    SentFragNeeded => "icmp.sent.frag_needed",
    /// ICMP errors not sent: rate limit.
    IcmpRateLimited => "icmp.rate_limited",
    /// ICMP errors not sent: RFC 1122 forbids (about an error, a fragment, …).
    IcmpNotAllowed => "icmp.not_allowed",
    /// Descriptor meta word invalid or not a client.
    DropBadMeta => "drop.bad_meta",
    /// Descriptor flags with undefined bits.
    DropBadFlags => "drop.bad_flags",
    /// From a slot that is not connected.
    DropUnknownClient => "drop.unknown_client",
    /// Source address is not the client's.
    DropSpoofed => "drop.spoofed",
    /// Not marked CSUM_OK (checksums unverified).
    DropNoCsum => "drop.no_csum_ok",
    /// IPv4 header checksum wrong (fragments, other protocols).
    DropBadIpChecksum => "drop.bad_ip_checksum",
    /// Does not parse.
    DropMalformed => "drop.malformed",
    /// IPv6 (not translated; see the crate documentation).
    DropIpv6 => "drop.ipv6",
    /// Rules said drop.
    DropVerdict => "drop.verdict_drop",
    /// No verdict from the rules.
    DropNoVerdict => "drop.no_verdict",
    /// Marked for DNS redirection but not addressed to a client DNS address.
    DropNotDns => "drop.not_dns",
    /// Addressed to the firewall itself.
    DropToSelf => "drop.to_self",
    /// For the uplink (or an ICMP error from moat) before the uplink
    /// address is known.
    DropNoUplink => "drop.no_uplink",
    /// Uplink address events applied.
    UplinkEvents => "uplink.events",
    /// Uplink address events refused (not a unicast address).
    UplinkEventsBad => "uplink.events_bad",
    /// Bigger than the uplink MTU without DF (would need fragmenting); for a
    /// super-packet, its segments are.
    DropTooBig => "drop.too_big",
    /// A super-packet (segmentation offload) that is not whole TCP/IPv4.
    DropBadGso => "drop.bad_gso",
    /// TTL expired on the way in (sender is outside; no error sent).
    DropTtlInbound => "drop.ttl_inbound",
    /// From the uplink, not addressed to the uplink address.
    DropNotForUs => "drop.not_for_us",
    /// From the uplink with no connection.
    DropNoConn => "drop.no_conn",
    /// TCP from a client with no connection and not a SYN.
    DropTcpNoConn => "drop.tcp_no_conn",
    /// TCP segment invalid in the connection's state.
    DropTcpInvalid => "drop.tcp_invalid",
    /// ICMP message of a kind the NAT does not pass (not a query/reply/error).
    DropIcmpType => "drop.icmp_type",
    /// ICMP error matching no connection.
    DropIcmpUnmatched => "drop.icmp_unmatched",
    /// For a client that is gone.
    DropClientDown => "drop.client_down",
    /// Fragment with no train (its first fragment not seen).
    FragNoTrain => "frag.no_train",
    /// Fragment overlapping, oversized or too scattered: train poisoned.
    FragRejected => "frag.rejected",
    /// Fragment of a poisoned train.
    FragPoisoned => "frag.poisoned",
    /// First fragment refused: too many trains.
    FragFull => "frag.full",
    /// Later fragments translated.
    FragTranslated => "frag.translated",
    /// Client events applied.
    ClientEvents => "control.client_events",
    /// Client events refused (bad slot, address or order).
    ClientEventsBad => "control.client_events_bad",
    /// Control messages that did not decode.
    ControlBad => "control.bad_frames",
    /// `Changed` messages from the rules (slots to re-check).
    RecheckChanged => "recheck.changed",
    /// `Check` batches sent to the rules.
    RecheckBatches => "recheck.batches",
    /// Connections named in those batches.
    RecheckFlows => "recheck.flows",
    /// Answers judged before a later change of the slot's rules: nothing
    /// removed, the slot is checked again.
    RecheckSuperseded => "recheck.superseded",
    /// Batches never answered (timed out, or a later one answered first):
    /// their slot is checked again.
    RecheckLost => "recheck.lost",
    /// Answers that break the exchange (no such batch waiting, another
    /// slot, bits past the batch) and `Changed` bits for impossible slots.
    RecheckBad => "recheck.bad",
    /// Descriptors refused (wrong pool, duplicate, out of range).
    BadDescriptors => "error.bad_descriptor",
    /// Buffers handed back that we did not lend.
    BadReturns => "error.bad_return",
}

/// The counters' values.
#[derive(Clone, Debug)]
pub struct Counters([u64; C::ALL.len()]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; C::ALL.len()])
    }
}

impl Counters {
    /// Adds one.
    #[inline]
    pub fn bump(&mut self, c: C) {
        self.0[c as usize] += 1;
    }

    /// A counter's value.
    pub fn get(&self, c: C) -> u64 {
        self.0[c as usize]
    }

    /// Every counter with its name.
    pub fn each(&self, mut f: impl FnMut(&'static str, u64)) {
        for &c in C::ALL {
            f(c.name(), self.0[c as usize]);
        }
    }
}
