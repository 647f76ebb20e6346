//! [`JsonLinesSink`]: a tamper-evident audit log of JSON lines, and
//! [`LogVerifier`], which checks one. The format is specified in `AUDIT.md`;
//! the chain is described on [`JsonLinesSink`].

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::record::{push_hex, rfc3339};
use super::{AuditError, AuditEvent, AuditKey, AuditRecord, AuditSink};
use crate::access::{SystemClock, WallClock};
use crate::error::Error;

const CHAIN_LABEL: &[u8] = b"lockbox.audit.v1 chain\0";
const FORMAT: &str = "lockbox.audit.v1";
/// Longest line the verifier reads (records leave out contexts beyond
/// 64 KiB, so a record stays far below it).
const MAX_LINE: usize = 1 << 20;
const OPEN_BODY: &str = "\"type\":\"log\",\"event\":\"open\"";
const CLOSE_BODY: &str = "\"type\":\"log\",\"event\":\"close\"";

/// The last record of a log: its sequence number and digest. Keep it where
/// the log's attacker cannot write, and check the log against it with
/// [`LogVerifier::expect_head`]. Displays as `<seq>:<64 hex>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The record's sequence number.
    pub seq: u64,
    /// Its digest (hash or MAC).
    pub digest: [u8; 32],
}

impl fmt::Display for ChainHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        push_hex(&mut s, &self.digest);
        write!(f, "{}:{s}", self.seq)
    }
}

impl ChainHead {
    /// Parses the `<seq>:<64 hex>` form.
    pub fn parse(s: &str) -> Option<Self> {
        let (seq, hex) = s.split_once(':')?;
        Some(Self {
            seq: parse_seq(seq.as_bytes())?,
            digest: parse_hex32(hex.as_bytes())?,
        })
    }
}

/// The chain's digest of a line's signed bytes.
fn digest(key: Option<&AuditKey>, signed: &[u8]) -> [u8; 32] {
    match key {
        Some(k) => k.mac(&[CHAIN_LABEL, signed]),
        None => Sha256::new()
            .chain_update(CHAIN_LABEL)
            .chain_update(signed)
            .finalize()
            .into(),
    }
}

/// The writing end of a chain: the file and the last record's head.
struct Writer {
    file: BufWriter<File>,
    key: Option<AuditKey>,
    clock: Arc<dyn WallClock>,
    next_seq: u64,
    prev: [u8; 32],
    line: String,
    session_records: u64,
}

impl Writer {
    /// Appends one record whose body `body` writes (after `"ts"`).
    fn append(&mut self, body: impl FnOnce(&mut String)) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        line.push_str("{\"seq\":");
        line.push_str(&alloc::format!("{}", self.next_seq));
        line.push_str(",\"prev\":\"");
        push_hex(line, &self.prev);
        line.push_str("\",\"ts\":\"");
        rfc3339(line, self.clock.now());
        line.push_str("\",");
        body(line);
        let d = digest(self.key.as_ref(), line.as_bytes());
        line.push_str(if self.key.is_some() {
            ",\"mac\":\""
        } else {
            ",\"hash\":\""
        });
        push_hex(line, &d);
        line.push_str("\"}\n");
        self.file.write_all(line.as_bytes())?;
        self.prev = d;
        self.next_seq = self.next_seq.saturating_add(1);
        self.session_records = self.session_records.saturating_add(1);
        Ok(())
    }

    fn event(&mut self, record: &AuditRecord) -> io::Result<()> {
        self.append(|l| {
            l.push_str("\"type\":\"event\",");
            record.write_fields(l);
        })
    }

    fn open_record(&mut self) -> io::Result<()> {
        let key_id = self.key.as_ref().map(AuditKey::id);
        self.append(|l| {
            l.push_str(OPEN_BODY);
            l.push_str(&alloc::format!(
                ",\"format\":\"{FORMAT}\",\"authenticated\":{}",
                key_id.is_some()
            ));
            if let Some(id) = key_id {
                l.push_str(&alloc::format!(",\"key_id\":\"{id}\""));
            }
        })
    }

    fn close_record(&mut self) -> io::Result<()> {
        let n = self.session_records;
        self.append(|l| {
            l.push_str(CLOSE_BODY);
            l.push_str(&alloc::format!(",\"records\":{n}"));
        })
    }

    fn head(&self) -> Option<ChainHead> {
        self.next_seq
            .checked_sub(1)
            .map(|seq| ChainHead { seq, digest: self.prev })
    }

    fn flush(&mut self, sync: bool) -> io::Result<Option<ChainHead>> {
        self.file.flush()?;
        if sync {
            self.file.get_ref().sync_data()?;
        }
        Ok(self.head())
    }
}

