//! The rule language: every key, every error message, and print ∘ parse.

use moat_rules::lang::{Action, Addr, Dst, ErrorKind, Key, Ports, Prefix, Proto, Rule, parse};
use proptest::prelude::*;

fn net(a: Addr, len: u8) -> Dst<&'static str> {
    Dst::Net(Prefix::new(a, len).unwrap())
}

fn rule(action: Action) -> Rule<&'static str> {
    Rule::all(action)
}

#[test]
fn every_key_parses() {
    assert_eq!(parse("action=accept").unwrap(), rule(Action::Accept));
    assert_eq!(parse("action=drop").unwrap(), rule(Action::Drop));
    for (p, want) in [("tcp", Proto::Tcp), ("udp", Proto::Udp), ("icmp", Proto::Icmp)] {
        assert_eq!(parse(&format!("action=drop proto={p}")).unwrap().proto, Some(want));
    }
    assert_eq!(parse("action=accept dst4=192.168.0.0/24").unwrap().dst, net(Addr::V4([192, 168, 0, 0]), 24));
    assert_eq!(
        parse("action=accept dst4=10.1.2.3").unwrap().dst,
        net(Addr::V4([10, 1, 2, 3]), 32),
        "bare address: /32"
    );
    assert_eq!(
        parse("action=accept dst4=10.1.2.3/8").unwrap().dst,
        net(Addr::V4([10, 0, 0, 0]), 8),
        "host bits masked"
    );
    let v6 = Addr::V6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse("action=accept dst6=2001:db8::/32").unwrap().dst, net(v6, 32));
    assert_eq!(parse("action=accept dst6=2001:db8::").unwrap().dst, net(v6, 128));
    assert_eq!(parse("action=accept dst6=::ffff:1.2.3.4/128").unwrap().dst, {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&[1, 2, 3, 4]);
        net(Addr::V6(b), 128)
    });
    assert_eq!(parse("action=accept dsthost=www.qubes-os.org").unwrap().dst, Dst::Host("www.qubes-os.org"));
    assert_eq!(parse("action=accept dsthost=a_b-c.d9").unwrap().dst, Dst::Host("a_b-c.d9"));
    // qvm-firewall stores an address given as dsthost as dst4/dst6.
    assert_eq!(parse("action=accept dsthost=1.2.3.4").unwrap().dst, net(Addr::V4([1, 2, 3, 4]), 32));
    assert_eq!(parse("action=accept dsthost=1.2.3.0/24").unwrap().dst, net(Addr::V4([1, 2, 3, 0]), 24));
    assert_eq!(parse("action=accept dsthost=2001:db8::/32").unwrap().dst, net(v6, 32));
    let r = parse("action=accept proto=tcp dstports=443-443").unwrap();
    assert_eq!(r.ports, Some(Ports { lo: 443, hi: 443 }));
    assert_eq!(parse("action=accept proto=udp dstports=53").unwrap().ports, Some(Ports { lo: 53, hi: 53 }));
    assert_eq!(parse("action=accept proto=tcp dstports=0-65535").unwrap().ports, Some(Ports { lo: 0, hi: 65535 }));
    assert_eq!(parse("action=accept proto=icmp icmptype=8").unwrap().icmp_type, Some(8));
    assert_eq!(parse("action=accept proto=icmp icmptype=255").unwrap().icmp_type, Some(255));
    assert!(parse("action=accept specialtarget=dns").unwrap().dns);
}

#[test]
fn keys_in_any_order_and_whitespace() {
    // Linux's own tests feed rules in this order; dom0 writes another.
    let a = parse("proto=tcp dstports=80-80 action=drop").unwrap();
    let b = parse("action=drop proto=tcp dstports=80-80").unwrap();
    assert_eq!(a, b);
    assert_eq!(parse("  action=accept\tproto=udp  ").unwrap().proto, Some(Proto::Udp));
    // specialtarget with dstports other than 53 parses (it matches nothing,
    // as in Linux), and so does specialtarget with proto=icmp.
    assert!(parse("action=accept specialtarget=dns proto=tcp dstports=1-1024").is_ok());
    assert!(parse("action=accept specialtarget=dns proto=icmp").is_ok());
    assert!(parse("action=accept specialtarget=dns dst4=10.139.1.1").is_ok());
}

