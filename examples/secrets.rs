//! `secrets`: a small command-line tool over `lockbox::secrets` (an
//! encrypted `.env` or `.json` file that is committed, reviewed and merged).
//!
//! ```text
//! cargo run --example secrets --features secrets,recipients -- <command> [keys] ...
//!
//! keys (any number; every one given wraps the file's key, every one that
//! can unwrap is tried to open it):
//!   --kek FILE          a local KEK file (LocalKek::from_file)
//!   --identity FILE     an identity file (opens, and wraps to its recipient)
//!   --recipient STRING  a recipient string (wraps only)
//!
//! create FILE                    a new empty file (.json: JSON form, else dotenv)
//! set FILE NAME [--json]         the value from standard input (never from argv);
//!                                --json: a JSON value (JSON form)
//! get FILE NAME                  print one value
//! remove FILE NAME
//! list FILE                      names (no key needed)
//! keys FILE                      who can open it (no key needed)
//! update-keys FILE [--add-recipient R]... [--remove-recipient R]...
//!                                rewrap the file's key; values untouched
//! rotate FILE [--remove-recipient R]...
//!                                new key for every given provider, every value re-encrypted
//! merge BASE OURS THEIRS         three-way merge into OURS (a git merge driver:
//!                                exit 1 on conflicts, which keep ours)
//! run FILE -- COMMAND [ARGS]...  run COMMAND with the values in its environment
//! demo                           all of the above in a temporary directory
//! ```
//!
//! As a git merge driver:
//!
//! ```text
//! git config merge.lockbox-secrets.driver \
//!   "cargo run -q --example secrets --features secrets,recipients -- --identity ~/.lockbox/me.identity merge %O %A %B"
//! echo '*.secrets.env merge=lockbox-secrets' >> .gitattributes
//! ```
//!
//! `run` hands the values to the child process's environment only: nothing
//! is written to disk (the values exist in the child's environment and in
//! the standard library's copy of it, which lockbox cannot zeroize).
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command-line tool prints")]
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    reason = "small counters and argument positions of a command-line tool"
)]

use std::error::Error;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use lockbox::recipient::{Identity, Recipient};
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::secrets::{CheckOutcome, Form, SecretsFile, UnlockedFile, Verify, merge};
use lockbox::{EncryptionContext, Keep, KeyEncryptionProvider, LocalKek, Opener, ProviderIdentity, Rewrapper, Sealer};

type Res<T> = Result<T, Box<dyn Error>>;

/// The keys given on the command line.
#[derive(Default)]
struct Keys {
    keks: Vec<LocalKek>,
    identities: Vec<Identity>,
    recipients: Vec<Recipient>,
}

impl Keys {
    /// Every key that wraps, in order.
    fn wrapping(&self) -> Vec<&dyn KeyEncryptionProvider> {
        let mut v: Vec<&dyn KeyEncryptionProvider> = Vec::new();
        v.extend(self.keks.iter().map(|k| -> &dyn KeyEncryptionProvider { k }));
        v.extend(self.identities.iter().map(|i| -> &dyn KeyEncryptionProvider { i }));
        v.extend(self.recipients.iter().map(|r| -> &dyn KeyEncryptionProvider { r }));
        v
    }

    /// Every key that can unwrap.
    fn opening(&self) -> Vec<&dyn KeyEncryptionProvider> {
        let mut v: Vec<&dyn KeyEncryptionProvider> = Vec::new();
        v.extend(self.keks.iter().map(|k| -> &dyn KeyEncryptionProvider { k }));
        v.extend(self.identities.iter().map(|i| -> &dyn KeyEncryptionProvider { i }));
        v
    }

    fn sealer(&self) -> Res<Sealer<'_>> {
        let w = self.wrapping();
        let (first, rest) = w
            .split_first()
            .ok_or("give at least one key (--kek, --identity, --recipient)")?;
        Ok(rest.iter().fold(Sealer::new(*first), |s, p| s.also_wrap_with(*p)))
    }

    fn opener(&self) -> Res<Opener<'_>> {
        let o = self.opening();
        let (first, rest) = o
            .split_first()
            .ok_or("give a key that can open the file (--kek or --identity)")?;
        Ok(rest.iter().fold(Opener::new(*first), |op, p| op.also_try(*p)))
    }

    fn unlock(&self, path: &Path) -> Res<UnlockedFile> {
        Ok(SecretsFile::read(path)?.unlock(&self.opener()?, &EncryptionContext::new())?)
    }
}

fn report(f: &UnlockedFile) {
    for c in f.verification().map(|v| v.checks()).unwrap_or_default() {
        let what = match c.outcome() {
            CheckOutcome::Opened => "opens the file".to_string(),
            CheckOutcome::CannotUnwrap => "public key only: its holder should open the file once".to_string(),
            CheckOutcome::Failed(e) => format!("FAILED: {e}"),
            _ => "?".to_string(),
        };
        eprintln!("  {} {}: {what}", c.provider_id(), c.key_id().unwrap_or("?"));
    }
}