/// Messages to the writer thread.
enum Msg {
    Record(Box<AuditRecord>),
    Flush {
        sync: bool,
        reply: SyncSender<Result<Option<ChainHead>, String>>,
    },
    Close(SyncSender<Result<Option<ChainHead>, String>>),
}

/// The sink's state shared with its writer.
struct Shared {
    /// Inline mode: the writer itself.
    writer: Mutex<Option<Writer>>,
    /// The first write error; after it, records are refused.
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn failure(&self) -> MutexGuard<'_, Option<String>> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: &io::Error) {
        let mut f = self.failure();
        if f.is_none() {
            *f = Some(alloc::format!("writing the audit log failed: {e}"));
        }
    }

    fn check(&self) -> Result<(), AuditError> {
        match &*self.failure() {
            Some(f) => Err(AuditError::new(f.clone())),
            None => Ok(()),
        }
    }
}

enum Mode {
    Inline,
    Background {
        tx: SyncSender<Msg>,
        thread: Option<JoinHandle<()>>,
    },
}

/// An [`AuditSink`] writing a hash-chained (optionally HMAC-ed) JSON-lines
/// file (`AUDIT.md` specifies it).
///
/// # The chain (`lockbox.audit.v1`)
///
/// Every record is one line, a JSON object whose first fields are its
/// sequence number and the digest of the record before it, and whose last
/// field is its own digest:
///
/// ```text
/// {"seq":7,"prev":"<64 hex>","ts":"2026-05-01T12:00:00.123Z","type":"event",...,"hash":"<64 hex>"}
/// ```
///
/// The digest covers the line's bytes up to (not including) `,"hash":` —
/// `seq`, `prev`, the time and the whole event: SHA-256 of a domain label
/// and those bytes, or, with an [`AuditKey`], HMAC-SHA-256 under it, in a
/// field named `mac` instead of `hash`. The first record has `seq` 0 and
/// an all-zero `prev`. Each time a sink opens the file it appends an `open`
/// record (`"type":"log","event":"open"`), and [`JsonLinesSink::close`]
/// (or dropping the sink) appends a `close` record.
///
/// What the verifier catches:
///
/// - a **modified** record: its digest no longer matches its bytes, or (if
///   the digest was recomputed) the next record's `prev` no longer matches;
/// - a **deleted** record: a gap in `seq` (and a `prev` that does not link);
/// - an **inserted** record: a `seq` seen twice, or a record whose MAC does
///   not verify;
/// - **reordered** records: every `seq` present once, out of order.
///
/// **Truncation at the end** leaves a valid chain, so it is caught by
/// other means: a log whose writer closed it ends with a `close` record
/// ([`LogReport::closed`], [`LogVerifier::require_closed`]); and
/// [`JsonLinesSink::head`] gives the latest `(seq, digest)` to keep
/// somewhere the log's attacker cannot write (another host, a database, a
/// ticket), which [`LogVerifier::expect_head`] then requires.
///
/// **Without a key the chain is only tamper-evident against someone who
/// does not recompute it**: anyone who can write the file can rewrite the
/// records after any point with fresh hashes. Anchor the head externally,
/// or use an [`AuditKey`] held away from the log (then forging a record
/// needs the key, and the `close` record cannot be forged either).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use lockbox::access::Layered;
/// use lockbox::audit::{Audit, AuditKey, JsonLinesSink, LogVerifier};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("audit.jsonl");
/// let key = AuditKey::generate()?; // keep it away from the log's host
/// let log = Arc::new(JsonLinesSink::builder(&path).hmac_key(key.clone()).build()?);
/// let kek = Layered::new(lockbox::LocalKek::generate()?, Audit::new(log.clone()));
/// lockbox::seal(&kek, b"x", &lockbox::EncryptionContext::new())?;
/// let head = log.head()?.unwrap(); // anchor it elsewhere
/// let report = LogVerifier::new().key(&key).expect_head(head).verify_file(&path)?;
/// assert_eq!(report.records, 2); // open, wrap
/// # Ok(()) }
/// ```
///
/// # Writing
///
/// By default records are handed to a writer thread through a bounded
/// queue (4096 records): `record` costs the conversion to an owned
/// [`AuditRecord`] and a channel send, and waits only when the queue is
/// full (records are never dropped). The writer batches what is queued and
/// hands each batch to the OS with one write. [`inline`](JsonLinesBuilder::inline)
/// writes each record under a lock instead, so that `record` returns only
/// once its line reached the OS (and reports a failed write at once).
/// [`sync`](Self::sync) makes everything so far durable (`fdatasync`).
///
/// The file is opened for appending (created owner-only), locked against a
/// second writer, and continued: a sink opening an existing log checks its
/// last record and links to it. A log that does not end with a complete,
/// valid record is refused (verify it: a crash can leave a torn last line).
///
/// After a write fails every later `record` fails: with an
/// [`Audit`](super::Audit) layer, provider calls then fail closed.
pub struct JsonLinesSink {
    shared: Arc<Shared>,
    mode: Mode,
    path: PathBuf,
}

