//! This repository's rule for tests that need a running key service (an HSM
//! token, a KMS, a Vault server): skip with a printed reason on a developer
//! machine, fail in CI.
//!
//! Repository policy, not library API: the variable names and the script the
//! messages point to belong to this repository, so this file is shared by
//! source. A test crate includes it with
//! `#[path = "<relative path to>/tests/support/services.rs"] mod services;`
//! (the provider crates under `providers/` and the root crate's
//! `tests/services.rs`, which tests the rule itself).
#![allow(dead_code, unreachable_pub, reason = "each test file uses part of this module")]

use std::io::Write as _;

/// The environment variable that turns a missing service into a test failure.
pub const REQUIRE_SERVICES_VAR: &str = "LOCKBOX_REQUIRE_SERVICES";

/// The value of the environment variable `var`, for a test that needs a
/// service.
///
/// - Set and non-empty: returns it.
/// - Unset or empty, and [`REQUIRE_SERVICES_VAR`] is `1`: **panics**, failing
///   the calling test (CI must not skip).
/// - Unset or empty otherwise: prints why the test is skipped to stderr and
///   returns `None`; the test should return. The line goes to the process's
///   stderr directly, so `cargo test` shows it without `--nocapture`.
#[allow(clippy::panic, reason = "failing the calling test is the point")]
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if services_required() => panic!(
            "{var} is not set but {REQUIRE_SERVICES_VAR}=1: start the services with \
             `bash scripts/services.sh start` and `source \"$(bash scripts/services.sh env)\"`"
        ),
        _ => {
            // Straight to the process's stderr, past the test harness's
            // output capture, so the skip shows in a plain `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {var} is not set (start the services with `bash scripts/services.sh start` and \
                 `source \"$(bash scripts/services.sh env)\"`, or set {REQUIRE_SERVICES_VAR}=1 to make this a failure)"
            );
            None
        }
    }
}

/// Whether [`REQUIRE_SERVICES_VAR`] is set to `1`.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1")
}