fn read_stdin() -> Res<SecretString> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    let trimmed = s.strip_suffix('\n').unwrap_or(&s);
    let secret = SecretString::from(trimmed);
    zeroize::Zeroize::zeroize(&mut s);
    Ok(secret)
}

/// Parses `--kek`, `--identity`, `--recipient` out of `args`.
fn take_keys(args: &mut Vec<String>) -> Res<Keys> {
    let mut keys = Keys::default();
    let mut rest = Vec::new();
    let mut it = std::mem::take(args).into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kek" => keys.keks.push(LocalKek::from_file(it.next().ok_or("--kek FILE")?)?),
            "--identity" => keys
                .identities
                .push(Identity::from_file(it.next().ok_or("--identity FILE")?)?),
            "--recipient" => keys.recipients.push(it.next().ok_or("--recipient STRING")?.parse()?),
            "--" => {
                rest.push(a);
                rest.extend(it.by_ref());
            }
            _ => rest.push(a),
        }
    }
    *args = rest;
    Ok(keys)
}

/// Takes every `flag VALUE` pair out of `args`.
fn take_all(args: &mut Vec<String>, flag: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    while let Some(i) = args.iter().position(|a| a == flag) {
        args.remove(i);
        if i >= args.len() {
            return Err(format!("{flag} needs a value").into());
        }
        out.push(args.remove(i));
    }
    Ok(out)
}

