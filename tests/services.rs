//! The skip-or-fail rule of the service-backed tests (`support/services.rs`,
//! shared by source with the provider crates' tests).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "support/child.rs"]
mod child;
#[path = "support/services.rs"]
mod services;

// service_env: the skip-or-fail switch. Environment variables are process
// wide (and setting them needs `unsafe`), so each case runs this test binary
// again, restricted to the probe test, with its own environment.

const PROBE_VAR: &str = "LOCKBOX_TEST_SERVICES_PROBE";

/// Does nothing unless run as a probe; then calls `service_env` and prints
/// what it returned.
#[test]
fn service_env_probe() {
    if std::env::var_os(PROBE_VAR).is_none() {
        return;
    }
    let got = services::service_env("LOCKBOX_TEST_SERVICES_SERVICE");
    println!("probe returned {got:?}");
}

/// Runs the probe with `service` (the service variable) and `require`.
fn probe(service: Option<&str>, require: Option<&str>) -> (bool, String) {
    let mut cmd = child::test_binary("service_env_probe");
    cmd.env(PROBE_VAR, "1")
        .env_remove("LOCKBOX_TEST_SERVICES_SERVICE")
        .env_remove(services::REQUIRE_SERVICES_VAR);
    if let Some(v) = service {
        cmd.env("LOCKBOX_TEST_SERVICES_SERVICE", v);
    }
    if let Some(v) = require {
        cmd.env(services::REQUIRE_SERVICES_VAR, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn service_env_returns_a_set_variable() {
    for require in [None, Some("1")] {
        let (ok, text) = probe(Some("http://127.0.0.1:1"), require);
        assert!(ok, "{text}");
        assert!(text.contains("probe returned Some(\"http://127.0.0.1:1\")"), "{text}");
    }
}

#[test]
fn service_env_skips_with_a_reason_when_not_required() {
    for (service, require) in [(None, None), (Some(""), None), (None, Some("0"))] {
        let (ok, text) = probe(service, require);
        assert!(ok, "{text}");
        assert!(text.contains("probe returned None"), "{text}");
        assert!(
            text.contains("skipped: LOCKBOX_TEST_SERVICES_SERVICE is not set"),
            "{text}"
        );
    }
}

#[test]
fn service_env_fails_the_test_when_services_are_required() {
    for service in [None, Some("")] {
        let (ok, text) = probe(service, Some("1"));
        assert!(!ok, "{text}");
        assert!(!text.contains("probe returned"), "{text}");
        assert!(
            text.contains("LOCKBOX_TEST_SERVICES_SERVICE is not set but LOCKBOX_REQUIRE_SERVICES=1"),
            "{text}"
        );
    }
}