/// (rule, key at fault, kind, byte offset, message)
const ERRORS: &[(&str, Option<Key>, ErrorKind, u16, &str)] = &[
    ("", None, ErrorKind::Empty, 0, "empty rule"),
    ("   ", None, ErrorKind::Empty, 0, "empty rule"),
    ("action", None, ErrorKind::NotKeyValue, 0, "expected key=value"),
    ("action=accept proto", None, ErrorKind::NotKeyValue, 14, "expected key=value"),
    (
        "action=accept comment=hi",
        None,
        ErrorKind::UnknownKey,
        14,
        "unknown key (known: action, proto, dst4, dst6, dsthost, dstports, icmptype, specialtarget)",
    ),
    (
        "ACTION=accept",
        None,
        ErrorKind::UnknownKey,
        0,
        "unknown key (known: action, proto, dst4, dst6, dsthost, dstports, icmptype, specialtarget)",
    ),
    ("action=accept action=drop", Some(Key::Action), ErrorKind::Repeated, 14, "field `action`: given twice"),
    ("proto=tcp proto=udp action=drop", Some(Key::Proto), ErrorKind::Repeated, 10, "field `proto`: given twice"),
    ("proto=tcp", None, ErrorKind::NoAction, 0, "rule has no action"),
    ("action=allow", Some(Key::Action), ErrorKind::BadAction, 0, "field `action`: must be accept or drop"),
    ("action=Accept", Some(Key::Action), ErrorKind::BadAction, 0, "field `action`: must be accept or drop"),
    ("action=drop proto=sctp", Some(Key::Proto), ErrorKind::BadProto, 12, "field `proto`: must be tcp, udp or icmp"),
    ("action=drop dst4=10.0.0", Some(Key::Dst4), ErrorKind::BadIpv4, 12, "field `dst4`: not an IPv4 address"),
    ("action=drop dst4=010.0.0.1", Some(Key::Dst4), ErrorKind::BadIpv4, 12, "field `dst4`: not an IPv4 address"),
    ("action=drop dst4=::1", Some(Key::Dst4), ErrorKind::BadIpv4, 12, "field `dst4`: not an IPv4 address"),
    ("action=drop dst4=", Some(Key::Dst4), ErrorKind::BadIpv4, 12, "field `dst4`: not an IPv4 address"),
    ("action=drop dst6=10.0.0.1", Some(Key::Dst6), ErrorKind::BadIpv6, 12, "field `dst6`: not an IPv6 address"),
    ("action=drop dst6=fe80::1%eth0", Some(Key::Dst6), ErrorKind::BadIpv6, 12, "field `dst6`: not an IPv6 address"),
    (
        "action=drop dst4=10.0.0.0/33",
        Some(Key::Dst4),
        ErrorKind::BadPrefixLen,
        12,
        "field `dst4`: prefix length must be a number up to the address size (32 or 128)",
    ),
    (
        "action=drop dst4=10.0.0.0/-1",
        Some(Key::Dst4),
        ErrorKind::BadPrefixLen,
        12,
        "field `dst4`: prefix length must be a number up to the address size (32 or 128)",
    ),
    (
        "action=drop dst6=::/129",
        Some(Key::Dst6),
        ErrorKind::BadPrefixLen,
        12,
        "field `dst6`: prefix length must be a number up to the address size (32 or 128)",
    ),
    (
        "action=drop dst4=10.0.0.0/",
        Some(Key::Dst4),
        ErrorKind::BadPrefixLen,
        12,
        "field `dst4`: prefix length must be a number up to the address size (32 or 128)",
    ),
    (
        "action=drop dsthost=Example.com",
        Some(Key::Dsthost),
        ErrorKind::BadHost,
        12,
        "field `dsthost`: host name must be 1-253 characters of a-z, 0-9, '-', '.', '_'",
    ),
    (
        "action=drop dsthost=",
        Some(Key::Dsthost),
        ErrorKind::BadHost,
        12,
        "field `dsthost`: host name must be 1-253 characters of a-z, 0-9, '-', '.', '_'",
    ),
    (
        "action=drop dsthost=example.com/24",
        Some(Key::Dsthost),
        ErrorKind::BadHost,
        12,
        "field `dsthost`: host name must be 1-253 characters of a-z, 0-9, '-', '.', '_'",
    ),
    (
        "action=drop proto=tcp dstports=http",
        Some(Key::Dstports),
        ErrorKind::BadPorts,
        22,
        "field `dstports`: must be PORT or LO-HI",
    ),
    (
        "action=drop proto=tcp dstports=1-2-3",
        Some(Key::Dstports),
        ErrorKind::BadPorts,
        22,
        "field `dstports`: must be PORT or LO-HI",
    ),
    (
        "action=drop proto=tcp dstports=1:2",
        Some(Key::Dstports),
        ErrorKind::BadPorts,
        22,
        "field `dstports`: must be PORT or LO-HI",
    ),
    (
        "action=drop proto=tcp dstports=-5",
        Some(Key::Dstports),
        ErrorKind::BadPorts,
        22,
        "field `dstports`: must be PORT or LO-HI",
    ),
    (
        "action=drop proto=tcp dstports=65536",
        Some(Key::Dstports),
        ErrorKind::PortRange,
        22,
        "field `dstports`: port above 65535",
    ),
    (
        "action=drop proto=tcp dstports=1-99999",
        Some(Key::Dstports),
        ErrorKind::PortRange,
        22,
        "field `dstports`: port above 65535",
    ),
    (
        "action=drop proto=tcp dstports=80-79",
        Some(Key::Dstports),
        ErrorKind::PortsReversed,
        22,
        "field `dstports`: low port above high port",
    ),
    (
        "action=drop proto=icmp icmptype=256",
        Some(Key::Icmptype),
        ErrorKind::BadIcmpType,
        23,
        "field `icmptype`: must be a number 0-255",
    ),
    (
        "action=drop proto=icmp icmptype=echo",
        Some(Key::Icmptype),
        ErrorKind::BadIcmpType,
        23,
        "field `icmptype`: must be a number 0-255",
    ),
    (
        "action=drop specialtarget=ntp",
        Some(Key::Specialtarget),
        ErrorKind::BadSpecialTarget,
        12,
        "field `specialtarget`: only dns is known",
    ),
    (
        "action=drop dst4=10.0.0.0/8 dst6=::/0",
        Some(Key::Dst6),
        ErrorKind::TwoDestinations,
        28,
        "field `dst6`: only one of dst4, dst6, dsthost may be given",
    ),
    (
        "action=drop dsthost=a.example dst4=10.0.0.0/8",
        Some(Key::Dst4),
        ErrorKind::TwoDestinations,
        30,
        "field `dst4`: only one of dst4, dst6, dsthost may be given",
    ),
    (
        "action=drop dstports=80",
        Some(Key::Dstports),
        ErrorKind::PortsNeedTcpOrUdp,
        12,
        "field `dstports`: dstports needs proto=tcp or proto=udp",
    ),
    (
        "action=drop proto=icmp dstports=80",
        Some(Key::Dstports),
        ErrorKind::PortsNeedTcpOrUdp,
        23,
        "field `dstports`: dstports needs proto=tcp or proto=udp",
    ),
    (
        "action=drop icmptype=8",
        Some(Key::Icmptype),
        ErrorKind::IcmpTypeNeedsIcmp,
        12,
        "field `icmptype`: icmptype needs proto=icmp",
    ),
    (
        "action=drop proto=tcp icmptype=8",
        Some(Key::Icmptype),
        ErrorKind::IcmpTypeNeedsIcmp,
        22,
        "field `icmptype`: icmptype needs proto=icmp",
    ),
];

