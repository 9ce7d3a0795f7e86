//! One case per diagnostic: each names file, line and column.

use moat_policy::{Source, load_sources};

fn src(name: &str, text: &str) -> Source {
    Source { name: name.into(), text: text.into() }
}

/// Loads `files` and returns the diagnostics, one per line.
fn errors(files: &[(&str, &str)]) -> String {
    let sources: Vec<Source> = files.iter().map(|(n, t)| src(n, t)).collect();
    load_sources(&sources).expect_err("should be refused").to_string()
}

#[test]
fn toml_syntax() {
    assert_eq!(errors(&[("a.toml", "[defaults\n")]), "a.toml:1:10: unclosed table, expected `]`");
}

#[test]
fn unknown_key() {
    let e = errors(&[("a.toml", "[defaults]\npolicy = \"drop\"\nrule = []\n")]);
    assert!(e.starts_with("a.toml:3:1: unknown field `rule`, expected one of"), "{e}");
    let e = errors(&[("a.toml", "[client]\nwork = 3\n")]);
    assert!(e.starts_with("a.toml:2:8: invalid type: integer `3`"), "{e}");
    let e = errors(&[("a.toml", "[clients.work]\n")]);
    assert!(e.starts_with("a.toml:1:2: unknown field `clients`"), "{e}");
}

#[test]
fn bad_values() {
    let cases = [
        ("[defaults]\npolicy = \"allow\"\n", "a.toml:2:10: `policy` must be \"accept\" or \"drop\""),
        ("[defaults]\ndrop = \"quiet\"\n", "a.toml:2:8: `drop` must be \"reject\" or \"silent\""),
        ("[defaults]\ninter_vm = \"yes\"\n", "a.toml:2:12: `inter_vm` must be \"drop\" or \"rules\""),
        ("[defaults]\ndns = [\"10.139.1.300\"]\n", "a.toml:2:8: not an IPv4 or IPv6 address"),
        ("[defaults]\ndns = [\"10.139.1.1\", \"10.139.1.1\"]\n", "a.toml:2:22: DNS address listed twice"),
        (
            "[defaults]\ndns = [\"1.1.1.1\", \"1.1.1.2\", \"1.1.1.3\", \"1.1.1.4\", \"1.1.1.5\"]\n",
            "a.toml:2:7: at most 4 DNS addresses",
        ),
        ("[client.work]\nip = \"10.137.0\"\n", "a.toml:2:6: `ip` must be an IPv4 address"),
        ("[client.work]\nip6 = \"10.137.0.5\"\n", "a.toml:2:7: `ip6` must be an IPv6 address"),
        ("[client.work]\nreplace_clients = true\n", "a.toml:2:19: `replace_clients` belongs in [defaults]"),
    ];
    for (text, want) in cases {
        assert_eq!(errors(&[("a.toml", text)]), want, "{text}");
    }
}

#[test]
fn rule_errors_point_at_the_word() {
    let text = "[client.work]\nrules = [\n    \"action=accept\",\n    \"action=accept proto=tcp dstports=70000\",\n]\n";
    assert_eq!(errors(&[("p.toml", text)]), "p.toml:4:30: [client.work], rule 1: field `dstports`: port above 65535");
    let text = "[defaults]\nrules = [\"action=accept dstports=80\"]\n";
    assert_eq!(
        errors(&[("p.toml", text)]),
        "p.toml:2:25: [defaults], rule 0: field `dstports`: dstports needs proto=tcp or proto=udp"
    );
}

#[test]
fn misplaced_keys() {
    assert_eq!(
        errors(&[("a.toml", "[defaults]\nip = \"10.137.0.5\"\n")]),
        "a.toml:2:6: `ip` and `ip6` belong in [client.<name>] tables, not in [defaults]"
    );
    assert_eq!(
        errors(&[("a.toml", "[client.work]\ndrop = \"silent\"\n")]),
        "a.toml:2:8: `drop` is a setting of the whole policy: put it in [defaults]"
    );
    assert_eq!(
        errors(&[("a.toml", "[client.work]\ninter_vm = \"rules\"\n")]),
        "a.toml:2:12: `inter_vm` is a setting of the whole policy: put it in [defaults]"
    );
    assert_eq!(
        errors(&[("a.toml", "[client.work]\ndns = []\n")]),
        "a.toml:2:7: `dns` is a setting of the whole policy: put it in [defaults]"
    );
    assert_eq!(
        errors(&[("a.toml", "[defaults]\nreplace_clients = true\n")]),
        "a.toml:2:19: `replace_clients` needs `override = true` in the same table"
    );
}

