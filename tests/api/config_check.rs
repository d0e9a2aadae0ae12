//! `hookbridge check-config` on the shipped example and on broken files.

use std::process::Command;

use crate::brokers::TempDir;

fn check_config(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .arg("check-config")
        .arg(path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run hookbridge check-config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout),
    )
}

const EXAMPLE_ENV: &[(&str, &str)] = &[
    ("CRONOFY_CLIENT_SECRET", "example-secret"),
    ("TIMETAP_WEBHOOK_TOKEN", "example-token"),
    ("SERVICE_OPTIMIZER_TOKEN", "example-token"),
    ("DOCPLANNER_API_KEY", "example-key"),
    ("SALESKING_APP_SECRET", "example-secret"),
    ("GITHUB_WEBHOOK_SECRET", "example-secret"),
    ("ACME_SIGNING_SECRET", "example-secret"),
];

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/hookbridge.example.toml"
    ));
    let (ok, out) = check_config(path, EXAMPLE_ENV);
    assert!(ok, "{out}");
    assert!(out.contains("ok (8 sources, 2 publishers)"), "{out}");
}

#[test]
fn broken_configs_fail_naming_every_key_and_reason() {
    let dir = TempDir::new("config");
    let cases: &[(&str, &[&str])] = &[
        (
            "[server]\nlisen = \"x\"\n",
            &["server.lisen", "unknown field `lisen`"],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"cronofy\"\npublisher = \"n\"\n[sources.a.verify]\nclient_secrets = [\"inline-secret-value\"]\n",
            &["sources.a.verify.client_secrets", "never inline"],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"nope\"\npublisher = \"m\"\ntopic = \"x.{bad}\"\n",
            &[
                "sources.a.provider",
                "unknown provider `nope`",
                "sources.a.publisher",
                "no publisher named `m`",
                "sources.a.topic",
                "unknown placeholder",
            ],
        ),
        // A mistyped preset lists the presets; a wrong key in a preset's table lists its keys; a
        // wrong handshake lists the handshakes.
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"shopfiy\"\npublisher = \"n\"\n",
            &[
                "sources.a.provider",
                "unknown provider `shopfiy`",
                "shopify",
                "slack",
                "zoom",
            ],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"slack\"\npublisher = \"n\"\n[sources.a.verify]\nsecret = [\"env:S\"]\n",
            &[
                "sources.a.verify.secret",
                "unknown field `secret`",
                "`secrets`",
                "`handshake`",
            ],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"slack\"\npublisher = \"n\"\n[sources.a.verify]\nsecrets = [\"env:S\"]\nhandshake = \"teams\"\n",
            &[
                "sources.a.verify.handshake",
                "unknown variant `teams`",
                "`slack`",
                "`dropbox`",
            ],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"square\"\npublisher = \"n\"\n[sources.a.verify]\nsecrets = [\"env:S\"]\n",
            &["sources.a.verify.message", "{url} needs url"],
        ),
        // Choice keys are enums: a wrong choice names the key and lists the valid ones.
        (
            "[server]\nlog_format = \"xml\"\n",
            &[
                "server.log_format",
                "unknown variant `xml`",
                "`text`",
                "`json`",
            ],
        ),
        (
            "[dedup]\nstore = \"redis\"\n",
            &["dedup.store", "`memory`", "`disk`", "`nats`"],
        ),
        (
            "[dedup]\nstore = \"memory\"\ncapacity = 2000000000\n",
            &["dedup.capacity", "at most 1073741824 keys", "disk store"],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\nstorage = \"tape\"\n",
            &["publishers.n: storage:", "`file`", "`memory`"],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"cronofy\"\npublisher = \"n\"\non_broker_failure = \"drop\"\n",
            &["sources.a.on_broker_failure", "`spool`", "`reject`"],
        ),
        (
            "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n[sources.a]\nprovider = \"cronofy\"\npublisher = \"n\"\n[sources.a.verify]\nclient_secrets = [\"env:MISSING_SECRET\"]\n",
            &[
                "sources.a.verify.client_secrets[0]",
                "MISSING_SECRET is not set",
            ],
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, out) = check_config(&path, &[("S", "a-secret")]);
        assert!(!ok, "case {i} must fail:\n{out}");
        for needle in *expected {
            assert!(
                out.contains(needle),
                "case {i}: `{needle}` missing from:\n{out}"
            );
        }
        assert!(
            !out.contains("inline-secret-value"),
            "the error echoes a secret:\n{out}"
        );
    }
}

#[test]
fn hardening_settings_are_validated_with_their_keys() {
    let dir = TempDir::new("config");
    let path = dir.path().join("hardening.toml");
    std::fs::write(
        &path,
        r#"
[server]
max_header_bytes = 10
body_timeout_ms = 0

[publishers.n]
kind = "nats"
url = "nats://x"

[sources.a]
provider = "cronofy"
publisher = "n"
[sources.a.verify]
client_secrets = ["env:S"]
[sources.a.rate_limit]
per_second = 0

[sources.d]
provider = "docplanner"
publisher = "n"
[sources.d.verify]
api_key_header = "X-Api-Key"
api_keys = ["env:S"]
[sources.d.reconcile]
base_url = "http://api.example.com/v3"
token_url = "http://localhost.evil.example/token"
client_id = "env:S"
client_secret = "env:S"
"#,
    )
    .unwrap();

    let (ok, out) = check_config(&path, &[("S", "a-secret")]);

    assert!(!ok, "must fail:\n{out}");
    for needle in [
        "server.max_header_bytes",
        "server.body_timeout_ms",
        "sources.a.rate_limit.per_second",
        "sources.d.reconcile.base_url: expected an https URL",
        "sources.d.reconcile.token_url: expected an https URL",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }
}