#[test]
fn every_error_names_its_field_and_place() {
    for &(text, key, kind, at, msg) in ERRORS {
        let e = parse(text).expect_err(text);
        assert_eq!((e.key, e.kind, e.at), (key, kind, at), "{text:?}");
        assert_eq!(e.to_string(), msg, "{text:?}");
    }
    let long = format!("action=accept dsthost={}", "a".repeat(600));
    let e = parse(&long).unwrap_err();
    assert_eq!((e.kind, e.to_string().as_str()), (ErrorKind::TooLong, "rule longer than 512 bytes"));
    let host = format!("action=accept dsthost={}", "a".repeat(254));
    assert_eq!(parse(&host).unwrap_err().kind, ErrorKind::BadHost, "254-character name");
    let host = format!("action=accept dsthost={}", "a".repeat(253));
    assert!(parse(&host).is_ok(), "253 characters is a DNS name's limit");
}

#[test]
fn every_error_kind_is_tested() {
    let mut kinds: Vec<u8> = ERRORS.iter().map(|e| e.2 as u8).collect();
    kinds.push(ErrorKind::TooLong as u8);
    kinds.sort();
    kinds.dedup();
    let all: Vec<u8> = (1..=40).filter(|&c| ErrorKind::from_code(c).is_some()).collect();
    assert_eq!(kinds, all);
}

