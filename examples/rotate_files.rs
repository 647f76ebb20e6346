//! Rotates the key-encryption key of a directory of envelopes by rewrapping
//! them in place (streaming, atomic per file), then re-encrypts one file as
//! after a suspected data-key compromise.
//!
//! ```sh
//! cargo run --release --example rotate_files     # demo in a temporary directory
//! ```
//!
//! Each file is rewritten through a temporary file in the same directory,
//! synced and renamed over the original, and the directory is synced: a crash
//! leaves either the old or the new envelope, never a torn one. A file that
//! fails (here: one whose header was damaged) is reported and left as it was;
//! the others go on.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use lockbox::{EncryptionContext, LocalKek, Opener, Reencryptor, Rewrapper, Sealer};
use tempfile::NamedTempFile;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Writes `path` atomically: `fill` writes the new content into a temporary
/// file beside it, which is synced and renamed over `path`; then the
/// directory is synced so the rename itself is durable.
fn replace_atomically(path: &Path, fill: impl FnOnce(&mut BufWriter<&File>) -> Result<()>) -> Result<()> {
    let dir = path.parent().ok_or("no parent directory")?;
    let tmp = NamedTempFile::new_in(dir)?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let old = LocalKek::generate()?;
    let new = LocalKek::generate()?;
    let ctx = EncryptionContext::new().with_required("tenant", "acme")?;

    // Seal some files under the old KEK, one of them 64 MiB.
    let sizes = [
        ("small.lbx", 1_000usize),
        ("medium.lbx", 1 << 20),
        ("large.lbx", 64 << 20),
    ];
    for (name, size) in sizes {
        let data: Vec<u8> = (0..size).map(|i| u8::try_from(i % 251).unwrap_or(0)).collect();
        fs::write(dir.path().join(name), Sealer::new(&old).seal(&data, &ctx)?)?;
    }
    // And one whose header was damaged in storage.
    let mut damaged = Sealer::new(&old).seal(b"unlucky", &ctx)?;
    damaged[20] ^= 0x40;
    fs::write(dir.path().join("damaged.lbx"), &damaged)?;

    // Rotate: unwrap with the old KEK, wrap with the new one; payloads are
    // copied, never decrypted. Memory stays at one header plus one segment.
    let rewrapper = Rewrapper::new(&old).wrap_with(&new);
    let mut names: Vec<_> = fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for path in &names {
        let start = Instant::now();
        let size = fs::metadata(path)?.len();
        let r = replace_atomically(path, |w| {
            let input = BufReader::new(File::open(path)?);
            rewrapper.rewrap_stream(input, w, &ctx)?;
            Ok(())
        });
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match r {
            Ok(()) => println!("rewrapped {name:<11} {:>9} bytes in {:>8.2?}", size, start.elapsed()),
            Err(e) => println!("FAILED    {name:<11} ({e}); left unchanged"),
        }
    }
    assert_eq!(fs::read(dir.path().join("damaged.lbx"))?, damaged);

    // The new KEK opens the rotated files; the old one no longer does.
    let medium = fs::read(dir.path().join("medium.lbx"))?;
    assert_eq!(lockbox::open(&new, &medium, &ctx)?.len(), 1 << 20);
    assert!(lockbox::open(&old, &medium, &ctx).is_err());
    println!("new KEK opens the rotated files; the old KEK does not");

    // A suspected data-key compromise: re-encrypt (new data key, new message
    // id, new payload), streaming.
    let path = dir.path().join("large.lbx");
    let before = *lockbox::inspect(&fs::read(&path)?)?.message_id();
    let start = Instant::now();
    let reencryptor = Reencryptor::new(Opener::new(&new), Sealer::new(&new));
    replace_atomically(&path, |w| {
        reencryptor.reencrypt_stream(BufReader::new(File::open(&path)?), w, &ctx)?;
        Ok(())
    })?;
    let after = fs::read(&path)?;
    println!(
        "re-encrypted large.lbx in {:.2?}; message id changed: {}",
        start.elapsed(),
        &before != lockbox::inspect(&after)?.message_id()
    );
    assert_eq!(lockbox::open(&new, &after, &ctx)?.len(), 64 << 20);
    Ok(())
}
