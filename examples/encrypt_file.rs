//! Encrypts and decrypts files with a local key-encryption key, streaming
//! (memory stays at a few segments whatever the file size) and showing a
//! progress bar on long work.
//!
//! ```sh
//! cargo run --release --example encrypt_file                    # demo in a temporary directory
//! cargo run --release --example encrypt_file -- keygen kek.b64
//! cargo run --release --example encrypt_file -- encrypt report.pdf report.pdf.lockbox --key kek.b64
//! cargo run --release --example encrypt_file -- decrypt report.pdf.lockbox report.pdf --key kek.b64
//! ```
//!
//! Outputs are written to a temporary file next to the destination and
//! renamed into place when complete; an existing output is never overwritten.
//! Decryption renames only after the whole envelope authenticated, so a
//! tampered or truncated file never leaves partial plaintext behind.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};
use tempfile::NamedTempFile;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:
  encrypt_file                                   demo: generate, encrypt, decrypt and compare a 64 MiB file
  encrypt_file keygen <kek-file>                 create a new local KEK file (mode 0600, never overwritten)
  encrypt_file encrypt <in> <out> --key <kek-file>
  encrypt_file decrypt <in> <out> --key <kek-file>";

const MIB: f64 = 1024.0 * 1024.0;
/// Chunk size for reading and writing (the envelope's segments are 64 KiB).
const CHUNK: usize = 64 * 1024;
/// Work shorter than this shows no progress bar (unless forced).
const SHOW_AFTER: Duration = Duration::from_millis(500);
/// At most ten redraws a second.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The encryption context: authenticated by the envelope and bound into the
/// wrapped data key. Decryption must supply the same. The stored `purpose`
/// entry is readable in the header; binding the file name as well would stop
/// an envelope from being passed off as another file, but would then break
/// on renaming it.
fn context() -> Result<EncryptionContext> {
    Ok(EncryptionContext::new().with("purpose", "encrypt_file example")?)
}

/// A text progress bar on stderr: `label [#####.....]  42%  27.0/64.0 MiB  312 MiB/s`.
struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    last_draw: Option<Instant>,
    /// Draw from the start, however short the work.
    always: bool,
}

impl Progress {
    fn new(label: &'static str, total: u64, always: bool) -> Self {
        Self {
            label,
            total,
            done: 0,
            start: Instant::now(),
            last_draw: None,
            always,
        }
    }

    fn advance(&mut self, n: usize) {
        self.done += n as u64;
        let now = Instant::now();
        let due = match self.last_draw {
            Some(t) => now.duration_since(t) >= REDRAW_EVERY,
            None => self.always || now.duration_since(self.start) >= SHOW_AFTER,
        };
        if due {
            self.draw(now);
        }
    }

    fn draw(&mut self, now: Instant) {
        const WIDTH: usize = 30;
        let fraction = if self.total == 0 {
            1.0
        } else {
            (self.done.min(self.total) as f64) / self.total as f64
        };
        let filled = match self.total {
            0 => WIDTH,
            total => usize::try_from(self.done.min(total) * WIDTH as u64 / total).unwrap_or(WIDTH),
        };
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        eprint!(
            "\r{:<8} [{}{}] {:3.0}%  {:.1}/{:.1} MiB  {:.0} MiB/s ",
            self.label,
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            fraction * 100.0,
            self.done as f64 / MIB,
            self.total as f64 / MIB,
            self.done as f64 / MIB / secs,
        );
        let _ = io::stderr().flush();
        self.last_draw = Some(now);
    }

    /// Draws the final state if the bar is showing, and ends its line.
    fn finish(&mut self) {
        if self.last_draw.is_some() || self.always {
            self.draw(Instant::now());
            eprintln!();
            self.last_draw = None;
            self.always = false;
        }
    }
}

impl Drop for Progress {
    /// On an error the bar stops where it was, on a line of its own.
    fn drop(&mut self) {
        if self.last_draw.is_some() {
            eprintln!();
        }
    }
}

/// A reader that reports the bytes it passes through to a [`Progress`].
struct Counted<'a, R> {
    inner: R,
    progress: &'a mut Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n);
        Ok(n)
    }
}