#[test]
fn printer_writes_dom0_order() {
    let cases = [
        (
            "proto=tcp dstports=443 dst4=192.0.2.0/24 action=accept",
            "action=accept dst4=192.0.2.0/24 proto=tcp dstports=443-443",
        ),
        ("specialtarget=dns action=accept", "action=accept specialtarget=dns"),
        (
            "icmptype=8 proto=icmp action=drop dst6=2001:db8::1",
            "action=drop dst6=2001:db8::1/128 proto=icmp icmptype=8",
        ),
        (
            "action=accept dsthost=www.example.com proto=udp dstports=1-1024",
            "action=accept dsthost=www.example.com proto=udp dstports=1-1024",
        ),
        (
            "action=accept proto=tcp specialtarget=dns dstports=53",
            "action=accept proto=tcp specialtarget=dns dstports=53-53",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse(input).unwrap().to_string(), want);
    }
}

fn arb_rule() -> impl Strategy<Value = String> {
    let action = prop_oneof![Just("accept"), Just("drop")];
    let dst = prop_oneof![
        Just(String::new()),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, l)| format!("dst4={}/{l}", std::net::Ipv4Addr::from(a))),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(a, l)| format!("dst6={}/{l}", std::net::Ipv6Addr::from(a))),
        // Starting with a letter: never an address.
        "[a-z][a-z0-9._-]{0,20}".prop_map(|h| format!("dsthost={h}")),
    ];
    let proto = prop_oneof![Just(""), Just("tcp"), Just("udp"), Just("icmp")];
    (action, dst, proto, any::<(u16, u16)>(), any::<u8>(), any::<(bool, bool, bool)>()).prop_map(
        |(a, dst, proto, (p1, p2), t, (ports, icmp, dns))| {
            let mut words = vec![format!("action={a}")];
            if !dst.is_empty() {
                words.push(dst);
            }
            if !proto.is_empty() {
                words.push(format!("proto={proto}"));
            }
            if ports && (proto == "tcp" || proto == "udp") {
                words.push(format!("dstports={}-{}", p1.min(p2), p1.max(p2)));
            }
            if icmp && proto == "icmp" {
                words.push(format!("icmptype={t}"));
            }
            if dns {
                words.push("specialtarget=dns".into());
            }
            words.reverse();
            words.join(" ")
        },
    )
}

proptest! {
    #[test]
    fn parse_print_parse_is_identity(text in arb_rule()) {
        let first = parse(&text).unwrap();
        let printed = first.to_string();
        let second = parse(&printed).unwrap();
        prop_assert_eq!(first, second);
        prop_assert_eq!(second.to_string(), printed, "printing is canonical");
    }

    #[test]
    fn garbage_never_panics(text in ".{0,80}") {
        if let Ok(r) = parse(&text) {
            let printed = r.to_string();
            prop_assert_eq!(parse(&printed).unwrap(), r);
        }
    }

    #[test]
    fn words_from_the_language_never_panic(
        words in prop::collection::vec(prop_oneof![
            Just("action=accept"), Just("action=drop"), Just("proto=tcp"), Just("proto=icmp"), Just("proto=udp"),
            Just("dstports=1-2"), Just("dstports=53"), Just("icmptype=3"), Just("specialtarget=dns"),
            Just("dst4=10.0.0.0/8"), Just("dst6=::/0"), Just("dsthost=a.b"), Just("x=y"), Just("="),
        ], 0..8)
    ) {
        let text = words.join(" ");
        match parse(&text) {
            Ok(r) => {
                let printed = r.to_string();
                prop_assert_eq!(parse(&printed).unwrap(), r);
            }
            Err(e) => prop_assert!(usize::from(e.at) <= text.len()),
        }
    }
}
