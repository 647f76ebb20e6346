//! Repository tasks, run as `cargo xtask <task>` (the alias is in
//! `.cargo/config.toml`). Not published.
//!
//! - `gen-vectors <dir>`: generates the frozen envelope test vectors missing
//!   from `<dir>` (`tests/vectors/v1`), checking each against this build of
//!   lockbox and never overwriting a file. See `tests/vectors/README.md`.
//! - `gen-recipient-vectors <dir>`: generates the deterministic vectors of the
//!   recipient and passphrase providers (`tests/vectors/recipients`), writes
//!   the missing ones and fails if a committed one differs.
//! - `gen-secrets-vectors <dir>`: generates the secrets-file vectors missing
//!   from `<dir>` (`tests/vectors/secrets`), never overwriting one.

use std::path::PathBuf;
use std::process::ExitCode;

mod gen_recipient_vectors;
mod gen_secrets_vectors;
mod gen_vectors;

const USAGE: &str = "usage: cargo xtask gen-vectors <output directory, e.g. tests/vectors/v1>\n       cargo xtask gen-recipient-vectors <output directory, e.g. tests/vectors/recipients>\n       cargo xtask gen-secrets-vectors <output directory, e.g. tests/vectors/secrets>";

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let result = match args.as_slice() {
        [task, dir] if task == "gen-vectors" => gen_vectors::run(PathBuf::from(dir)),
        [task, dir] if task == "gen-recipient-vectors" => gen_recipient_vectors::run(PathBuf::from(dir)),
        [task, dir] if task == "gen-secrets-vectors" => gen_secrets_vectors::run(PathBuf::from(dir)),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr, reason = "a command-line tool reports its error")]
            {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
