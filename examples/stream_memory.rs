//! Bounded memory: streams a large generated plaintext (1 GiB by default)
//! through an [`Encryptor`](lockbox::Encryptor) and a
//! [`Decryptor`](lockbox::Decryptor) at the same time, and prints the peak
//! resident memory against the baseline.
//!
//! Nothing is stored: one thread generates the plaintext and encrypts it into
//! a bounded channel (at most four segments in flight); the main thread
//! decrypts from the channel and checks every byte against the generator as
//! it arrives, keeping only a count. Peak memory therefore stays within a few segments of the baseline,
//! whatever the stream's length.
//!
//! ```sh
//! cargo run --release --example stream_memory            # 1 GiB, 64 KiB segments
//! cargo run --release --example stream_memory -- 4096 1024  # 4 GiB, 1 MiB segments
//! ```
//!
//! Arguments: the stream length in MiB (default 1024) and the segment size
//! in KiB (default 64). Peak memory is read from `/proc/self/status` (Linux);
//! elsewhere it prints "unavailable". Exits non-zero if the decrypted
//! plaintext differs from what was encrypted.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing
)]

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use lockbox::{EncryptionContext, LocalKek, Opener, Sealer, SegmentSize};

const MIB: u64 = 1 << 20;
/// Size of the chunks copied in and out of the encryptor and decryptor.
const CHUNK: usize = 64 * 1024;