/// Copies `from` into `to` through one reused buffer; returns the byte count.
fn pump(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A temporary file (mode 0600) in the directory of `output`, so that the
/// final rename stays on one file system and is atomic.
fn temp_beside(output: &Path) -> Result<NamedTempFile> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    NamedTempFile::new_in(dir).map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()).into())
}

/// Syncs `tmp` and links it into place as `output` (never overwriting).
fn commit(tmp: NamedTempFile, output: &Path) -> Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(output).map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => format!("{} already exists (not overwritten)", output.display()).into(),
        _ => Box::<dyn std::error::Error>::from(format!("cannot create {}: {}", output.display(), e.error)),
    })?;
    Ok(())
}

fn open_input(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()).into())
}

/// Encrypts `input` into a new file `output`; returns (plaintext, envelope) sizes.
fn encrypt(kek: &LocalKek, input: &Path, output: &Path, always: bool) -> Result<(u64, u64)> {
    let file = open_input(input)?;
    let mut progress = Progress::new("encrypt", file.metadata()?.len(), always);
    let mut enc = Sealer::new(kek).encryptor(temp_beside(output)?, &context()?)?;
    let plaintext = pump(
        &mut Counted {
            inner: file,
            progress: &mut progress,
        },
        &mut enc,
    )?;
    // Without finish() the envelope would lack its final segment and never open.
    let tmp = enc.finish()?;
    let envelope = tmp.as_file().metadata()?.len();
    commit(tmp, output)?;
    progress.finish();
    Ok((plaintext, envelope))
}

/// Decrypts `input` into a new file `output`; returns (envelope, plaintext) sizes.
fn decrypt(kek: &LocalKek, input: &Path, output: &Path, always: bool) -> Result<(u64, u64)> {
    let file = open_input(input)?;
    let envelope = file.metadata()?.len();
    let mut progress = Progress::new("decrypt", envelope, always);
    // The decryptor releases each segment as soon as its tag verifies, but a
    // truncated, reordered or extended envelope is only detected at the point
    // of the damage, possibly near the end. So the plaintext goes to a
    // temporary file and is renamed to `output` only once `read` returned
    // Ok(0): every segment, the final one and the absence of trailing data
    // authenticated. On any error the temporary file is deleted (not wiped)
    // when `tmp` drops, so a failed decryption never leaves partial plaintext
    // under the output name.
    let mut tmp = temp_beside(output)?;
    let mut dec = Opener::new(kek).decryptor(
        Counted {
            inner: file,
            progress: &mut progress,
        },
        &context()?,
    )?;
    let plaintext = pump(&mut dec, &mut tmp)?;
    drop(dec);
    commit(tmp, output)?;
    progress.finish();
    Ok((envelope, plaintext))
}

fn load_key(path: &Path) -> Result<LocalKek> {
    Ok(LocalKek::from_file(path)?)
}

fn show(bytes: u64) -> String {
    format!("{bytes} bytes ({:.1} MiB)", bytes as f64 / MIB)
}

fn per_second(bytes: u64, elapsed: Duration) -> String {
    format!("{:.0} MiB/s", bytes as f64 / MIB / elapsed.as_secs_f64().max(1e-9))
}

/// Deterministic test data: splitmix64 words.
fn fill_pattern(word_index: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let mut z = word_index.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        *word_index += 1;
    }
}

