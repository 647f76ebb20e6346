//! Migrates a directory of Fernet tokens (made by Python's
//! `cryptography.fernet`) into lockbox envelopes.
//!
//! ```text
//! cargo run --example fernet_migrate --features fernet -- DIR KEYS [--kek FILE] [--ttl SECONDS --now UNIX]
//! ```
//!
//! `DIR` holds one token per `*.fernet` file; `KEYS` the Fernet keys, one
//! per line, newest first (as `MultiFernet` takes them). Each token becomes
//! `DIR/<name>.lockbox`, an envelope sealed under the local KEK in `--kek`
//! (a new one is made as `DIR/migration.kek` without it) with the context
//! `migrated-from=fernet, source=<name>`; each new envelope is opened again
//! and compared with the token's plaintext before the next token. A token
//! that fails (a wrong key, a bad HMAC, expired under `--ttl`) is reported
//! and skipped; the exit code is non-zero if any failed. The plaintext only
//! ever lives in zeroized buffers; nothing but envelopes is written.
//!
//! Try it on tokens Python makes:
//!
//! ```text
//! python3 tests/interop/make_fernet_tokens.py /tmp/tokens.json /tmp/tokens
//! cargo run --example fernet_migrate --features fernet -- /tmp/tokens /tmp/tokens/keys.txt
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool prints")]
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    reason = "small counters and argument positions of a command-line tool"
)]

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lockbox::fernet::{MultiFernet, TimeCheck};
use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};

fn run(args: &[String]) -> Result<bool, Box<dyn Error>> {
    let (dir, keys_path) = match args {
        [d, k, ..] => (PathBuf::from(d), PathBuf::from(k)),
        _ => return Err("usage: fernet_migrate DIR KEYS [--kek FILE] [--ttl SECONDS --now UNIX]".into()),
    };
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let kek = match flag("--kek") {
        Some(p) => LocalKek::from_file(p)?,
        None => {
            let p = dir.join("migration.kek");
            LocalKek::generate()?.write_new_file(&p)?;
            println!("new KEK written to {}", p.display());
            LocalKek::from_file(&p)?
        }
    };
    let time = match (flag("--ttl"), flag("--now")) {
        (Some(ttl), Some(now)) => TimeCheck::max_age(ttl.parse()?, now.parse()?),
        (None, None) => TimeCheck::none(),
        _ => return Err("--ttl and --now go together".into()),
    };
    let keys_text = zeroize::Zeroizing::new(fs::read_to_string(&keys_path)?);
    let fernet = MultiFernet::parse(keys_text.lines().map(str::trim).filter(|l| !l.is_empty()))?;
    let mut tokens: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    tokens.retain(|p| p.extension().is_some_and(|e| e == "fernet"));
    tokens.sort();
    let sealer = Sealer::new(&kek);
    let (mut ok, mut failed) = (0usize, 0usize);
    for path in &tokens {
        match migrate_one(&fernet, time, &sealer, &kek, path) {
            Ok(out) => {
                ok += 1;
                println!("migrated {} -> {}", name(path), name(&out));
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {}: {e}", name(path));
            }
        }
    }
    println!("{ok} migrated, {failed} failed");
    Ok(failed == 0 && ok > 0)
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn migrate_one(
    fernet: &MultiFernet,
    time: TimeCheck,
    sealer: &Sealer<'_>,
    kek: &LocalKek,
    path: &Path,
) -> Result<PathBuf, Box<dyn Error>> {
    let token = fs::read_to_string(path)?;
    let source = name(path);
    let ctx = EncryptionContext::new()
        .with("migrated-from", "fernet")?
        .with("source", &source)?;
    let envelope = fernet.migrate(token.trim(), time, sealer, &ctx)?;
    // Check before moving on: the envelope opens to the token's plaintext.
    let plain = fernet.decrypt(token.trim(), time)?;
    let back = zeroize::Zeroizing::new(Opener::new(kek).open(&envelope, &ctx)?);
    if back.as_slice() != plain.as_slice() {
        return Err("the envelope does not open to the token's plaintext".into());
    }
    let out = path.with_extension("lockbox");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)?
        .write_all(&envelope)?;
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
