//! The shipped policies: they load alone and layered, and scenario by
//! scenario they let through what they promise and nothing else.

use std::path::PathBuf;

use moat_control::ClientEvent;
use moat_control::rules::{Addr, FlowKey, L4, RulesControl};
use moat_net::meta::Verdict;
use moat_policy::{Source, compile_files, load_sources};
use moat_rules::Engine;
use moat_rules::engine::{OwnedState, Why};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies").join(name)
}

const WORK: [u8; 4] = [10, 137, 0, 5];
const MAIL: [u8; 4] = [10, 137, 0, 6];

/// An engine running `files` (as the component would from its config) with
/// clients `work` (slot 0) and `mail` (slot 1) up.
fn engine<'s>(st: &'s mut OwnedState, files: &[PathBuf]) -> Engine<'s> {
    let config = compile_files(files).unwrap_or_else(|e| panic!("{e}"));
    let mut e = st.engine();
    config.replay(|m| e.control(m).map(|_| ()), moat_rules::policy::StageError::NotStaging).unwrap();
    e.client_event(&ClientEvent::Up { slot: 0, ipv4: WORK, ipv6: None, mac: [0; 6] });
    e.client_event(&ClientEvent::Up { slot: 1, ipv4: MAIL, ipv6: None, mac: [0; 6] });
    e
}

fn tcp(dst: [u8; 4], port: u16) -> FlowKey {
    FlowKey { dst: Addr::V4(dst), proto: 6, l4: L4::Port(port) }
}
fn udp(dst: [u8; 4], port: u16) -> FlowKey {
    FlowKey { dst: Addr::V4(dst), proto: 17, l4: L4::Port(port) }
}
fn ping(dst: [u8; 4]) -> FlowKey {
    FlowKey { dst: Addr::V4(dst), proto: 1, l4: L4::Icmp(8) }
}

fn verdict(e: &mut Engine<'_>, key: FlowKey) -> Verdict {
    e.judge(0, Addr::V4(WORK), &key).0
}