/// Builds a [`JsonLinesSink`]; from [`JsonLinesSink::builder`].
pub struct JsonLinesBuilder {
    path: PathBuf,
    key: Option<AuditKey>,
    queue: Option<usize>,
    clock: Arc<dyn WallClock>,
}

impl JsonLinesSink {
    /// Starts building a sink appending to `path`.
    pub fn builder(path: impl AsRef<Path>) -> JsonLinesBuilder {
        JsonLinesBuilder {
            path: path.as_ref().to_path_buf(),
            key: None,
            queue: Some(4096),
            clock: Arc::new(SystemClock),
        }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ask(
        &self,
        make: impl FnOnce(SyncSender<Result<Option<ChainHead>, String>>) -> Msg,
    ) -> Result<Option<ChainHead>, AuditError> {
        match &self.mode {
            Mode::Inline => unreachable_mode(),
            Mode::Background { tx, .. } => {
                let (reply, answer) = sync_channel(1);
                tx.send(make(reply))
                    .map_err(|_| AuditError::new("the audit writer has stopped"))?;
                answer
                    .recv()
                    .map_err(|_| AuditError::new("the audit writer has stopped"))?
                    .map_err(AuditError::new)
            }
        }
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut Writer) -> io::Result<T>) -> Result<T, AuditError> {
        let mut w = self.shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(writer) = w.as_mut() else {
            return Err(AuditError::new("the audit log is closed"));
        };
        f(writer).map_err(|e| {
            self.shared.fail(&e);
            AuditError::new("writing the audit log failed").with_source(e)
        })
    }

    fn flush_inner(&self, sync: bool) -> Result<Option<ChainHead>, AuditError> {
        self.shared.check()?;
        match self.mode {
            Mode::Inline => self.with_writer(|w| w.flush(sync)),
            Mode::Background { .. } => self.ask(|reply| Msg::Flush { sync, reply }),
        }
    }

    /// Waits until every record accepted so far is written to the OS;
    /// returns the chain's head (`None` for an empty log).
    pub fn flush(&self) -> Result<Option<ChainHead>, AuditError> {
        self.flush_inner(false)
    }

    /// [`flush`](Self::flush), then `fdatasync`: every record accepted so
    /// far is durable.
    pub fn sync(&self) -> Result<Option<ChainHead>, AuditError> {
        self.flush_inner(true)
    }

    /// The head after everything accepted so far is written: keep it away
    /// from the log (see [`LogVerifier::expect_head`]).
    pub fn head(&self) -> Result<Option<ChainHead>, AuditError> {
        self.flush()
    }

    /// Appends the `close` record, syncs and releases the file. Returns the
    /// final head.
    pub fn close(mut self) -> Result<Option<ChainHead>, AuditError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<Option<ChainHead>, AuditError> {
        match &mut self.mode {
            Mode::Inline => {
                let r = self.with_writer(|w| {
                    w.close_record()?;
                    w.flush(true)
                });
                self.shared.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
                r
            }
            Mode::Background { thread, .. } => {
                let Some(t) = thread.take() else {
                    return Err(AuditError::new("the audit log is closed"));
                };
                let r = self.ask(Msg::Close);
                let _ = t.join();
                r
            }
        }
    }
}

