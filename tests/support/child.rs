//! Child processes of the tests (the test binary re-executed with one test
//! selected): started without any environment variable that holds a local
//! KEK, so a key this process holds in its environment (`LocalKek::from_env`)
//! never reaches a process the tests start. Every test that spawns a process
//! starts it through [`test_binary`].
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::ffi::OsString;
use std::process::Command;

/// Whether `value` is a key in the text form `LocalKek::from_env` reads
/// (standard base64 of 32 bytes, surrounding whitespace ignored).
pub fn holds_a_kek(value: &std::ffi::OsStr) -> bool {
    value
        .to_str()
        .is_some_and(|v| lockbox::hazmat::local_kek_from_base64(v).is_ok())
}

/// The names of this process's environment variables that hold a KEK.
pub fn kek_variables() -> Vec<OsString> {
    std::env::vars_os()
        .filter(|(_, v)| holds_a_kek(v))
        .map(|(k, _)| k)
        .collect()
}

/// This test binary, set to run exactly `test` (`--nocapture`, one thread),
/// with every variable holding a KEK removed from its environment. Set the
/// variables a child needs on the result (after this, so they are kept).
pub fn test_binary(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]);
    for name in kek_variables() {
        cmd.env_remove(name);
    }
    cmd
}