/// Whether two files hold the same bytes, compared chunk by chunk.
fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// No arguments: the whole cycle in a temporary directory, with the bar always shown.
fn demo() -> Result<()> {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name);
    let (plain, sealed, opened, key) = (
        path("data.bin"),
        path("data.bin.lockbox"),
        path("data.out"),
        path("kek.b64"),
    );
    println!("demo in {}", dir.path().display());

    let mut f = File::create(&plain)?;
    let mut buf = vec![0u8; CHUNK];
    let mut word = 0u64;
    for _ in 0..SIZE / CHUNK {
        fill_pattern(&mut word, &mut buf);
        f.write_all(&buf)?;
    }
    drop(f);
    println!("wrote      {} {}", plain.display(), show(SIZE as u64));

    LocalKek::generate()?.write_new_file(&key)?;
    let kek = load_key(&key)?;
    println!("keygen     {} (key id {}, mode 0600)", key.display(), kek.key_id());

    let t = Instant::now();
    let (pt, env) = encrypt(&kek, &plain, &sealed, true)?;
    println!(
        "encrypted  {} -> {} {} in {:.2?} ({}; {} bytes of header and tags)",
        plain.display(),
        sealed.display(),
        show(env),
        t.elapsed(),
        per_second(pt, t.elapsed()),
        env - pt
    );
    let t = Instant::now();
    let (_, pt2) = decrypt(&kek, &sealed, &opened, true)?;
    println!(
        "decrypted  {} -> {} {} in {:.2?} ({})",
        sealed.display(),
        opened.display(),
        show(pt2),
        t.elapsed(),
        per_second(pt2, t.elapsed())
    );
    let same = same_contents(&plain, &opened)?;
    println!(
        "compared   {}",
        if same { "identical to the original" } else { "DIFFERENT" }
    );

    // Tamper with one byte near the end: decryption fails there, after most
    // of the plaintext was released, and still leaves no output file.
    let tampered = path("tampered.lockbox");
    let bad_out = path("tampered.out");
    std::fs::copy(&sealed, &tampered)?;
    let mut bytes = std::fs::read(&tampered)?;
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    std::fs::write(&tampered, &bytes)?;
    drop(bytes);
    match decrypt(&kek, &tampered, &bad_out, false) {
        Ok(_) => return Err("a tampered envelope decrypted".into()),
        Err(e) => println!(
            "tampered   byte {at} flipped: decryption failed ({e}); {} {}",
            bad_out.display(),
            if bad_out.exists() { "EXISTS" } else { "was not created" }
        ),
    }
    if !same || bad_out.exists() {
        return Err("the demo failed".into());
    }
    Ok(())
}

enum Command {
    Demo,
    Help,
    Keygen(PathBuf),
    Encrypt {
        input: PathBuf,
        output: PathBuf,
        key: PathBuf,
    },
    Decrypt {
        input: PathBuf,
        output: PathBuf,
        key: PathBuf,
    },
}

fn parse(args: &[String]) -> Option<Command> {
    let Some((cmd, rest)) = args.split_first() else {
        return Some(Command::Demo);
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => Some(Command::Help),
        "keygen" => match rest {
            [path] => Some(Command::Keygen(path.into())),
            _ => None,
        },
        "encrypt" | "decrypt" => {
            let mut key = None;
            let mut paths = Vec::new();
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--key" | "-k" => key = Some(PathBuf::from(it.next()?)),
                    _ => paths.push(PathBuf::from(a)),
                }
            }
            let (key, [input, output]) = (key?, <[PathBuf; 2]>::try_from(paths).ok()?);
            Some(if cmd == "encrypt" {
                Command::Encrypt { input, output, key }
            } else {
                Command::Decrypt { input, output, key }
            })
        }
        _ => None,
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Demo => demo(),
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Keygen(path) => {
            let kek = LocalKek::generate()?;
            kek.write_new_file(&path)?;
            println!("wrote a new KEK to {} (key id {})", path.display(), kek.key_id());
            Ok(())
        }
        Command::Encrypt { input, output, key } => {
            let t = Instant::now();
            let (pt, env) = encrypt(&load_key(&key)?, &input, &output, false)?;
            println!(
                "encrypted {} -> {}: {} into {} in {:.2?}",
                input.display(),
                output.display(),
                show(pt),
                show(env),
                t.elapsed()
            );
            Ok(())
        }
        Command::Decrypt { input, output, key } => {
            let t = Instant::now();
            let (env, pt) = decrypt(&load_key(&key)?, &input, &output, false)?;
            println!(
                "decrypted {} -> {}: {} from {}, authenticated, in {:.2?}",
                input.display(),
                output.display(),
                show(pt),
                show(env),
                t.elapsed()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