#[allow(clippy::panic, reason = "the inline mode never reaches here")]
fn unreachable_mode() -> ! {
    panic!("audit writer message in inline mode")
}

impl Drop for JsonLinesSink {
    fn drop(&mut self) {
        let open = match &self.mode {
            Mode::Inline => self
                .shared
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some(),
            Mode::Background { thread, .. } => thread.is_some(),
        };
        if open {
            let _ = self.close_inner();
        }
    }
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("path", &self.path)
            .field("inline", &matches!(self.mode, Mode::Inline))
            .field("failure", &*self.shared.failure())
            .finish_non_exhaustive()
    }
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        self.shared.check()?;
        let record = event.to_record();
        match &self.mode {
            Mode::Inline => self.with_writer(|w| {
                w.event(&record)?;
                w.file.flush()
            }),
            Mode::Background { tx, .. } => tx
                .send(Msg::Record(Box::new(record)))
                .map_err(|_| AuditError::new("the audit writer has stopped")),
        }
    }
}

impl JsonLinesBuilder {
    /// Authenticates every record with HMAC-SHA-256 under `key` (a key of
    /// the audit's own; keep it away from the log's host if you can).
    #[must_use]
    pub fn hmac_key(mut self, key: AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The writer thread's queue length (default 4096 records; at least 1).
    #[must_use]
    pub fn queue(mut self, records: usize) -> Self {
        self.queue = Some(records.max(1));
        self
    }

    /// Writes each record in the calling thread, under a lock, instead of
    /// on a writer thread.
    #[must_use]
    pub fn inline(mut self) -> Self {
        self.queue = None;
        self
    }

    /// The clock the records' `ts` is read from (default the system's).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opens (or creates) the log, checks and continues its chain, and
    /// appends an `open` record. Fails with [`Error::KeyLoad`]-style I/O
    /// errors ([`Error::key_load`]) if the file cannot be opened or locked,
    /// or its last record is torn or does not verify.
    pub fn build(self) -> Result<JsonLinesSink, Error> {
        let shown = self.path.display().to_string();
        let io_err =
            |what: &str, e: io::Error| Error::key_load(alloc::format!("audit log {shown}: {what}"), Some(e.into()));
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&self.path).map_err(|e| io_err("cannot open", e))?;
        file.try_lock().map_err(|e| {
            io_err(
                "locked by another writer",
                match e {
                    std::fs::TryLockError::Error(e) => e,
                    std::fs::TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
                },
            )
        })?;
        let head = last_head(&mut file, self.key.as_ref()).map_err(|e| io_err("cannot continue the chain", e))?;
        let mut writer = Writer {
            file: BufWriter::with_capacity(64 * 1024, file),
            key: self.key,
            clock: self.clock,
            next_seq: head.map_or(0, |h| h.seq.saturating_add(1)),
            prev: head.map_or([0; 32], |h| h.digest),
            line: String::with_capacity(1024),
            session_records: 0,
        };
        writer.open_record().map_err(|e| io_err("cannot write", e))?;
        writer.file.flush().map_err(|e| io_err("cannot write", e))?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(None),
            failure: Mutex::new(None),
        });
        let mode = match self.queue {
            None => {
                *shared.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
                Mode::Inline
            }
            Some(capacity) => {
                let (tx, rx) = sync_channel(capacity);
                let s = shared.clone();
                let thread = std::thread::Builder::new()
                    .name(String::from("lockbox-audit"))
                    .spawn(move || run_writer(writer, &rx, &s))
                    .map_err(|e| io_err("cannot start the writer thread", e))?;
                Mode::Background {
                    tx,
                    thread: Some(thread),
                }
            }
        };
        Ok(JsonLinesSink {
            shared,
            mode,
            path: self.path,
        })
    }
}

impl fmt::Debug for JsonLinesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesBuilder")
            .field("path", &self.path)
            .field("key", &self.key)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The writer thread: records in batches, one write per batch.