#[test]
fn conflicts_name_both_places() {
    let base = ("base.toml", "[defaults]\npolicy = \"accept\"\n");
    let over = ("over.toml", "# again\n[defaults]\npolicy = \"drop\"\n");
    assert_eq!(
        errors(&[base, over]),
        "over.toml:3:10: `policy` is already set by an earlier policy file; say `override = true` in this table \
         to replace it (first set at base.toml:2:10)"
    );
    let a = ("a.toml", "[client.work]\nrules = [\"action=accept\"]\n");
    let b = ("b.toml", "[client.work]\nrules = [\"action=drop\"]\n");
    assert_eq!(
        errors(&[a, b]),
        "b.toml:2:9: `rules` is already set by an earlier policy file; say `override = true` in this table \
         to replace it (first set at a.toml:2:9)"
    );
}

#[test]
fn identities() {
    assert_eq!(
        errors(&[("a.toml", "[client.9work]\n")]),
        "a.toml:1:9: client `9work`: not a Qubes VM name (a letter, then letters, digits, '-', '_', '.'; at most 31) \
         nor an address"
    );
    assert_eq!(
        errors(&[("a.toml", "[client.\"10.137.0.5\"]\nip = \"10.137.0.6\"\n")]),
        "a.toml:1:1: client `10.137.0.5`: `ip` differs from the table's name"
    );
    assert_eq!(
        errors(&[("a.toml", "[client.\"fd09::5\"]\nip6 = \"fd09::6\"\n")]),
        "a.toml:1:1: client `fd09::5`: `ip6` differs from the table's name"
    );
    let text = "[client.mail]\nip = \"10.137.0.5\"\n\n[client.work]\nip = \"10.137.0.5\"\n";
    assert_eq!(
        errors(&[("a.toml", text)]),
        "a.toml:4:1: client `work`: address 10.137.0.5 is also client `mail`'s (first set at a.toml:1:1)"
    );
}

#[test]
fn capacities() {
    let mut text = String::new();
    for i in 0..65 {
        text += &format!("[client.vm{i:02}]\n");
    }
    let e = errors(&[("a.toml", &text)]);
    assert_eq!(e, "a.toml:65:1: more than 64 clients");
    let rules: Vec<String> =
        (0..2049).map(|i| format!("\"action=accept dst4=10.{}.{}.0/24\"", i / 256, i % 256)).collect();
    let text = format!("[defaults]\nrules = [\n{}\n]\n", rules.join(",\n"));
    assert_eq!(errors(&[("a.toml", &text)]), "a.toml:2051:1: 2049 rules in all; at most 2048");
    let rules: Vec<String> = (0..65).map(|i| format!("\"action=accept dsthost=h{i}.example\"")).collect();
    let text = format!("[defaults]\nrules = [\n{}\n]\n", rules.join(",\n"));
    assert_eq!(errors(&[("a.toml", &text)]), "a.toml:67:1: more than 64 distinct dsthost names");
}

#[test]
fn unreadable_file() {
    let e = moat_policy::load_files(&["/nonexistent/moat.toml"]).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/moat.toml:1:1: cannot read: "), "{e}");
}

#[test]
fn policy_too_large_for_the_blob() {
    let rules: Vec<String> = (0..200)
        .map(|i| {
            format!("\"action=accept dst6=2001:db8:{i:x}:ffff:ffff:ffff:ffff:0/112 proto=tcp dstports=10000-20000\"")
        })
        .collect();
    let text = format!("[client.big]\nrules = [\n{}\n]\n", rules.join(",\n"));
    let policy = load_sources(&[src("a.toml", &text)]).unwrap();
    let e = policy.to_config(1).unwrap_err().to_string();
    assert_eq!(
        e,
        "a.toml:1:1: the policy is larger than the 8192 bytes a configuration blob holds; deliver it on the `policy` \
         ring at run time (Policy::messages)"
    );
    // The same policy goes through the ring's messages into a real engine.
    let mut st = moat_rules::engine::OwnedState::new();
    let mut engine = st.engine();
    for m in policy.messages(9) {
        engine.control(&m).unwrap();
    }
    assert_eq!(engine.version(), 9);
    assert_eq!(engine.policy().rule_count(), 200);
}