#[test]
fn every_shipped_policy_loads_alone_and_on_the_default() {
    for f in ["qubes-default.toml", "lockdown.toml", "kill-switch.toml"] {
        compile_files(&[path(f)]).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    for f in ["lockdown.toml", "kill-switch.toml"] {
        compile_files(&[path("qubes-default.toml"), path(f)]).unwrap_or_else(|e| panic!("default + {f}: {e}"));
    }
    compile_files(&[path("lockdown.toml"), path("kill-switch.toml")]).unwrap();
    let twice = compile_files(&[path("qubes-default.toml"), path("qubes-default.toml")]).unwrap_err();
    assert_eq!(twice.0.len(), 5, "a base listed twice conflicts with itself on every key: {twice}");
}

#[test]
fn qubes_default_accepts_all_allows_dns_drops_inter_vm() {
    let mut st = OwnedState::new();
    let mut e = engine(&mut st, &[path("qubes-default.toml")]);
    assert_eq!(verdict(&mut e, tcp([93, 184, 216, 34], 443)), Verdict::Accept);
    assert_eq!(verdict(&mut e, udp([1, 1, 1, 1], 123)), Verdict::Accept);
    assert_eq!(verdict(&mut e, ping([8, 8, 8, 8])), Verdict::Accept);
    assert_eq!(verdict(&mut e, udp([10, 139, 1, 1], 53)), Verdict::Dns);
    assert_eq!(verdict(&mut e, tcp([10, 139, 1, 2], 53)), Verdict::Dns);
    assert_eq!(e.judge(0, Addr::V4(WORK), &tcp(MAIL, 22)), (Verdict::Drop, Why::InterVm), "client to client");
    assert_eq!(e.judge(0, Addr::V4(MAIL), &tcp([1, 1, 1, 1], 80)), (Verdict::Drop, Why::Spoofed));
    assert_eq!(e.judge(7, Addr::V4(WORK), &tcp([1, 1, 1, 1], 80)), (Verdict::Drop, Why::UnknownClient));
    let v6 = FlowKey {
        dst: Addr::V6([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        proto: 6,
        l4: L4::Port(443),
    };
    assert_eq!(e.judge(0, Addr::V6([0xfd; 16]), &v6).1, Why::Spoofed, "no IPv6 address: all IPv6 is spoofed");
}

#[test]
fn lockdown_allows_dns_and_https_to_named_hosts_only() {
    let mut st = OwnedState::new();
    let mut e = engine(&mut st, &[path("qubes-default.toml"), path("lockdown.toml")]);
    let qubes = [185, 199, 108, 153];
    assert_eq!(verdict(&mut e, udp([10, 139, 1, 1], 53)), Verdict::Dns);
    assert_eq!(verdict(&mut e, tcp(qubes, 443)), Verdict::Reject, "name not resolved yet: fail closed");
    let addrs = heapless::Vec::from_slice(&[Addr::V4(qubes)]).unwrap();
    e.control(&RulesControl::HostAddrs { name: "www.qubes-os.org", addrs }).unwrap();
    assert_eq!(verdict(&mut e, tcp(qubes, 443)), Verdict::Accept);
    assert_eq!(verdict(&mut e, tcp(qubes, 80)), Verdict::Reject, "HTTPS only");
    assert_eq!(verdict(&mut e, udp(qubes, 443)), Verdict::Reject, "TCP only");
    assert_eq!(verdict(&mut e, tcp([93, 184, 216, 34], 443)), Verdict::Reject, "other hosts");
    assert_eq!(verdict(&mut e, ping(qubes)), Verdict::Reject);
    assert_eq!(verdict(&mut e, udp([10, 139, 1, 1], 123)), Verdict::Reject, "only DNS on the DNS servers");
}

#[test]
fn kill_switch_allows_only_the_vpn_endpoint_even_over_client_exceptions() {
    let dir = std::env::temp_dir().join(format!("moat-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exceptions = dir.join("work-open.toml");
    std::fs::write(&exceptions, "[client.work]\nip = \"10.137.0.5\"\npolicy = \"accept\"\n").unwrap();
    let mut st = OwnedState::new();
    let mut e = engine(&mut st, &[path("qubes-default.toml"), exceptions.clone(), path("kill-switch.toml")]);
    std::fs::remove_dir_all(&dir).unwrap();
    let vpn = [198, 51, 100, 7];
    assert_eq!(verdict(&mut e, udp(vpn, 51820)), Verdict::Accept);
    assert_eq!(verdict(&mut e, tcp(vpn, 51820)), Verdict::Reject);
    assert_eq!(verdict(&mut e, udp(vpn, 51821)), Verdict::Reject);
    assert_eq!(verdict(&mut e, udp([10, 139, 1, 1], 53)), Verdict::Reject, "no DNS outside the tunnel");
    assert_eq!(verdict(&mut e, tcp([93, 184, 216, 34], 443)), Verdict::Reject);
    assert_eq!(e.judge(1, Addr::V4(MAIL), &udp(vpn, 51820)).0, Verdict::Accept, "every client");
    assert_eq!(e.entry_of(0), Some(0), "the earlier per-client exception is gone");
}

#[test]
fn layering_merges_clients_and_overrides_only_when_asked() {
    let base = Source { name: "base.toml".into(), text: std::fs::read_to_string(path("qubes-default.toml")).unwrap() };
    let clients = Source {
        name: "clients.toml".into(),
        text: "[client.work]\nip = \"10.137.0.5\"\nrules = [\"action=accept proto=tcp dstports=443\"]\n\n\
               [client.\"10.137.0.6\"]\npolicy = \"accept\"\nrules = [\"action=drop proto=udp\"]\n"
            .into(),
    };
    let p = load_sources(&[base.clone(), clients.clone()]).unwrap();
    assert_eq!(p.clients.len(), 2);
    assert_eq!(p.default.rules.len(), 2, "defaults from the base");
    let mail = p.clients.iter().find(|c| c.ipv4 == Some(MAIL)).unwrap();
    assert_eq!(mail.name, None, "named by its address");
    let over = Source {
        name: "over.toml".into(),
        text: "[client.work]\noverride = true\nrules = [\"action=accept proto=tcp dstports=22\"]\n".into(),
    };
    let p = load_sources(&[base, clients, over]).unwrap();
    let work = p.clients.iter().find(|c| c.name.as_deref() == Some("work")).unwrap();
    assert_eq!(
        work.entry.rules.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["action=accept proto=tcp dstports=22-22"]
    );
    assert_eq!(work.ipv4, Some(WORK), "keys the override does not name stay");
    assert_eq!(work.entry.rules[0].at.to_string(), "over.toml:3:10");
}

#[test]
fn clients_by_name_are_matched_once_their_name_is_known() {
    let text = "[client.work]\nrules = [\"action=accept proto=tcp dstports=443\"]\n";
    let p = load_sources(&[Source { name: "p.toml".into(), text: text.into() }]).unwrap();
    let config = p.to_config(1).unwrap();
    let mut st = OwnedState::new();
    let mut e = st.engine();
    config.replay(|m| e.control(m).map(|_| ()), moat_rules::policy::StageError::NotStaging).unwrap();
    e.client_event(&ClientEvent::Up { slot: 0, ipv4: WORK, ipv6: None, mac: [0; 6] });
    assert_eq!(verdict(&mut e, tcp([1, 1, 1, 1], 443)), Verdict::Reject, "unnamed: the default entry (drop)");
    e.control(&RulesControl::Name { ipv4: WORK, name: "work" }).unwrap();
    assert_eq!(verdict(&mut e, tcp([1, 1, 1, 1], 443)), Verdict::Accept);
    assert_eq!(e.take_changed().map(|m| m[0] & 1), Some(1), "the NAT hears that slot 0 changed");
}