fn run_writer(mut w: Writer, rx: &Receiver<Msg>, shared: &Shared) {
    let reply_err = |e: &io::Error| alloc::format!("writing the audit log failed: {e}");
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Record(r) => {
                    if shared.check().is_ok()
                        && let Err(e) = w.event(&r)
                    {
                        shared.fail(&e);
                    }
                }
                Msg::Flush { sync, reply } => {
                    let r = match shared.check() {
                        Ok(()) => w.flush(sync).map_err(|e| {
                            shared.fail(&e);
                            reply_err(&e)
                        }),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = reply.send(r);
                }
                Msg::Close(reply) => {
                    let r = w.close_record().and_then(|()| w.flush(true)).map_err(|e| reply_err(&e));
                    let _ = reply.send(r);
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = w.file.flush() {
            shared.fail(&e);
        }
    }
    // Every sender is gone without a close (cannot happen through the
    // sink, which always closes): still close the log.
    let _ = w.close_record().and_then(|()| w.flush(true));
}

/// The head of an existing log: its last line, verified. `None` for an
/// empty file.
fn last_head(file: &mut File, key: Option<&AuditKey>) -> io::Result<Option<ChainHead>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let tail_len = len.min(u64::try_from(MAX_LINE).unwrap_or(u64::MAX).saturating_add(1));
    file.seek(SeekFrom::Start(len.saturating_sub(tail_len)))?;
    let mut tail = Vec::new();
    file.take(tail_len).read_to_end(&mut tail)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let body = tail
        .strip_suffix(b"\n")
        .ok_or_else(|| bad("the log's last line is torn (no newline)"))?;
    let last = body.rsplit(|b| *b == b'\n').next().unwrap_or(body);
    let line = parse_line(last).ok_or_else(|| bad("the log's last line is not a record"))?;
    if line.mac != key.is_some() {
        return Err(bad("the log's last record was written with another key setting"));
    }
    if !line.verifies(key) {
        return Err(bad("the log's last record does not verify"));
    }
    Ok(Some(ChainHead {
        seq: line.seq,
        digest: line.digest,
    }))
}

/// One parsed line.
struct Line<'a> {
    seq: u64,
    prev: [u8; 32],
    digest: [u8; 32],
    mac: bool,
    signed: &'a [u8],
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Event,
}

impl Line<'_> {
    fn verifies(&self, key: Option<&AuditKey>) -> bool {
        if self.mac && key.is_none() {
            // Cannot be checked without the key.
            return true;
        }
        let want = digest(key.filter(|_| self.mac), self.signed);
        bool::from(want.ct_eq(&self.digest))
    }
}

fn parse_seq(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s.first() == Some(&b'0')) || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(s).ok()?.parse().ok()
}

fn parse_hex32(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(c.wrapping_sub(b'a').wrapping_add(10)),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (&[hi, lo], _) = pair.split_at(2) else { return None };
        *o = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(out)
}

/// Strictly parses the fixed parts of a record line (without its newline).
fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let comma = rest.iter().position(|b| *b == b',')?;
    let (seq, rest) = rest.split_at(comma);
    let seq = parse_seq(seq)?;
    let rest = rest.strip_prefix(b",\"prev\":\"")?;
    let (prev, rest) = rest.split_at_checked(64)?;
    let prev = parse_hex32(prev)?;
    let body = rest.strip_prefix(b"\",\"ts\":\"")?;
    let rest = line.strip_suffix(b"\"}")?;
    let (rest, digest) = rest.split_at_checked(rest.len().checked_sub(64)?)?;
    let digest = parse_hex32(digest)?;
    let (signed, mac) = if let Some(s) = rest.strip_suffix(b",\"hash\":\"") {
        (s, false)
    } else {
        (rest.strip_suffix(b",\"mac\":\"")?, true)
    };
    // After the time: the record's type.
    let close = body.iter().position(|b| *b == b'"')?;
    let after_ts = body.get(close..)?.strip_prefix(b"\",")?;
    let kind = if after_ts.starts_with(OPEN_BODY.as_bytes()) {
        Kind::Open
    } else if after_ts.starts_with(CLOSE_BODY.as_bytes()) {
        Kind::Close
    } else if after_ts.starts_with(b"\"type\":\"event\"") {
        Kind::Event
    } else {
        return None;
    };
    if signed.len() < line.len().checked_sub(body.len())? {
        return None;
    }
    Some(Line {
        seq,
        prev,
        digest,
        mac,
        signed,
        kind,
    })
}

