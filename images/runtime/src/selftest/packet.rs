//! The self-test's packets: IPv4/UDP built and checked here, without a
//! packet library (the runtime must not depend on what it tests).

/// Client address of the self-test (slot 0).
pub const CLIENT: [u8; 4] = [10, 137, 0, 5];
/// The "server" on the uplink side the client talks to.
pub const SERVER: [u8; 4] = [10, 138, 0, 1];
/// The server's UDP port.
pub const SERVER_PORT: u16 = 7;

/// The RFC 1071 sum of `data`, folded, not complemented.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// A UDP datagram's addresses and ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// Writes an IPv4/UDP packet (TTL 64, DF, valid checksums) of `flow`
/// carrying `payload` into `out`; returns its length, or 0 if `out` is too
/// small.
pub fn udp(flow: Flow, id: u16, payload: &[u8], out: &mut [u8]) -> usize {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    if out.len() < total || total > usize::from(u16::MAX) {
        return 0;
    }
    let ip = &mut out[..20];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[12..16].copy_from_slice(&flow.src);
    ip[16..20].copy_from_slice(&flow.dst);
    let c = !(sum(0, ip) as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = &mut out[20..total];
    u[0..2].copy_from_slice(&flow.sport.to_be_bytes());
    u[2..4].copy_from_slice(&flow.dport.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    u[6..8].copy_from_slice(&[0, 0]);
    u[8..].copy_from_slice(payload);
    let pseudo = sum(sum(sum(0, &flow.src), &flow.dst), &[0, 17]) + udp_len as u32;
    let mut c = !(sum(pseudo, u) as u16);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    total
}

/// A received IPv4/UDP packet whose header and checksums are valid: its
/// flow, TTL and payload.
pub fn parse(pkt: &[u8]) -> Option<(Flow, u8, &[u8])> {
    let ip = pkt.get(..20)?;
    if ip[0] != 0x45 || ip[9] != 17 || sum(0, ip) != 0xffff {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let u = pkt.get(20..total)?;
    let udp_len = usize::from(u16::from_be_bytes([*u.get(4)?, *u.get(5)?]));
    if udp_len != u.len() || udp_len < 8 {
        return None;
    }
    let (src, dst) = ([ip[12], ip[13], ip[14], ip[15]], [ip[16], ip[17], ip[18], ip[19]]);
    let pseudo = sum(sum(sum(0, &src), &dst), &[0, 17]) + udp_len as u32;
    if u[6..8] != [0, 0] && sum(pseudo, u) != 0xffff {
        return None;
    }
    let flow = Flow { src, dst, sport: u16::from_be_bytes([u[0], u[1]]), dport: u16::from_be_bytes([u[2], u[3]]) };
    Some((flow, ip[8], &u[8..]))
}

/// The client's flow for packet `seq`: one source port per packet, so a
/// NAT sees many connections.
pub fn client_flow(seq: u32) -> Flow {
    Flow { src: CLIENT, dst: SERVER, sport: 1024 + (seq % 60000) as u16, dport: SERVER_PORT }
}

/// The payload of packet `seq`: `seq` (little endian), then a pattern.
pub fn payload(seq: u32, len: u16, out: &mut [u8]) -> usize {
    let n = usize::from(len).clamp(4, out.len());
    out[..4].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[4..n].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    n
}

/// Writes packet number `seq` (client to server, `payload` bytes whose
/// first four are `seq`) into `out`; returns its length. `out` must hold it.
pub fn packet(seq: u32, payload_len: u16, out: &mut [u8]) -> usize {
    let mut data = [0u8; 1500];
    let n = payload(seq, payload_len, &mut data);
    udp(client_flow(seq), seq as u16, &data[..n], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_parse_back_and_damage_is_refused() {
        let mut buf = [0u8; 2048];
        let n = packet(9, 64, &mut buf);
        let (flow, ttl, data) = parse(&buf[..n]).unwrap();
        assert_eq!((flow, ttl), (client_flow(9), 64));
        assert_eq!(data[..4], 9u32.to_le_bytes());
        for at in [3, 12, 22, 40] {
            let mut bad = buf;
            bad[at] ^= 0x10;
            assert!(parse(&bad[..n]).is_none(), "flip at {at} is caught");
        }
        assert!(parse(&buf[..19]).is_none());
        assert_eq!(udp(client_flow(0), 0, &[0; 100], &mut [0u8; 50]), 0, "does not fit");
    }
}