fn command(mut args: Vec<String>) -> Res<ExitCode> {
    let keys = take_keys(&mut args)?;
    let add: Vec<Recipient> = take_all(&mut args, "--add-recipient")?
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let remove: Vec<Recipient> = take_all(&mut args, "--remove-recipient")?
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let json = args
        .iter()
        .position(|a| a == "--json")
        .map(|i| args.remove(i))
        .is_some();
    let ctx = EncryptionContext::new();
    let arg = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "missing argument (see the example's docs)".into())
    };
    match arg(0)? {
        "create" => {
            let path = PathBuf::from(arg(1)?);
            let form = Form::for_file_name(&path.to_string_lossy());
            let mut f = SecretsFile::create(form, &keys.sealer()?, &ctx, Verify::EachProvider)?;
            report(&f);
            f.save_new(&path)?;
            eprintln!("created {}", path.display());
        }
        "set" => {
            let mut f = keys.unlock(Path::new(arg(1)?))?;
            let value = read_stdin()?;
            if json {
                f.set_json(arg(2)?, value.expose_secret())?;
            } else {
                f.set(arg(2)?, value.expose_secret())?;
            }
            f.save()?;
        }
        "get" => {
            let f = keys.unlock(Path::new(arg(1)?))?;
            let v = f.get(arg(2)?)?.ok_or("no such name")?;
            let mut out = std::io::stdout().lock();
            out.write_all(v.expose_secret().as_bytes())?;
            out.write_all(b"\n")?;
        }
        "remove" => {
            let mut f = keys.unlock(Path::new(arg(1)?))?;
            if !f.remove(arg(2)?)? {
                return Err("no such name".into());
            }
            f.save()?;
        }
        "list" => {
            for n in SecretsFile::read(arg(1)?)?.names() {
                println!("{n}");
            }
        }
        "keys" => {
            let f = SecretsFile::read(arg(1)?)?;
            for w in lockbox::inspect(f.key_envelope())?.wrapped_keys() {
                println!("{} {} (version {})", w.provider_id(), w.key_id(), w.key_version().0);
            }
        }
        "update-keys" => {
            let opening = keys.opening();
            let first = *opening.first().ok_or("give a key that can open the file")?;
            let mut rw = Rewrapper::new(first).keep(Keep::All).no_new_wraps();
            for p in opening.iter().skip(1) {
                rw = rw.also_try(*p);
            }
            for r in &add {
                rw = rw.also_wrap_with(r);
            }
            for r in &remove {
                rw = rw.remove_entries_of(r);
            }
            let path = arg(1)?;
            let mut f = SecretsFile::read(path)?.update_keys(&rw, &ctx, Verify::EachProvider)?;
            report(&f);
            f.save()?;
        }
        "rotate" => {
            let removed: Vec<&dyn ProviderIdentity> = remove.iter().map(|r| -> &dyn ProviderIdentity { r }).collect();
            let mut f = SecretsFile::read(arg(1)?)?.rotate_removing(
                &keys.opener()?,
                &keys.sealer()?,
                &removed,
                &ctx,
                Verify::EachProvider,
            )?;
            report(&f);
            f.save()?;
        }
        "merge" => {
            let (base, ours, theirs) = (
                keys.unlock(Path::new(arg(1)?))?,
                keys.unlock(Path::new(arg(2)?))?,
                keys.unlock(Path::new(arg(3)?))?,
            );
            let mut m = merge(&base, &ours, &theirs)?;
            m.file.save_replacing(arg(2)?)?;
            if !m.conflicts.is_empty() {
                eprintln!("conflicts (ours kept; resolve with `set`): {}", m.conflicts.join(", "));
                return Ok(ExitCode::FAILURE);
            }
        }
        "run" => {
            let f = keys.unlock(Path::new(arg(1)?))?;
            let dash = args.iter().position(|a| a == "--").ok_or("run FILE -- COMMAND ...")?;
            let (prog, prog_args) = args
                .get(dash + 1..)
                .and_then(|c| c.split_first())
                .ok_or("run FILE -- COMMAND ...")?;
            let secrets = f.load()?;
            let status = Command::new(prog)
                .args(prog_args)
                .envs(secrets.env_vars()?.iter().map(|(k, v)| (k.as_str(), v.expose_secret())))
                .status()?;
            return Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        "demo" => demo()?,
        other => return Err(format!("unknown command {other:?}").into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Every command, unattended, in a temporary directory (what CI runs).
fn demo() -> Res<()> {
    let dir = std::env::temp_dir().join(format!("lockbox-secrets-example-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let r = demo_in(&dir);
    std::fs::remove_dir_all(&dir)?;
    r
}

fn demo_in(dir: &Path) -> Res<()> {
    let exe = std::env::current_exe()?;
    let kek = dir.join("kek");
    LocalKek::generate()?.write_new_file(&kek)?;
    let (alice, bob) = (dir.join("alice.identity"), dir.join("bob.identity"));
    Identity::generate()?.write_new_file(&alice)?;
    Identity::generate()?.write_new_file(&bob)?;
    let bob_recipient = Identity::from_file(&bob)?.recipient().to_string();
    let file = dir.join("app.env");
    let f = file.to_str().ok_or("path")?;
    let k = kek.to_str().ok_or("path")?;
    let a = alice.to_str().ok_or("path")?;
    let b = bob.to_str().ok_or("path")?;
    let run = |args: &[&str], stdin: Option<&str>| -> Res<String> {
        let mut c = Command::new(&exe);
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn()?;
        if let Some(mut s) = child.stdin.take() {
            s.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("secrets {args:?} failed").into());
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    println!("$ secrets create app.env --kek kek --identity alice.identity --recipient <bob>");
    run(
        &["create", f, "--kek", k, "--identity", a, "--recipient", &bob_recipient],
        None,
    )?;
    run(
        &["set", f, "DATABASE_URL", "--kek", k],
        Some("postgres://app:hunter2@db/app"),
    )?;
    run(&["set", f, "API_TOKEN", "--identity", a], Some("tok_live_123"))?;
    println!("$ secrets list app.env\n{}", run(&["list", f], None)?.trim_end());
    let got = run(&["get", f, "API_TOKEN", "--identity", b], None)?;
    assert_eq!(got.trim_end(), "tok_live_123");
    println!("bob reads API_TOKEN with his identity");
    let before = std::fs::read_to_string(&file)?;
    run(&["set", f, "API_TOKEN", "--kek", k], Some("tok_live_456"))?;
    let after = std::fs::read_to_string(&file)?;
    let changed = before.lines().zip(after.lines()).filter(|(x, y)| x != y).count();
    println!("changing one value changed {changed} lines (the value and the authenticator)");
    assert_eq!(changed, 2);
    // Remove Bob, then rotate: he can read neither.
    run(
        &["update-keys", f, "--kek", k, "--remove-recipient", &bob_recipient],
        None,
    )?;
    assert!(run(&["get", f, "API_TOKEN", "--identity", b], None).is_err());
    println!("after update-keys removed bob, his identity no longer opens the file (the error above)");
    run(&["rotate", f, "--kek", k, "--identity", a], None)?;
    println!("$ secrets keys app.env\n{}", run(&["keys", f], None)?.trim_end());
    // Merge two edits of the same file.
    let (base, ours, theirs) = (dir.join("base.env"), dir.join("ours.env"), dir.join("theirs.env"));
    for p in [&base, &ours, &theirs] {
        std::fs::copy(&file, p)?;
    }
    run(
        &["set", ours.to_str().ok_or("path")?, "DATABASE_URL", "--kek", k],
        Some("postgres://ours"),
    )?;
    run(
        &["set", theirs.to_str().ok_or("path")?, "NEW_FLAG", "--kek", k],
        Some("on"),
    )?;
    run(
        &[
            "merge",
            base.to_str().ok_or("path")?,
            ours.to_str().ok_or("path")?,
            theirs.to_str().ok_or("path")?,
            "--kek",
            k,
        ],
        None,
    )?;
    println!(
        "merged: {}",
        run(&["list", ours.to_str().ok_or("path")?], None)?
            .trim_end()
            .replace('\n', ", ")
    );
    // Run a command with the values in its environment.
    let check = "test \"$API_TOKEN\" = tok_live_456 && test \"$NEW_FLAG\" = on && echo the child sees its secrets";
    let out = run(
        &[
            "run",
            ours.to_str().ok_or("path")?,
            "--identity",
            a,
            "--",
            "sh",
            "-c",
            check,
        ],
        None,
    )?;
    println!("{}", out.trim_end());
    println!("secrets demo: every command passed");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match command(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