/// What a verified log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogReport {
    /// Records (lines), `open` and `close` records included.
    pub records: u64,
    /// How many times a sink opened the log.
    pub sessions: u64,
    /// The last record's head (`None` for an empty log).
    pub head: Option<ChainHead>,
    /// Whether the log ends with a `close` record. A log whose writer is
    /// still running, crashed, or whose end was cut off does not.
    pub closed: bool,
    /// Whether every record's MAC was verified under the given key
    /// (`false` for a hash-only log, or a MAC-ed one checked without key).
    pub authenticated: bool,
}

/// How a log was tampered with (line numbers from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// The line is not a record of this format.
    Malformed {
        /// The line.
        line: u64,
    },
    /// The record's bytes changed: its digest or MAC does not match, or
    /// the next record does not link to it.
    Modified {
        /// The line.
        line: u64,
    },
    /// Records are missing before this line.
    Deleted {
        /// The first line after the gap.
        line: u64,
        /// How many records are missing.
        missing: u64,
    },
    /// The record was added: its sequence number was already used, or it
    /// does not authenticate and takes no missing place.
    Inserted {
        /// The line.
        line: u64,
    },
    /// Every record is there, out of order, starting at this line.
    Reordered {
        /// The first line out of place.
        line: u64,
    },
    /// The log ends before the head it was expected to reach.
    Truncated {
        /// The expected last sequence number.
        expected: u64,
        /// The log's last sequence number (`None`: empty).
        found: Option<u64>,
    },
    /// The log does not end with a `close` record, and one was required.
    NotClosed,
    /// A key was given but the records are not MAC-ed (or mix MACs and
    /// hashes from this line on).
    NotAuthenticated {
        /// The line.
        line: u64,
    },
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line } => write!(f, "line {line} is not an audit record"),
            Self::Modified { line } => write!(f, "the record on line {line} was modified"),
            Self::Deleted { line, missing } => write!(f, "{missing} record(s) deleted before line {line}"),
            Self::Inserted { line } => write!(f, "the record on line {line} was inserted"),
            Self::Reordered { line } => write!(f, "records reordered from line {line}"),
            Self::Truncated { expected, found } => match found {
                Some(n) => write!(f, "the log was truncated: it ends at record {n}, expected {expected}"),
                None => write!(f, "the log was truncated: it is empty, expected record {expected}"),
            },
            Self::NotClosed => f.write_str("the log does not end with a close record"),
            Self::NotAuthenticated { line } => write!(f, "the record on line {line} is not authenticated"),
        }
    }
}

/// Why a log did not verify.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// The log could not be read.
    Io(io::Error),
    /// The log was tampered with.
    Tampered(Tamper),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read the audit log: {e}"),
            Self::Tampered(t) => write!(f, "audit log tampered with: {t}"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Tampered(_) => None,
        }
    }
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Checks a [`JsonLinesSink`] log: every record's digest (or MAC, given
/// the key), the chain's links and sequence, and optionally an externally
/// kept head and a clean close. See [`JsonLinesSink`] for what it catches.
///
/// The whole log is checked in one pass, keeping about 90 bytes per record.
#[derive(Debug, Default)]
pub struct LogVerifier<'k> {
    key: Option<&'k AuditKey>,
    head: Option<ChainHead>,
    require_closed: bool,
}

struct Entry {
    line: u64,
    seq: u64,
    prev: [u8; 32],
    digest: [u8; 32],
    valid: bool,
    kind: Kind,
}