/// One 64-bit word of the plaintext pattern: splitmix64 of the word index, so
/// every offset has a known, non-repeating value.
fn word(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with the pattern bytes starting at stream offset `pos`.
fn pattern_at(mut pos: u64, out: &mut [u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        let bytes = word(pos / 8).to_le_bytes();
        let src = &bytes[usize::try_from(pos % 8).unwrap_or(0)..];
        let n = src.len().min(rest.len());
        let (now, later) = rest.split_at_mut(n);
        now.copy_from_slice(&src[..n]);
        rest = later;
        pos += n as u64;
    }
}

/// A reader yielding `len` bytes of the pattern, generated on the fly.
struct Pattern {
    pos: u64,
    len: u64,
}

impl Read for Pattern {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.len - self.pos).map_or(out.len(), |left| left.min(out.len()));
        pattern_at(self.pos, &mut out[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A writer that checks what it is given against the pattern and keeps
/// nothing but a count and the first differing offset.
struct Verify {
    pos: u64,
    expected: Vec<u8>,
    first_mismatch: Option<u64>,
}

impl Write for Verify {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.expected.resize(data.len(), 0);
        pattern_at(self.pos, &mut self.expected);
        if self.first_mismatch.is_none()
            && let Some(i) = data.iter().zip(&self.expected).position(|(a, b)| a != b)
        {
            self.first_mismatch = Some(self.pos + i as u64);
        }
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes passed on to the inner writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Messages (whole segments: the encryptor writes one at a time) in flight
/// between the two threads. This, not the stream's length, bounds the memory.
const IN_FLIGHT: usize = 4;

/// The encrypting end of a bounded channel: each write is sent as one message,
/// blocking while `IN_FLIGHT` messages wait.
struct ChannelWriter(SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .send(data.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the decrypting side hung up"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The decrypting end: reads the messages in order; end of stream once the
/// writer is dropped and the channel drained.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let src = &self.current[self.pos..];
        let n = src.len().min(out.len());
        out[..n].copy_from_slice(&src[..n]);
        self.pos += n;
        Ok(n)
    }
}

fn channel() -> (ChannelReader, ChannelWriter) {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    (
        ChannelReader {
            rx,
            current: Vec::new(),
            pos: 0,
        },
        ChannelWriter(tx),
    )
}

/// Copies `from` into `to` through one reused chunk buffer.
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

struct Outcome {
    plaintext: u64,
    envelope: u64,
    first_mismatch: Option<u64>,
    elapsed: Duration,
}

/// Encrypts `len` generated bytes on one thread into the channel, decrypts and
/// verifies them on this one.
fn pipeline(kek: &LocalKek, ctx: &EncryptionContext, len: u64, segment: SegmentSize) -> io::Result<Outcome> {
    let start = Instant::now();
    let (reader, writer) = channel();
    let sealer = Sealer::new(kek).segment_size(segment);
    let opener = Opener::new(kek);
    std::thread::scope(|s| {
        let encrypting = s.spawn(move || -> io::Result<u64> {
            let mut enc = sealer.encryptor(
                Counting {
                    inner: writer,
                    bytes: 0,
                },
                ctx,
            )?;
            pump(&mut Pattern { pos: 0, len }, &mut enc)?;
            // Finishing seals the last segment; dropping the writer ends the channel.
            Ok(enc.finish()?.bytes)
        });
        // On error the decryptor (and the channel's receiver) is dropped here,
        // so the encrypting thread fails with a broken pipe instead of blocking.
        let decrypted = (|| {
            let mut dec = opener.decryptor(reader, ctx)?;
            let mut verify = Verify {
                pos: 0,
                expected: Vec::with_capacity(CHUNK),
                first_mismatch: None,
            };
            pump(&mut dec, &mut verify)?;
            Ok::<_, io::Error>(verify)
        })();
        let encrypted = encrypting
            .join()
            .map_err(|_| io::Error::other("the encrypting thread panicked"))?;
        // The encrypting side's error is the cause if both failed.
        let envelope = encrypted?;
        let verify = decrypted?;
        Ok(Outcome {
            plaintext: verify.pos,
            envelope,
            first_mismatch: verify.first_mismatch,
            elapsed: start.elapsed(),
        })
    })
}

/// `VmRSS` and `VmHWM` (peak) from `/proc/self/status`, in bytes.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+), so the peak measured
/// afterwards belongs to the pipeline alone.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// The stream length and segment size from the command line.
fn parse_args() -> Option<(u64, SegmentSize)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 2 {
        return None;
    }
    let mib_arg = args.first().map_or(Some(1024), |a| a.parse::<u64>().ok())?;
    let kib_arg = args.get(1).map_or(Some(64), |a| a.parse::<usize>().ok())?;
    let segment = SegmentSize::new(kib_arg.checked_mul(1024)?).ok()?;
    Some((mib_arg.checked_mul(MIB)?, segment))
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some((len, segment)) = parse_args() else {
        eprintln!(
            "usage: stream_memory [length in MiB, default 1024] [segment size in KiB: a power of two up to 16384, default 64]"
        );
        return Ok(ExitCode::from(2));
    };
    let seg_bytes = segment.bytes() as u64;

    let kek = LocalKek::generate()?;
    let ctx = EncryptionContext::new().with("purpose", "stream_memory example")?;

    println!(
        "stream     {:.0} MiB of generated plaintext, {}, {} KiB segments",
        mib(len),
        lockbox::Suite::default(),
        seg_bytes / 1024
    );
    println!(
        "pipeline   generate -> Encryptor -> channel ({IN_FLIGHT} segments) -> Decryptor -> verify (nothing stored)"
    );

    let reset = reset_peak();
    let before = memory();
    let outcome = pipeline(&kek, &ctx, len, segment)?;
    let after = memory();

    match (before, after) {
        (Some((baseline, _)), Some((_, peak))) => {
            let growth = peak.saturating_sub(baseline);
            println!("baseline   VmRSS {:.2} MiB", mib(baseline));
            println!(
                "peak       VmHWM {:.2} MiB{}",
                mib(peak),
                if reset {
                    ""
                } else {
                    " (could not reset the peak: includes start-up)"
                }
            );
            println!(
                "growth     {:.2} MiB = {:.1} segments of {} KiB, for a {:.0} MiB stream",
                mib(growth),
                growth as f64 / seg_bytes as f64,
                seg_bytes / 1024,
                mib(len)
            );
        }
        _ => println!("memory     unavailable (needs /proc/self/status)"),
    }
    let secs = outcome.elapsed.as_secs_f64();
    println!(
        "envelope   {} bytes ({} bytes of header and tags)",
        outcome.envelope,
        outcome.envelope - outcome.plaintext
    );
    println!(
        "time       {:.2} s, {:.0} MiB/s (encrypting and decrypting concurrently)",
        secs,
        mib(outcome.plaintext) / secs
    );
    if outcome.plaintext != len {
        println!("FAILED     decrypted {} bytes, expected {len}", outcome.plaintext);
        return Ok(ExitCode::FAILURE);
    }
    if let Some(at) = outcome.first_mismatch {
        println!("FAILED     the decrypted plaintext differs from the original at byte {at}");
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "verified   {} bytes: the decrypted plaintext matches",
        outcome.plaintext
    );
    Ok(ExitCode::SUCCESS)
}
