//! The drivers: [`Job::run`] (blocking providers and a [`Store`], on scoped
//! threads) and [`AsyncJob::run_async`] (async providers and an
//! [`AsyncStore`], concurrent futures on the caller's task), and the same
//! pair for the [`Census`]. They perform what the core decides; the item
//! loop is written once ([`drive_item!`]) and expanded for each, differing
//! only in `.await`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::Poll;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::context::EncryptionContext;
use crate::error::Error;
use crate::open::{AsyncOpener, Opener};
use crate::provider::{AsyncKeyEncryptionProvider, BoxFuture, KeyEncryptionProvider, ProviderIdentity};
use crate::rewrap::{AsyncReencryptor, AsyncRewrapper, Keep, Reencryptor, Rewrapper};
use crate::seal::{AsyncSealer, Sealer};

use super::census::{Census, CensusReport};
use super::core::{
    Limiter, Next, Outcome, Progress, RateLimit, Resume, RetryPolicy, Scan, Shard, Summary, header_line, item_line,
};
use super::item::{ItemTask, Mode, Roles, Step, chain};
use super::policy::{Assessment, MigrationPolicy, StaleEntries};
use super::store::{AsyncStore, ObjectMeta, Store, StoreError, StoreErrorKind, VersionToken};

/// Why a job (not one item) stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum JobError {
    /// The listing failed (after retries).
    Store(StoreError),
    /// The log could not be read or written.
    Log {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The log belongs to another job (another mode or shard).
    Resume(String),
    /// The job is misconfigured.
    Config(&'static str),
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => write!(f, "listing failed: {e}"),
            Self::Log { path, source } => write!(f, "job log {}: {source}", path.display()),
            Self::Resume(s) => write!(f, "cannot resume: {s}"),
            Self::Config(s) => write!(f, "job misconfigured: {s}"),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Log { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Waits for an instant, for [`AsyncJob::run_async`] and
/// [`Census::run_async`] (backoffs and the rate limit): lockbox starts no
/// runtime and picks no timer. [`TokioSleep`](super::TokioSleep) (feature
/// `tokio`) is tokio's.
pub trait Sleep: Send + Sync {
    /// A future that completes at (or soon after) `at`.
    fn sleep_until(&self, at: Instant) -> BoxFuture<'_, ()>;
}

/// The callbacks' types.
type ContextFn<'a> = &'a (dyn Fn(&str) -> EncryptionContext + Send + Sync);
type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Send + Sync);
type OutcomeFn<'a> = &'a (dyn Fn(&Outcome) + Send + Sync);

/// A bulk migration of the envelopes in a store: see [`Job`] (blocking
/// providers) and [`AsyncJob`] (async providers). The two are this type
/// over the two provider traits; their options are the same.
pub struct Migration<'a, P: ?Sized> {
    policy: Arc<MigrationPolicy>,
    stale: StaleEntries,
    roles: Roles<'a, P>,
    mode: Mode,
    shard: Shard,
    concurrency: usize,
    rate: Option<RateLimit>,
    retry: RetryPolicy,
    checkpoint_every: u64,
    context: Option<ContextFn<'a>>,
    progress: Option<ProgressFn<'a>>,
    on_outcome: Option<OutcomeFn<'a>>,
}

/// A bulk migration with blocking providers ([`KeyEncryptionProvider`]s)
/// over a [`Store`], run with [`run`](Migration::run) on scoped threads.
///
/// For each envelope of the store (of this [`Shard`]), in key order: read
/// its header (a ranged read), judge it by the [`MigrationPolicy`]; if it is
/// not current, wait for the rate limit, rewrap it (header only: the stale
/// entries removed, a fresh wrap by each `wrap_with` provider that lacks a
/// current entry, a wrap for each required key it lacks) or re-encrypt it,
/// check that the result is current, and write it back **only if the object
/// is unchanged** since it was read. Throttled or unavailable providers and
/// transient store errors are retried with exponential backoff and jitter.
///
/// Every outcome is appended to the **log** (JSON lines), and a checkpoint
/// (every key up to a cursor is finished, plus the few finished beyond it)
/// is synced every `checkpoint_every` items. Run the same job with the same
/// log again after a crash or a kill: it skips what the log says is done and
/// re-reads the rest; an envelope migrated just before the crash reads as
/// current and is skipped (never rewrapped twice, never lost: each write is
/// atomic and conditional). A log of a finished job returns its summary.
/// Memory is bounded by the concurrency and the listing window, not by the
/// number of envelopes.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lockbox::keyring::{Keyring, UnixTime};
/// use lockbox::rotation::{DirStore, Job, MigrationPolicy};
/// use lockbox::{EncryptionContext, KeyId};
///
/// let dir = tempfile::tempdir()?;
/// let t0 = UnixTime(1_700_000_000);
/// let mut ring = Keyring::generate(KeyId::new("files")?, t0)?;
/// for i in 0..20 {
///     let env = lockbox::seal(&ring, format!("file {i}").as_bytes(), &EncryptionContext::new())?;
///     std::fs::write(dir.path().join(format!("{i:02}.lbx")), env)?;
/// }
/// ring.rotate(t0.plus_secs(1))?;
///
/// let store = DirStore::new(dir.path());
/// let summary = Job::new(MigrationPolicy::new().keyring(&ring))
///     .unwrap_with(&ring)
///     .wrap_with(&ring)
///     .run(&store, dir.path().join(".lockbox-job.log"))?;
/// assert_eq!(summary.counts.get(lockbox::rotation::OutcomeKind::Rewrapped), 20);
/// # Ok(()) }
/// ```
pub type Job<'a> = Migration<'a, dyn KeyEncryptionProvider>;

/// A bulk migration with async providers ([`AsyncKeyEncryptionProvider`]s,
/// every blocking provider included) over an [`AsyncStore`] (object
/// storage; every [`Store`] included), run with
/// [`run_async`](Migration::run_async): the same job as [`Job`], its items
/// as concurrent futures on the caller's task.
pub type AsyncJob<'a> = Migration<'a, dyn AsyncKeyEncryptionProvider>;

impl<P: ?Sized> fmt::Debug for Migration<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("policy", &self.policy)
            .field("mode", &self.mode)
            .field("shard", &self.shard)
            .field("concurrency", &self.concurrency)
            .field("rate", &self.rate)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl<'a, P: ProviderIdentity + ?Sized> Migration<'a, P> {
    fn with_policy(policy: MigrationPolicy) -> Self {
        let policy = Arc::new(policy);
        Self {
            stale: StaleEntries(policy.clone()),
            policy,
            roles: Roles {
                unwrap_with: Vec::new(),
                wrap_with: Vec::new(),
                heal_with: Vec::new(),
            },
            mode: Mode::Rewrap,
            shard: Shard::ALL,
            concurrency: 8,
            rate: None,
            retry: RetryPolicy::default(),
            checkpoint_every: 256,
            context: None,
            progress: None,
            on_outcome: None,
        }
    }

    /// Tries `provider` to unwrap data keys (in the order added, for each
    /// wrapped key in header order, as an opener does). For a keyring with
    /// compromised versions, add its
    /// [`migration_provider`](crate::keyring::Keyring::migration_provider).
    #[must_use]
    pub fn unwrap_with(mut self, provider: &'a P) -> Self {
        self.roles.unwrap_with.push(provider);
        self
    }

    /// Every migrated envelope gets a fresh wrap by `provider` (unless it
    /// already has an entry of it that the policy calls current).
    #[must_use]
    pub fn wrap_with(mut self, provider: &'a P) -> Self {
        self.roles.wrap_with.push(provider);
        self
    }

    /// Wraps for the required keys ([`MigrationPolicy::require`]) an
    /// envelope lacks: the first provider that matches a missing key adds
    /// its wrap (the heal of a [quorum seal](crate::Sealer::quorum)).
    #[must_use]
    pub fn heal_with(mut self, provider: &'a P) -> Self {
        self.roles.heal_with.push(provider);
        self
    }

    /// Rewrap (default), re-encrypt, or a dry run.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Processes only this shard of the store (each machine its own).
    #[must_use]
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Items in flight at once (threads for `run`, futures for
    /// `run_async`). Default 8.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Limits provider calls (an envelope's unwrap and each of its new
    /// wraps) to `limit`, across all workers. Default: unlimited.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate = Some(limit);
        self
    }

    /// Retry attempts and backoff (default [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Syncs a checkpoint every `n` items (default 256; the log lines of the
    /// items themselves are written at once, and survive a killed process).
    #[must_use]
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = n.max(1);
        self
    }

    /// The encryption context to unwrap envelope `key` with (its required
    /// entries). Default: an empty context (envelopes with stored entries
    /// only).
    #[must_use]
    pub fn context(mut self, f: ContextFn<'a>) -> Self {
        self.context = Some(f);
        self
    }

    /// Called after every item with the progress so far.
    #[must_use]
    pub fn on_progress(mut self, f: ProgressFn<'a>) -> Self {
        self.progress = Some(f);
        self
    }

    /// Called with every item's outcome (also written to the log).
    #[must_use]
    pub fn on_outcome(mut self, f: OutcomeFn<'a>) -> Self {
        self.on_outcome = Some(f);
        self
    }

    /// The policy's verdict on an envelope just read (and opened): whether
    /// it is on a stale or compromised version, or lacks a required key.
    /// For a lazy upgrade on read: if it is not current, call
    /// [`upgrade`](Self::upgrade) (or `upgrade_async`) with the version the
    /// envelope was read at.
    pub fn assess(&self, envelope: &[u8]) -> Result<Assessment, Error> {
        self.policy.assess_envelope(envelope)
    }

    fn context_for(&self, key: &str) -> EncryptionContext {
        self.context.map_or_else(EncryptionContext::new, |f| f(key))
    }

    fn task(&self, key: &str, expected: Option<VersionToken>) -> ItemTask<'_, 'a, P> {
        ItemTask::new(key, self.mode, &self.policy, &self.roles, self.retry, expected)
    }

    fn check(&self) -> Result<(), JobError> {
        if self.mode != Mode::DryRun && self.roles.unwrap_with.is_empty() {
            return Err(JobError::Config("no provider to unwrap with (unwrap_with)"));
        }
        Ok(())
    }

    fn start(&self, log: &Path) -> Result<Option<Shared>, JobError> {
        self.check()?;
        let header = header_line(self.mode.name(), self.shard);
        let (log, resume) = JobLog::open(log, &header)?;
        let resumed = resume.checkpointed || !resume.recent.is_empty();
        if resume.finished {
            return Ok(Some(Shared::finished(log, resume)));
        }
        Ok(Some(Shared {
            scan: Scan::new(self.shard, self.concurrency, self.checkpoint_every, resume),
            log,
            limiter: self.rate.map(Limiter::new),
            error: None,
            this_run: 0,
            resumed,
            started: Instant::now(),
            finished: false,
        }))
    }

    /// Records an outcome: log line, counts, a checkpoint if due, callbacks.
    fn record(&self, shared: &Mutex<Shared>, seq: u64, outcome: &Outcome) {
        if let Some(f) = self.on_outcome {
            f(outcome);
        }
        let mut g = lock(shared);
        let due = g.scan.finish(seq, outcome);
        g.this_run = g.this_run.saturating_add(1);
        let line = item_line(outcome);
        let r = g.log.append(&line).and_then(|()| {
            if due {
                let c = g.scan.checkpoint_lines(false);
                g.log.append_synced(&c)
            } else {
                Ok(())
            }
        });
        if let Err(e) = r {
            g.error.get_or_insert(e);
        }
        let p = g.scan.progress();
        drop(g);
        if let Some(f) = self.progress {
            f(&p);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A uniform random number in `[0, 1)` for backoff jitter (not secret).
fn jitter() -> f64 {
    let mut b = [0u8; 8];
    if crate::keys::os_random(&mut b).is_err() {
        return 0.5;
    }
    let bits = u64::from_le_bytes(b) >> 11;
    // 53 random bits over 2^53: exact in an f64.
    f64::from(u32::try_from(bits >> 21).unwrap_or(0))
        .mul_add(2_097_152.0, f64::from(u32::try_from(bits & 0x1f_ffff).unwrap_or(0)))
        / 9_007_199_254_740_992.0
}

/// The state the workers share (behind one mutex).
struct Shared {
    scan: Scan,
    log: JobLog,
    limiter: Option<Limiter>,
    error: Option<JobError>,
    this_run: u64,
    resumed: bool,
    started: Instant,
    finished: bool,
}

impl Shared {
    fn finished(log: JobLog, resume: Resume) -> Self {
        Self {
            scan: Scan::new(Shard::ALL, 1, 1, resume),
            log,
            limiter: None,
            error: None,
            this_run: 0,
            resumed: true,
            started: Instant::now(),
            finished: true,
        }
    }

    /// When `calls` provider calls may start.
    fn admit(&mut self, calls: u32) -> Option<Instant> {
        self.limiter.as_mut().map(|l| l.reserve(Instant::now(), calls))
    }

    fn end(mut self) -> Result<Summary, JobError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !self.finished && self.scan.complete() {
            let c = self.scan.checkpoint_lines(true);
            self.log.append_synced(&c)?;
        }
        let p = self.scan.progress();
        Ok(Summary {
            counts: p.counts,
            listed: p.listed,
            this_run: self.this_run,
            resumed: self.resumed,
            elapsed: self.started.elapsed(),
        })
    }
}

/// The job's log file: JSON lines, appended; checkpoints synced.
struct JobLog {
    file: File,
    path: PathBuf,
}

impl JobLog {
    /// Opens (or creates) the log and replays it. A torn last line (a
    /// crash mid-write) is cut off.
    fn open(path: &Path, header: &str) -> Result<(Self, Resume), JobError> {
        let err = |source| JobError::Log {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        let mut resume = Resume::default();
        let mut good: u64 = 0;
        let mut first = true;
        {
            let mut r = BufReader::new(&file);
            let mut raw: Vec<u8> = Vec::new();
            loop {
                raw.clear();
                let n = r.read_until(b'\n', &mut raw).map_err(err)?;
                if n == 0 || raw.last() != Some(&b'\n') {
                    // End of file, or a torn last line: cut off below.
                    break;
                }
                let text = core::str::from_utf8(&raw).unwrap_or("").trim_end_matches('\n');
                if first && text != header {
                    return Err(JobError::Resume(format!(
                        "{} belongs to another job ({text}); this one is {header}",
                        path.display()
                    )));
                }
                first = false;
                resume.feed(text, header).map_err(JobError::Resume)?;
                good = good.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            }
        }
        if file.metadata().map_err(err)?.len() != good {
            file.set_len(good).map_err(err)?;
        }
        file.seek(io::SeekFrom::End(0)).map_err(err)?;
        let mut log = Self {
            file,
            path: path.to_path_buf(),
        };
        if first {
            log.append_synced(&format!("{header}\n"))?;
        }
        Ok((log, resume))
    }

    fn err(&self, source: io::Error) -> JobError {
        JobError::Log {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one item line (written at once: it survives a killed
    /// process; synced with the next checkpoint).
    fn append(&mut self, line: &str) -> Result<(), JobError> {
        let mut buf = Vec::with_capacity(line.len().saturating_add(1));
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf).map_err(|e| self.err(e))
    }

    /// Appends lines (each ending in a newline) and syncs the file.
    fn append_synced(&mut self, lines: &str) -> Result<(), JobError> {
        self.file.write_all(lines.as_bytes()).map_err(|e| self.err(e))?;
        self.file.sync_data().map_err(|e| self.err(e))
    }
}

/// One item, driven to its outcome: the store reads and writes, the rewrap
/// or re-encrypt, the rate limit and the backoffs that the [`ItemTask`]
/// asks for. Expanded once for blocking providers and stores and once for
/// async ones; the expansions differ only in the store's method names, the
/// front ends' types and `.await`.
macro_rules! drive_item {
    (
        $self:ident, $store:ident, $key:ident, $expected:ident, $admit:expr,
        store: [$read_prefix:ident, $read:ident, $replace_header:ident, $write_if_unchanged:ident],
        front: [$Rewrapper:ident, $Opener:ident, $Sealer:ident, $Reencryptor:ident],
        sleep: |$at:ident| $sleep:expr,
        await: [$($aw:tt)*]
    ) => {{
        let mut task = $self.task($key, $expected);
        let ctx = $self.context_for($key);
        loop {
            match task.step() {
                Step::ReadPrefix(n) => {
                    let r = $store.$read_prefix($key, n) $($aw)*;
                    task.read(r, Instant::now(), jitter());
                }
                Step::ReadWhole => {
                    let r = $store.$read($key) $($aw)*;
                    task.read(r, Instant::now(), jitter());
                }
                Step::Admit(calls) => {
                    if let Some($at) = $admit(calls) && $at > Instant::now() {
                        $sleep $($aw)*;
                    }
                    task.admitted();
                }
                Step::Rewrap(header, plan) => {
                    let wraps = plan.providers(&$self.roles);
                    let r = match $self.roles.unwrap_with.split_first() {
                        Some((first, rest)) => {
                            // Lenient: a migration moves envelopes whatever
                            // their stored context (it decides nothing on the
                            // data); required entries come from the job.
                            let mut rw = $Rewrapper::new(*first)
                                .lenient_context()
                                .keep(Keep::All)
                                .remove_entries_of(&$self.stale)
                                .no_new_wraps();
                            for p in rest {
                                rw = rw.also_try(*p);
                            }
                            for p in &wraps {
                                rw = rw.also_wrap_with(*p);
                            }
                            rw.rewrap_header(header, &ctx) $($aw)*
                        }
                        None => Err(Error::invalid_argument("no provider to unwrap with")),
                    };
                    task.rewrapped(r, Instant::now(), jitter());
                }
                Step::Reencrypt(envelope, plan, suite, segment_size) => {
                    let wraps = plan.providers(&$self.roles);
                    let r = match ($self.roles.unwrap_with.split_first(), wraps.split_first()) {
                        (Some((first, rest)), Some((head, tail))) => {
                            let mut opener = $Opener::new(*first).lenient_context();
                            for p in rest {
                                opener = opener.also_try(*p);
                            }
                            let mut sealer = $Sealer::new(*head).suite(suite).segment_size(segment_size);
                            for p in tail {
                                sealer = sealer.also_wrap_with(*p);
                            }
                            $Reencryptor::new(opener, sealer).reencrypt(envelope, &ctx) $($aw)*
                        }
                        _ => Err(Error::invalid_argument("no provider to unwrap with or to wrap for")),
                    };
                    task.reencrypted(r, Instant::now(), jitter());
                }
                Step::ReplaceHeader(expected, old_len, new_header) => {
                    let r = $store.$replace_header($key, expected, old_len, new_header) $($aw)*;
                    task.written(r, Instant::now(), jitter());
                }
                Step::Write(expected, bytes) => {
                    let r = $store.$write_if_unchanged($key, expected, bytes) $($aw)*;
                    task.written(r, Instant::now(), jitter());
                }
                Step::Sleep($at) => {
                    $sleep $($aw)*;
                    task.woke();
                }
                Step::Done(outcome) => break outcome,
            }
        }
    }};
}

/// A census item: the header bytes of `key` (two ranged reads at most),
/// with transient errors retried; expanded for both drivers.
macro_rules! census_item {
    ($store:ident, $key:ident, $size:ident, $read_prefix:ident, sleep: |$at:ident| $sleep:expr, await: [$($aw:tt)*]) => {{
        let retry = RetryPolicy::default();
        let mut attempt: u32 = 1;
        let mut want = super::item::PROBE_LEN;
        loop {
            match $store.$read_prefix($key, want) $($aw)* {
                Ok(f) => match Census::needs_more(&f.bytes, f.size) {
                    Some(n) if n > want => want = n,
                    _ => break Ok((f.bytes, f.size)),
                },
                Err(e) if e.kind() == StoreErrorKind::Transient => {
                    match retry.retry_at(Instant::now(), attempt, jitter()) {
                        Some($at) => {
                            $sleep $($aw)*;
                            attempt = attempt.saturating_add(1);
                        }
                        None => break Err(chain(&e)),
                    }
                }
                Err(e) => break Err(chain(&e)),
            }
        }
        .map(|(bytes, size)| (bytes, size.max($size)))
    }};
}

/// Blocking sleep until `at`.
fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

impl<'a> Job<'a> {
    /// A job migrating what `policy` selects (add providers with
    /// [`unwrap_with`](Self::unwrap_with), [`wrap_with`](Self::wrap_with),
    /// [`heal_with`](Self::heal_with)).
    pub fn new(policy: MigrationPolicy) -> Self {
        Self::with_policy(policy)
    }

    /// Runs (or resumes) the job over `store` on `concurrency` scoped
    /// threads, logging to `log` (see [`Job`]). Keep the log outside the
    /// store (or, inside a [`DirStore`](super::DirStore), name it
    /// `.lockbox-…`, which is never listed). Returns the summary of the
    /// whole job; an item's failure is an outcome, not an error. Errors are
    /// for the job itself: a listing that kept failing, the log.
    pub fn run(&self, store: &dyn Store, log: impl AsRef<Path>) -> Result<Summary, JobError> {
        let Some(shared) = self.start(log.as_ref())? else {
            return Err(JobError::Config("no job"));
        };
        if shared.finished {
            return shared.end();
        }
        let shared = Mutex::new(shared);
        blocking_pump(self.concurrency, &shared, store, &self.retry, |item| {
            let outcome = self.item(store, &item.meta.key, None, &shared);
            self.record(&shared, item.seq, &outcome);
        });
        shared
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .end()
    }

    fn item(&self, store: &dyn Store, key: &str, expected: Option<VersionToken>, shared: &Mutex<Shared>) -> Outcome {
        drive_item!(
            self, store, key, expected, |calls| lock(shared).admit(calls),
            store: [read_prefix, read, replace_header, write_if_unchanged],
            front: [Rewrapper, Opener, Sealer, Reencryptor],
            sleep: |at| sleep_until(at),
            await: []
        )
    }

    /// A lazy upgrade on read: migrates the one envelope `key` that the
    /// caller read at version `expected` (and found stale with
    /// [`assess`](Self::assess)), through the same path and checks as the
    /// bulk job, header only in rewrap mode. If the object changed since,
    /// the outcome is [`Conflict`](super::OutcomeKind::Conflict) and nothing
    /// is written. Nothing is logged (the bulk job will see it as current).
    pub fn upgrade(&self, store: &dyn Store, key: &str, expected: &VersionToken) -> Outcome {
        let shared = Mutex::new(None::<Limiter>);
        let admit = |calls| {
            lock(&shared)
                .as_mut()
                .map(|l: &mut Limiter| l.reserve(Instant::now(), calls))
        };
        let expected = Some(expected.clone());
        drive_item!(
            self, store, key, expected, admit,
            store: [read_prefix, read, replace_header, write_if_unchanged],
            front: [Rewrapper, Opener, Sealer, Reencryptor],
            sleep: |at| sleep_until(at),
            await: []
        )
    }
}

impl<'a> AsyncJob<'a> {
    /// A job migrating what `policy` selects, with async providers; see
    /// [`Job::new`].
    pub fn new(policy: MigrationPolicy) -> Self {
        Self::with_policy(policy)
    }

    /// Runs (or resumes) the job over `store` with up to `concurrency` items
    /// in flight as futures on the calling task, waiting with `sleep`; see
    /// [`Job::run`]. The log is written with blocking `std::fs` calls (one
    /// small append per item). Nothing here spawns a task or starts a
    /// runtime.
    pub async fn run_async(
        &self,
        store: &dyn AsyncStore,
        log: impl AsRef<Path>,
        sleep: &dyn Sleep,
    ) -> Result<Summary, JobError> {
        let Some(shared) = self.start(log.as_ref())? else {
            return Err(JobError::Config("no job"));
        };
        if shared.finished {
            return shared.end();
        }
        let shared = Mutex::new(shared);
        async_pump(self.concurrency, &shared, store, &self.retry, sleep, |item| {
            let shared = &shared;
            Box::pin(async move {
                let o = self.item_async(store, &item.meta.key, None, shared, sleep).await;
                self.record(shared, item.seq, &o);
            })
        })
        .await;
        shared
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .end()
    }

    async fn item_async(
        &self,
        store: &dyn AsyncStore,
        key: &str,
        expected: Option<VersionToken>,
        shared: &Mutex<Shared>,
        sleep: &dyn Sleep,
    ) -> Outcome {
        drive_item!(
            self, store, key, expected, |calls| lock(shared).admit(calls),
            store: [read_prefix_async, read_async, replace_header_async, write_if_unchanged_async],
            front: [AsyncRewrapper, AsyncOpener, AsyncSealer, AsyncReencryptor],
            sleep: |at| sleep.sleep_until(at),
            await: [.await]
        )
    }

    /// A lazy upgrade on read, with async providers and store; see
    /// [`Job::upgrade`].
    pub async fn upgrade_async(
        &self,
        store: &dyn AsyncStore,
        key: &str,
        expected: &VersionToken,
        sleep: &dyn Sleep,
    ) -> Outcome {
        let no_limit = |_calls: u32| None::<Instant>;
        let expected = Some(expected.clone());
        drive_item!(
            self, store, key, expected, no_limit,
            store: [read_prefix_async, read_async, replace_header_async, write_if_unchanged_async],
            front: [AsyncRewrapper, AsyncOpener, AsyncSealer, AsyncReencryptor],
            sleep: |at| sleep.sleep_until(at),
            await: [.await]
        )
    }
}

/// Polls every future in `set`; returns the first output and removes its
/// future. `set` must not be empty.
async fn next_done<T>(set: &mut Vec<Pin<Box<dyn Future<Output = T> + Send + '_>>>) -> T {
    core::future::poll_fn(|cx| {
        for i in 0..set.len() {
            if let Some(f) = set.get_mut(i)
                && let Poll::Ready(v) = f.as_mut().poll(cx)
            {
                drop(set.swap_remove(i));
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

/// A listing page, transient failures retried.
fn list_blocking(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
    retry: &RetryPolicy,
) -> Result<Vec<ObjectMeta>, StoreError> {
    let mut attempt: u32 = 1;
    loop {
        match store.list_after(after, limit) {
            Err(e) if e.kind() == StoreErrorKind::Transient => {
                match retry.retry_at(Instant::now(), attempt, jitter()) {
                    Some(at) => {
                        sleep_until(at);
                        attempt = attempt.saturating_add(1);
                    }
                    None => return Err(e),
                }
            }
            r => return r,
        }
    }
}

/// [`list_blocking`] for an async store.
async fn list_async(
    store: &dyn AsyncStore,
    after: Option<&str>,
    limit: usize,
    retry: &RetryPolicy,
    sleep: &dyn Sleep,
) -> Result<Vec<ObjectMeta>, StoreError> {
    let mut attempt: u32 = 1;
    loop {
        match store.list_after_async(after, limit).await {
            Err(e) if e.kind() == StoreErrorKind::Transient => {
                match retry.retry_at(Instant::now(), attempt, jitter()) {
                    Some(at) => {
                        sleep.sleep_until(at).await;
                        attempt = attempt.saturating_add(1);
                    }
                    None => return Err(e),
                }
            }
            r => return r,
        }
    }
}

/// The census's shared state.
struct CensusShared {
    scan: Scan,
    report: CensusReport,
    error: Option<JobError>,
}

impl Census<'_> {
    fn shared(&self) -> Mutex<CensusShared> {
        Mutex::new(CensusShared {
            scan: Scan::new(self.shard, self.concurrency, u64::MAX, Resume::default()),
            report: self.report(),
            error: None,
        })
    }

    fn done(shared: Mutex<CensusShared>) -> Result<CensusReport, JobError> {
        let s = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        match s.error {
            Some(e) => Err(e),
            None => Ok(s.report),
        }
    }

    fn fold(&self, shared: &Mutex<CensusShared>, item: &super::core::Item, r: Result<(Vec<u8>, u64), String>) {
        let mut g = lock(shared);
        let CensusShared { scan, report, .. } = &mut *g;
        let size = item.meta.size;
        match &r {
            Ok((bytes, size)) => self.add(report, &item.meta.key, *size, Ok(bytes)),
            Err(e) => self.add(report, &item.meta.key, size, Err(e.clone())),
        }
        let o = Outcome {
            key: String::new(),
            kind: super::OutcomeKind::Current,
            attempts: 1,
            detail: String::new(),
        };
        scan.finish(item.seq, &o);
    }

    /// Runs the census over `store` on `concurrency` scoped threads. Reads
    /// each envelope's header only (one ranged read, two for a header over
    /// 4 KiB); uses no key; writes nothing.
    pub fn run(&self, store: &dyn Store) -> Result<CensusReport, JobError> {
        let shared = self.shared();
        let retry = RetryPolicy::default();
        blocking_pump(self.concurrency, &shared, store, &retry, |item| {
            let (key, size) = (item.meta.key.as_str(), item.meta.size);
            let r = census_item!(store, key, size, read_prefix, sleep: |at| sleep_until(at), await: []);
            self.fold(&shared, &item, r);
        });
        Self::done(shared)
    }

    /// Runs the census over an async store, with up to `concurrency` header
    /// reads in flight on the calling task; see [`run`](Self::run).
    pub async fn run_async(&self, store: &dyn AsyncStore, sleep: &dyn Sleep) -> Result<CensusReport, JobError> {
        let shared = self.shared();
        let retry = RetryPolicy::default();
        async_pump(self.concurrency, &shared, store, &retry, sleep, |item| {
            let shared = &shared;
            Box::pin(async move {
                let (key, size) = (item.meta.key.as_str(), item.meta.size);
                let r = census_item!(store, key, size, read_prefix_async, sleep: |at| sleep.sleep_until(at), await: [.await]);
                self.fold(shared, &item, r);
            })
        })
        .await;
        Self::done(shared)
    }
}

/// The shared state of a job or a census: the scan and the first job error.
trait Pumped {
    fn parts(&mut self) -> (&mut Scan, &mut Option<JobError>);
}

impl Pumped for Shared {
    fn parts(&mut self) -> (&mut Scan, &mut Option<JobError>) {
        (&mut self.scan, &mut self.error)
    }
}

impl Pumped for CensusShared {
    fn parts(&mut self) -> (&mut Scan, &mut Option<JobError>) {
        (&mut self.scan, &mut self.error)
    }
}

/// The next thing to do, or `None` once a job error stopped everything.
fn next_step<S: Pumped>(shared: &Mutex<S>) -> Option<Next> {
    let mut g = lock(shared);
    let (scan, error) = g.parts();
    if error.is_some() {
        return None;
    }
    Some(scan.next())
}

/// A listing page (or its failure, which stops the job) arrived.
fn page_arrived<S: Pumped>(shared: &Mutex<S>, r: Result<Vec<ObjectMeta>, StoreError>) {
    let mut g = lock(shared);
    let (scan, error) = g.parts();
    match r {
        Ok(page) => scan.add_page(page),
        Err(e) => {
            scan.listing_failed();
            error.get_or_insert(JobError::Store(e));
        }
    }
}

/// The blocking pump: `threads` scoped threads take items (listing pages as
/// needed) and hand each to `item`, until the scan is done.
fn blocking_pump<S: Pumped + Send>(
    threads: usize,
    shared: &Mutex<S>,
    store: &dyn Store,
    retry: &RetryPolicy,
    item: impl Fn(super::core::Item) + Sync,
) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(next) = next_step(shared) {
                    match next {
                        Next::Done => return,
                        Next::Wait => std::thread::sleep(core::time::Duration::from_millis(2)),
                        Next::List { after, limit } => {
                            page_arrived(shared, list_blocking(store, after.as_deref(), limit, retry));
                        }
                        Next::Item(i) => item(i),
                    }
                }
            });
        }
    });
}

/// A future of the async pump: an item's work, or a listing page.
type PumpFuture<'f> = Pin<Box<dyn Future<Output = Option<Result<Vec<ObjectMeta>, StoreError>>> + Send + 'f>>;

/// The async pump: up to `limit` futures in flight on the calling task
/// (items from `item`, and listing pages), until the scan is done.
async fn async_pump<'f, S: Pumped + Send>(
    limit: usize,
    shared: &'f Mutex<S>,
    store: &'f dyn AsyncStore,
    retry: &'f RetryPolicy,
    sleep: &'f dyn Sleep,
    item: impl Fn(super::core::Item) -> Pin<Box<dyn Future<Output = ()> + Send + 'f>>,
) {
    let mut inflight: Vec<PumpFuture<'f>> = Vec::new();
    loop {
        while inflight.len() < limit {
            match next_step(shared) {
                Some(Next::Item(i)) => {
                    let work = item(i);
                    inflight.push(Box::pin(async move {
                        work.await;
                        None
                    }));
                }
                Some(Next::List { after, limit }) => inflight.push(Box::pin(async move {
                    Some(list_async(store, after.as_deref(), limit, retry, sleep).await)
                })),
                Some(Next::Wait | Next::Done) | None => break,
            }
        }
        if inflight.is_empty() {
            break;
        }
        if let Some(page) = next_done(&mut inflight).await {
            page_arrived(shared, page);
        }
    }
}

/// tokio's timer as a [`Sleep`] (feature `tokio`; needs a runtime with the
/// time driver enabled).
#[cfg(feature = "tokio")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSleep;

#[cfg(feature = "tokio")]
impl Sleep for TokioSleep {
    fn sleep_until(&self, at: Instant) -> BoxFuture<'_, ()> {
        Box::pin(::tokio::time::sleep_until(::tokio::time::Instant::from_std(at)))
    }
}

/// A reference to any sleeper is one too.
impl<S: Sleep + ?Sized> Sleep for &S {
    fn sleep_until(&self, at: Instant) -> BoxFuture<'_, ()> {
        (**self).sleep_until(at)
    }
}