impl<'k> LogVerifier<'k> {
    /// A verifier checking hashes (and MACs' links, without a key).
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies every record's MAC under `key`, and requires every record
    /// to have one.
    #[must_use]
    pub fn key(mut self, key: &'k AuditKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Requires the log to reach `head` (kept away from the log) and to
    /// hold that exact record: catches truncation and rewrites up to it.
    #[must_use]
    pub fn expect_head(mut self, head: ChainHead) -> Self {
        self.head = Some(head);
        self
    }

    /// Requires the log to end with a `close` record.
    #[must_use]
    pub fn require_closed(mut self) -> Self {
        self.require_closed = true;
        self
    }

    /// Verifies the log at `path`.
    pub fn verify_file(&self, path: impl AsRef<Path>) -> Result<LogReport, LogError> {
        self.verify(BufReader::new(File::open(path)?))
    }

    /// Verifies a log read from `reader`.
    pub fn verify<R: BufRead>(&self, mut reader: R) -> Result<LogReport, LogError> {
        let tampered = |t| Err(LogError::Tampered(t));
        let mut entries = Vec::new();
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        let mut mac_mode = None;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(u64::try_from(MAX_LINE).unwrap_or(u64::MAX).saturating_add(1))
                .read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line_no = line_no.saturating_add(1);
            let Some(text) = buf.strip_suffix(b"\n") else {
                // Over-long, or a torn last line.
                return tampered(Tamper::Malformed { line: line_no });
            };
            let Some(line) = parse_line(text) else {
                return tampered(Tamper::Malformed { line: line_no });
            };
            if self.key.is_some() && !line.mac || mac_mode.is_some_and(|m| m != line.mac) {
                return tampered(Tamper::NotAuthenticated { line: line_no });
            }
            mac_mode = Some(line.mac);
            entries.push(Entry {
                line: line_no,
                seq: line.seq,
                prev: line.prev,
                digest: line.digest,
                valid: line.verifies(self.key),
                kind: line.kind,
            });
        }
        if let Some(t) = classify(&entries) {
            return tampered(t);
        }
        let last = entries.last();
        let head = last.map(|e| ChainHead {
            seq: e.seq,
            digest: e.digest,
        });
        if let Some(want) = self.head {
            match entries.get(usize::try_from(want.seq).unwrap_or(usize::MAX)) {
                None => {
                    return tampered(Tamper::Truncated {
                        expected: want.seq,
                        found: head.map(|h| h.seq),
                    });
                }
                Some(e) if !bool::from(e.digest.ct_eq(&want.digest)) => {
                    return tampered(Tamper::Modified { line: e.line });
                }
                Some(_) => {}
            }
        }
        let closed = last.is_some_and(|e| e.kind == Kind::Close);
        if self.require_closed && !closed {
            return tampered(Tamper::NotClosed);
        }
        Ok(LogReport {
            records: u64::try_from(entries.len()).unwrap_or(u64::MAX),
            sessions: u64::try_from(entries.iter().filter(|e| e.kind == Kind::Open).count()).unwrap_or(u64::MAX),
            head,
            closed,
            authenticated: self.key.is_some() && mac_mode == Some(true),
        })
    }
}

/// The first sign of tampering in a parsed log, if any.
fn classify(entries: &[Entry]) -> Option<Tamper> {
    let seen_twice = |e: &Entry| entries.iter().filter(|o| o.seq == e.seq).nth(1).is_some();
    // Records whose own bytes do not verify.
    if let Some(e) = entries.iter().find(|e| !e.valid) {
        return Some(if seen_twice(e) {
            Tamper::Inserted { line: e.line }
        } else {
            Tamper::Modified { line: e.line }
        });
    }
    // The sequence: duplicates, gaps, order.
    let mut sorted: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w.first() == w.get(1)) {
        let dup = w.first().copied();
        // The genuine one is linked to by its successor; the copy is not.
        let copies: Vec<&Entry> = entries.iter().filter(|e| Some(e.seq) == dup).collect();
        let linked = |c: &Entry| entries.iter().any(|o| bool::from(o.prev.ct_eq(&c.digest)));
        let line = copies
            .iter()
            .find(|c| !linked(c))
            .or(copies.last())
            .map_or(0, |c| c.line);
        return Some(Tamper::Inserted { line });
    }
    let contiguous = sorted.iter().zip(0u64..).all(|(s, i)| *s == i);
    let mut expected = 0u64;
    for e in entries {
        if e.seq != expected {
            return Some(if contiguous {
                Tamper::Reordered { line: e.line }
            } else if e.seq > expected {
                Tamper::Deleted {
                    line: e.line,
                    missing: e.seq.saturating_sub(expected),
                }
            } else {
                Tamper::Reordered { line: e.line }
            });
        }
        expected = expected.saturating_add(1);
    }
    // The links: a record whose successor does not name it was replaced.
    let mut prev = [0u8; 32];
    let mut prev_line = None;
    for e in entries {
        if !bool::from(e.prev.ct_eq(&prev)) {
            return Some(Tamper::Modified {
                line: prev_line.unwrap_or(e.line),
            });
        }
        prev = e.digest;
        prev_line = Some(e.line);
    }
    // A log starts with an open record.
    match entries.first() {
        Some(e) if e.kind != Kind::Open => Some(Tamper::Malformed { line: e.line }),
        _ => None,
    }
}