/// What would lose events is refused: a Docplanner source that refuses pushes with nothing to
/// have them pushed again, and a body limit whose events could be neither published nor
/// dead-lettered. The same sources pass once the loss is recovered.
#[test]
fn configurations_that_would_lose_events_are_refused() {
    let dir = TempDir::new("config-loss");
    let path = dir.path().join("loses.toml");
    let base = "[publishers.n]\nkind = \"nats\"\nurl = \"nats://x\"\n\
                [publishers.k]\nkind = \"kafka\"\nbootstrap_servers = \"x:9092\"\n";
    let docplanner = |name: &str, extra: &str| {
        format!(
            "[sources.{name}]\nprovider = \"docplanner\"\npublisher = \"n\"\n{extra}\
             [sources.{name}.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:S\"]\n"
        )
    };
    let release = |name: &str| {
        format!(
            "[sources.{name}.reconcile]\nbase_url = \"https://api.example.com/v3\"\n\
             token_url = \"https://api.example.com/token\"\nclient_id = \"env:S\"\n\
             client_secret = \"env:S\"\nrelease = true\n"
        )
    };
    let losing = format!(
        "{base}{}{}[sources.big]\nprovider = \"cronofy\"\npublisher = \"k\"\nbody_limit_bytes = 990000\n\
         [sources.big.verify]\nclient_secrets = [\"env:S\"]\n",
        docplanner("rejecting", ""),
        docplanner("limited", "[sources.limited.rate_limit]\nper_second = 10\n"),
    );
    std::fs::write(&path, &losing).unwrap();
    let (ok, out) = check_config(&path, &[("S", "a-secret")]);
    assert!(!ok, "must fail:\n{out}");
    for needle in [
        "sources.rejecting.reconcile.release: this provider never resends a refused push and `on_broker_failure = \"reject\"`",
        "sources.limited.reconcile.release: this provider never resends a refused push and a rate limit",
        "sources.big.body_limit_bytes: 990000 bytes plus the event and dead-letter envelope (65536) exceed publisher k's max_message_bytes (1000000)",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }

    // Recovered: a release for the first two, a limit that fits for the third.
    let recovered = format!(
        "{base}{}{}{}{}[sources.big]\nprovider = \"cronofy\"\npublisher = \"k\"\nbody_limit_bytes = 934464\n\
         [sources.big.verify]\nclient_secrets = [\"env:S\"]\n",
        docplanner("rejecting", ""),
        release("rejecting"),
        docplanner("limited", "[sources.limited.rate_limit]\nper_second = 10\n"),
        release("limited"),
    );
    std::fs::write(&path, &recovered).unwrap();
    let (ok, out) = check_config(&path, &[("S", "a-secret")]);
    assert!(ok, "{out}");
}

/// Both shipped Kubernetes configs pass the check (`scripts/check-manifests` runs it on them too),
/// so the recommended deployments cannot lose a Docplanner push.
#[test]
fn the_shipped_docplanner_sources_release_what_they_refuse() {
    for overlay in ["base", "overlays/stateless"] {
        let path = format!(
            "{}/deploy/kubernetes/{overlay}/hookbridge.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let docplanner = text
            .split("[sources.docplanner.reconcile]")
            .nth(1)
            .unwrap_or_else(|| panic!("{path} has a Docplanner reconcile table"));
        assert!(
            docplanner.contains("release = true"),
            "{path}: a refused Docplanner push is recovered only by a release"
        );
    }
}

/// `hookbridge presets` lists every preset; `hookbridge presets NAME` prints a table that, with
/// a publisher and its secret set, passes `check-config`; an unknown name lists the valid ones.
#[test]
fn the_presets_command_lists_and_prints_loadable_sources() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
            .args(args)
            .output()
            .expect("run hookbridge presets");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, listing) = run(&["presets"]);
    assert!(ok, "{listing}");
    let names: Vec<&str> = hookbridge::providers::generic::PRESETS
        .iter()
        .map(|p| p.name)
        .collect();
    assert!(names.len() >= 40);
    for name in &names {
        assert!(
            listing.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} not listed"
        );
    }
    assert_eq!(
        listing.matches("    docs:      https://").count(),
        names.len()
    );
    let (ok, out) = run(&["presets", "shopfiy"]);
    assert!(
        !ok && out.contains("no preset `shopfiy`") && out.contains("shopify"),
        "{out}"
    );

    let dir = TempDir::new("presets");
    for name in ["slack", "twilio", "discord", "pipedrive", "microsoft_graph"] {
        let (ok, table) = run(&["presets", name]);
        assert!(ok, "{table}");
        // Placeholders a user fills in: a real public key for the public-key presets.
        let table = table.replace(
            "<the sender's public key>",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("[publishers.nats]\nkind = \"nats\"\nurl = \"nats://x\"\n\n{table}"),
        )
        .unwrap();
        let env = format!("{}_WEBHOOK_SECRET", name.to_uppercase());
        let (ok, out) = check_config(&path, &[(env.as_str(), "a-secret")]);
        assert!(
            ok,
            "{name}: the printed table does not load:\n{table}\n{out}"
        );
    }
}
