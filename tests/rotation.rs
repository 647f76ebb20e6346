//! The rotation engine over a real directory: census, rewrap and re-encrypt
//! jobs, resume after SIGKILL at random points (child processes), concurrent
//! modification, throttling providers, rate limits, shards, quorum seals
//! and their heal, lazy upgrade on read, and the async driver.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::print_stderr,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockbox::keyring::{KEYRING_PROVIDER_ID, Keyring, UnixTime};
use lockbox::rotation::{
    AsyncJob, Census, DirStore, Fetched, Job, MigrationPolicy, Mode, ObjectMeta, OutcomeKind, RateLimit, Reason,
    RetryPolicy, Shard, Store, StoreError, VersionToken,
};
use lockbox::{
    Binding, DataKey, EncryptionContext, Error, KeyEncryptionProvider, KeyId, KeyVersion, LocalKek, ProviderError,
    ProviderErrorKind, ProviderIdentity, Sealer, WrappedKey, WrappedKeyRef,
};
use sha2::{Digest, Sha256};

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("app", "rotation-test").unwrap()
}

/// `n` envelopes under `dir`, in 16 subdirectories, sealed by `p`. One in
/// ten is 20 KB (its header is rewritten in place of a longer file; the
/// small ones are read whole by the header probe and written whole).
fn populate(dir: &Path, n: usize, p: &dyn KeyEncryptionProvider) {
    for i in 0..n {
        let sub = dir.join(format!("{:02x}", i % 16));
        std::fs::create_dir_all(&sub).unwrap();
        let pad = if i % 10 == 3 { 20_000 } else { i % 200 };
        let data = format!("envelope number {i} {}", "x".repeat(pad));
        std::fs::write(
            sub.join(format!("e{i:05}.lbx")),
            lockbox::seal(p, data.as_bytes(), &ctx()).unwrap(),
        )
        .unwrap();
    }
}

/// Every file's payload (after the header) hashed, by key.
fn payload_hashes(dir: &Path) -> BTreeMap<String, [u8; 32]> {
    let store = DirStore::new(dir);
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_after(after.as_deref(), 500).unwrap();
        for m in &page {
            let bytes = std::fs::read(dir.join(&m.key)).unwrap();
            let h = lockbox::inspect(&bytes).map(|i| i.header_len()).unwrap_or(0);
            out.insert(m.key.clone(), Sha256::digest(&bytes[h..]).into());
        }
        if page.len() < 500 {
            return out;
        }
        after = page.last().map(|m| m.key.clone());
    }
}

fn kek_from(b64: &str) -> LocalKek {
    lockbox::hazmat::local_kek_from_base64(b64).unwrap()
}

#[test]
fn census_counts_reasons_strands_and_unreadables() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = UnixTime(1_700_000_000);
    let mut ring = Keyring::generate(KeyId::new("ring").unwrap(), t0).unwrap();
    let dr = LocalKek::generate().unwrap();
    populate(dir.path(), 10, &ring); // v1 only
    ring.rotate(t0).unwrap(); // v2
    // Five more under v2 and a recovery key.
    for i in 0..5 {
        let env = Sealer::new(&ring).also_wrap_with(&dr).seal(b"both", &ctx()).unwrap();
        std::fs::write(dir.path().join(format!("both{i}.lbx")), env).unwrap();
    }
    std::fs::write(dir.path().join("junk.txt"), b"not an envelope").unwrap();
    // Cut inside the header (a payload cut short can still frame: only
    // opening finds that out).
    let mut truncated = lockbox::seal(&ring, b"truncated", &ctx()).unwrap();
    truncated.truncate(60);
    std::fs::write(dir.path().join("trunc.lbx"), truncated).unwrap();
    std::fs::write(dir.path().join(".lockbox-ignored"), b"engine file").unwrap();
    ring.compromised(KeyVersion(1), t0).unwrap();

    let policy = MigrationPolicy::new()
        .keyring(&ring)
        .require(lockbox::LOCAL_PROVIDER_ID, dr.key_id().as_str());
    let seen = AtomicU64::new(0);
    let count = |_: &lockbox::rotation::CensusItem<'_>| {
        seen.fetch_add(1, Ordering::Relaxed);
    };
    let report = Census::new(policy.clone())
        .revoking(KEYRING_PROVIDER_ID, "ring", Some(KeyVersion(1)))
        .revoking(KEYRING_PROVIDER_ID, "ring", Some(KeyVersion(2)))
        .on_item(&count)
        .concurrency(3)
        .run(&DirStore::new(dir.path()))
        .unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 17);
    assert_eq!(report.objects.envelopes, 17);
    assert_eq!(report.unreadable.envelopes, 2);
    assert_eq!(report.needs_migration.envelopes, 10);
    assert_eq!(report.by_reason[&Reason::Compromised].envelopes, 10);
    assert_eq!(report.current.envelopes, 5);
    let v1 = &report.keys[&(KEYRING_PROVIDER_ID.to_string(), "ring".to_string(), KeyVersion(1))];
    assert_eq!(v1.carried.envelopes, 10);
    assert_eq!(v1.sole.envelopes, 10);
    assert_eq!(v1.stale, Some(Reason::Compromised));
    let v2 = &report.keys[&(KEYRING_PROVIDER_ID.to_string(), "ring".to_string(), KeyVersion(2))];
    assert_eq!((v2.carried.envelopes, v2.sole.envelopes), (5, 0));
    // Revoking v1 strands the 10 it alone protects; v2 strands nothing (the
    // recovery key also opens its envelopes).
    assert_eq!(report.revocations[0].protects.envelopes, 10);
    assert_eq!(report.revocations[0].strands.envelopes, 10);
    assert_eq!(report.revocations[1].protects.envelopes, 5);
    assert_eq!(report.revocations[1].strands.envelopes, 0);
    // The ten v1 envelopes lack the required recovery key.
    assert_eq!(report.missing.values().next().unwrap().envelopes, 10);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["needs_migration"]["envelopes"], 10);
    assert_eq!(json["revocations"][0]["strands"]["envelopes"], 10);
    assert_eq!(json["unreadable_sample"].as_array().unwrap().len(), 2);
    // The census agrees with Keyring::needs_migration on every envelope.
    for (k, _) in payload_hashes(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&k)).unwrap();
        if let Ok(info) = lockbox::inspect(&bytes) {
            let a = policy.assess_envelope(&bytes).unwrap();
            assert_eq!(a.needs_migration(), ring.needs_migration(&info), "{k}");
        }
    }
}

#[test]
fn rewrap_job_keeps_payloads_and_a_second_run_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = UnixTime(1_700_000_000);
    let mut ring = Keyring::generate(KeyId::new("ring").unwrap(), t0).unwrap();
    populate(dir.path(), 200, &ring);
    let before = payload_hashes(dir.path());
    ring.rotate(t0).unwrap();
    let store = DirStore::new(dir.path());
    // A dry run selects every envelope and writes nothing.
    let dry = Job::new(MigrationPolicy::new().keyring(&ring))
        .mode(Mode::DryRun)
        .run(&store, dir.path().join(".lockbox-dry.log"))
        .unwrap();
    assert_eq!(dry.counts.get(OutcomeKind::Selected), 200, "{dry}");
    assert_eq!(payload_hashes(dir.path()), before);
    let log = dir.path().join(".lockbox-job.log");
    let progress_calls = AtomicU64::new(0);
    let progress = |_: &lockbox::rotation::Progress| {
        progress_calls.fetch_add(1, Ordering::Relaxed);
    };
    let policy = MigrationPolicy::new().keyring(&ring);
    let job = Job::new(policy.clone())
        .unwrap_with(&ring)
        .wrap_with(&ring)
        .concurrency(4)
        .checkpoint_every(16)
        .on_progress(&progress);
    let s = job.run(&store, &log).unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Rewrapped), 200, "{s}");
    assert_eq!(s.listed, 200);
    assert!(s.all_done());
    assert_eq!(progress_calls.load(Ordering::Relaxed), 200);
    assert_eq!(payload_hashes(dir.path()), before, "payloads are byte-identical");
    let report = Census::new(policy).run(&store).unwrap();
    assert_eq!(report.current.envelopes, 200);
    for k in before.keys() {
        let env = std::fs::read(dir.path().join(k)).unwrap();
        let info = lockbox::inspect(&env).unwrap();
        assert_eq!(info.wrapped_keys().len(), 1);
        assert_eq!(info.wrapped_keys()[0].key_version(), KeyVersion(2));
        assert!(lockbox::open(&ring, &env, &ctx()).is_ok());
    }
    // The log says the job is done: a rerun returns the summary, touches nothing.
    let again = job.run(&store, &log).unwrap();
    assert_eq!(again.this_run, 0);
    assert_eq!(again.counts.get(OutcomeKind::Rewrapped), 200);
    // A new log: every envelope is current.
    let fresh = job.run(&store, dir.path().join(".lockbox-job2.log")).unwrap();
    assert_eq!(fresh.counts.get(OutcomeKind::Current), 200);
    // A log of another job is refused.
    let other = Job::new(MigrationPolicy::new())
        .unwrap_with(&ring)
        .mode(Mode::Reencrypt);
    assert!(other.run(&store, &log).is_err());
}

#[test]
fn reencrypt_job_gives_new_data_keys() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    populate(dir.path(), 30, &old);
    let store = DirStore::new(dir.path());
    let policy = MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str());
    let before: Vec<_> = payload_hashes(dir.path()).into_iter().collect();
    let s = Job::new(policy.clone())
        .unwrap_with(&old)
        .wrap_with(&new)
        .mode(Mode::Reencrypt)
        .run(&store, dir.path().join(".lockbox-re.log"))
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Reencrypted), 30, "{s}");
    for (k, h) in before {
        let env = std::fs::read(dir.path().join(&k)).unwrap();
        let info = lockbox::inspect(&env).unwrap();
        assert_ne!(Sha256::digest(&env[info.header_len()..]).as_slice(), h);
        assert!(lockbox::open(&new, &env, &ctx()).is_ok());
        assert!(lockbox::open(&old, &env, &ctx()).is_err());
    }
}

/// A store that lets another writer modify chosen objects between the
/// engine's read and its write.
#[derive(Debug)]
struct Meddling {
    inner: DirStore,
    victims: Vec<String>,
    replacement: Vec<u8>,
}

impl Meddling {
    /// Someone else writes the object (in place: the same inode).
    fn meddle(&self, key: &str) {
        if self.victims.iter().any(|k| k == key) {
            std::fs::write(self.inner.root().join(key), &self.replacement).unwrap();
        }
    }
}

impl Store for Meddling {
    fn list_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list_after(after, limit)
    }
    fn read_prefix(&self, key: &str, len: u64) -> Result<Fetched, StoreError> {
        self.inner.read_prefix(key, len)
    }
    fn read(&self, key: &str) -> Result<Fetched, StoreError> {
        self.inner.read(key)
    }
    fn replace_header(&self, key: &str, v: &VersionToken, old: u64, h: &[u8]) -> Result<VersionToken, StoreError> {
        self.meddle(key);
        self.inner.replace_header(key, v, old, h)
    }
    fn write_if_unchanged(&self, key: &str, v: &VersionToken, b: &[u8]) -> Result<VersionToken, StoreError> {
        self.meddle(key);
        self.inner.write_if_unchanged(key, v, b)
    }
}

#[test]
fn a_concurrently_modified_envelope_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    populate(dir.path(), 20, &old);
    let other_writer = lockbox::seal(&old, b"someone else's new version", &ctx()).unwrap();
    let victims = vec!["03/e00003.lbx".to_string(), "0a/e00010.lbx".to_string()];
    let store = Meddling {
        inner: DirStore::new(dir.path()),
        victims: victims.clone(),
        replacement: other_writer.clone(),
    };
    let conflicts = Mutex::new(Vec::new());
    let record = |o: &lockbox::rotation::Outcome| {
        if o.kind == OutcomeKind::Conflict {
            conflicts.lock().unwrap().push(o.key.clone());
        }
    };
    let s = Job::new(MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str()))
        .unwrap_with(&old)
        .wrap_with(&new)
        .on_outcome(&record)
        .run(&store, dir.path().join(".lockbox-job.log"))
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Conflict), 2, "{s}");
    assert_eq!(s.counts.get(OutcomeKind::Rewrapped), 18);
    let mut c = conflicts.into_inner().unwrap();
    c.sort();
    assert_eq!(c, victims);
    for v in &victims {
        assert_eq!(
            std::fs::read(dir.path().join(v)).unwrap(),
            other_writer,
            "the other write survives"
        );
    }
    // No temporary file is left behind.
    for e in walk(dir.path()) {
        assert!(
            !e.file_name().unwrap().to_string_lossy().starts_with(".lockbox-tmp"),
            "{e:?}"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A provider that throttles: every call fails with `Throttled` while a
/// shared budget lasts, and then succeeds (a KMS over its quota).
#[derive(Debug)]
struct Throttling {
    inner: LocalKek,
    fail_every: u32,
    calls: AtomicU32,
    throttled: AtomicU32,
}

impl Throttling {
    fn gate(&self) -> Result<(), ProviderError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(self.fail_every) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::new(ProviderErrorKind::Throttled, "test.throttling"));
        }
        Ok(())
    }
}

impl ProviderIdentity for Throttling {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(w)
    }
}

impl KeyEncryptionProvider for Throttling {
    fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.gate()?;
        self.inner.wrap(dek, b)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.gate()?;
        self.inner.unwrap(w, b)
    }
}

#[test]
fn throttling_is_retried_with_backoff_and_rate_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalKek::generate().unwrap();
    populate(dir.path(), 40, &old);
    let new = Throttling {
        inner: LocalKek::generate().unwrap(),
        fail_every: 3,
        calls: AtomicU32::new(1),
        throttled: AtomicU32::new(0),
    };
    let retry = RetryPolicy {
        max_attempts: 30,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
    };
    let start = Instant::now();
    let s = Job::new(MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str()))
        .unwrap_with(&old)
        .wrap_with(&new)
        .retry(retry)
        .concurrency(4)
        .rate_limit(RateLimit {
            per_second: 400.0,
            burst: 1,
        })
        .run(&DirStore::new(dir.path()), dir.path().join(".lockbox-job.log"))
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Rewrapped), 40, "{s}");
    assert!(new.throttled.load(Ordering::Relaxed) > 0);
    assert!(
        s.counts.retries >= u64::from(new.throttled.load(Ordering::Relaxed)),
        "{s}"
    );
    // Every attempt costs 2 calls (unwrap + wrap) at 400/s: at least
    // (40 + retries) * 2 / 400 seconds.
    let min = Duration::from_secs_f64(((40 + s.counts.retries) * 2) as f64 / 400.0 * 0.9);
    assert!(start.elapsed() >= min, "{:?} < {min:?}", start.elapsed());

    // A provider that never stops throttling: the items fail after the
    // attempts run out, named as throttled.
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 3, &old);
    let stuck = Throttling {
        inner: LocalKek::generate().unwrap(),
        fail_every: u32::MAX,
        calls: AtomicU32::new(1),
        throttled: AtomicU32::new(0),
    };
    let details = Mutex::new(Vec::new());
    let note = |o: &lockbox::rotation::Outcome| details.lock().unwrap().push((o.attempts, o.detail.clone()));
    let s = Job::new(MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str()))
        .unwrap_with(&old)
        .wrap_with(&stuck)
        .retry(RetryPolicy {
            max_attempts: 3,
            ..retry
        })
        .on_outcome(&note)
        .run(&DirStore::new(dir.path()), dir.path().join(".lockbox-job.log"))
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Failed), 3);
    for (attempts, d) in details.into_inner().unwrap() {
        assert_eq!(attempts, 3);
        assert!(d.contains("throttled"), "{d}");
    }
}

#[test]
fn shards_split_one_job_with_no_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    populate(dir.path(), 90, &old);
    let store = DirStore::new(dir.path());
    let policy = MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str());
    let seen = Mutex::new(Vec::new());
    let note = |o: &lockbox::rotation::Outcome| seen.lock().unwrap().push(o.key.clone());
    let mut total = 0;
    for i in 0..3 {
        let s = Job::new(policy.clone())
            .unwrap_with(&old)
            .wrap_with(&new)
            .shard(Shard::new(i, 3).unwrap())
            .on_outcome(&note)
            .run(&store, dir.path().join(format!(".lockbox-shard{i}.log")))
            .unwrap();
        assert!(s.listed > 10 && s.listed < 60, "shard {i}: {s}");
        total += s.counts.get(OutcomeKind::Rewrapped);
    }
    assert_eq!(total, 90);
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 90);
}

/// The child process of the crash test: runs the job until it is killed.
#[test]
#[ignore = "run by crash_and_resume_at_random_points as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var("LOCKBOX_CRASH_DIR") else {
        return;
    };
    let old = kek_from(&std::env::var("LOCKBOX_CRASH_OLD").unwrap());
    let new = kek_from(&std::env::var("LOCKBOX_CRASH_NEW").unwrap());
    let rate: f64 = std::env::var("LOCKBOX_CRASH_RATE").unwrap().parse().unwrap();
    let s = Job::new(MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str()))
        .unwrap_with(&old)
        .wrap_with(&new)
        .concurrency(4)
        .checkpoint_every(7)
        .rate_limit(RateLimit {
            per_second: rate,
            burst: 4,
        })
        .run(&DirStore::new(&dir), Path::new(&dir).join(".lockbox-job.log"))
        .unwrap();
    eprintln!("child finished: {s}");
}

#[test]
fn crash_and_resume_at_random_points() {
    let runs: u32 = std::env::var("LOCKBOX_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut seed = u64::from_le_bytes(Sha256::digest(b"crash seed")[..8].try_into().unwrap());
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let exe = std::env::current_exe().unwrap();
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let old = LocalKek::generate().unwrap();
        let new = LocalKek::generate().unwrap();
        let n = 150;
        populate(dir.path(), n, &old);
        let before = payload_hashes(dir.path());
        let old_b64 = lockbox::hazmat::local_kek_to_base64(&old);
        let new_b64 = lockbox::hazmat::local_kek_to_base64(&new);
        // Kill it 1 to 4 times at random moments, then let it finish.
        let kills = 1 + rand(4);
        let mut finished = false;
        for attempt in 0..=kills {
            use lockbox::secrecy::ExposeSecret;
            let mut child = Command::new(&exe)
                .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
                .env("LOCKBOX_CRASH_DIR", dir.path())
                .env("LOCKBOX_CRASH_OLD", old_b64.expose_secret())
                .env("LOCKBOX_CRASH_NEW", new_b64.expose_secret())
                .env("LOCKBOX_CRASH_RATE", "2000")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            if attempt < kills {
                std::thread::sleep(Duration::from_millis(5 + rand(120)));
                // SIGKILL: no destructor, no flush, no chance to clean up.
                let _ = child.kill();
                let _ = child.wait();
            } else {
                assert!(child.wait().unwrap().success(), "run {run}: the last child failed");
                finished = true;
            }
        }
        assert!(finished);
        // Every envelope is on the new key, opens, and kept its payload.
        assert_eq!(payload_hashes(dir.path()), before, "run {run}");
        for k in before.keys() {
            let env = std::fs::read(dir.path().join(k)).unwrap();
            let info = lockbox::inspect(&env).unwrap();
            assert_eq!(info.wrapped_keys().len(), 1, "run {run} {k}: one entry, no duplicate");
            assert!(lockbox::open(&new, &env, &ctx()).is_ok(), "run {run} {k}");
        }
        // The log: every key has an outcome, none was rewrapped twice, and
        // the job ended with a "done" line counting them all.
        let log = std::fs::read_to_string(dir.path().join(".lockbox-job.log")).unwrap();
        let mut rewrapped: BTreeMap<String, u32> = BTreeMap::new();
        let mut last = None;
        for line in log.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("run {run}: {e}: {line}"));
            if v["t"] == "item" && v["outcome"] == "rewrapped" {
                *rewrapped.entry(v["key"].as_str().unwrap().to_string()).or_default() += 1;
            }
            last = Some(v);
        }
        assert!(rewrapped.values().all(|n| *n == 1), "run {run}: a key rewrapped twice");
        let last = last.unwrap();
        assert_eq!(last["t"], "done", "run {run}");
        let total = last["rewrapped"].as_u64().unwrap() + last["current"].as_u64().unwrap();
        assert_eq!(total, n as u64, "run {run}: {last}");
        assert_eq!(last["failed"], 0);
        // No temporary files left behind by the killed writers? They may
        // be (a kill between create and rename): never listed, never read.
        let report = Census::new(MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str()))
            .run(&DirStore::new(dir.path()))
            .unwrap();
        assert_eq!(report.current.envelopes, n as u64);
    }
}

/// A provider that is down (a KMS region in an outage) until switched on.
#[derive(Debug)]
struct Flaky {
    inner: LocalKek,
    down: std::sync::atomic::AtomicBool,
}

impl ProviderIdentity for Flaky {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(w)
    }
}

impl KeyEncryptionProvider for Flaky {
    fn wrap(&self, dek: &DataKey, b: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(ProviderError::new(ProviderErrorKind::Unavailable, "test.region"));
        }
        self.inner.wrap(dek, b)
    }
    fn unwrap(&self, w: WrappedKeyRef<'_>, b: Binding<'_>) -> Result<DataKey, ProviderError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(ProviderError::new(ProviderErrorKind::Unavailable, "test.region"));
        }
        self.inner.unwrap(w, b)
    }
}

#[test]
fn quorum_seal_with_one_region_down_then_heal() {
    let a = LocalKek::generate().unwrap();
    let b = LocalKek::generate().unwrap();
    let c = Flaky {
        inner: LocalKek::generate().unwrap(),
        down: true.into(),
    };
    // All-or-nothing (the default) fails with the provider's error, as always.
    let e = Sealer::new(&a)
        .also_wrap_with(&b)
        .also_wrap_with(&c)
        .seal(b"x", &ctx())
        .unwrap_err();
    assert!(
        matches!(&e, Error::Provider(p) if p.kind() == ProviderErrorKind::Unavailable),
        "{e:?}"
    );
    // A quorum of 3 of 3 is all-or-nothing too, reported as such.
    let e = Sealer::new(&a)
        .also_wrap_with(&b)
        .also_wrap_with(&c)
        .quorum(3)
        .seal(b"x", &ctx())
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::QuorumNotMet {
                required: 3,
                wrapped: 2,
                last: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        Sealer::new(&a).quorum(2).seal(b"x", &ctx()),
        Err(Error::InvalidArgument { .. })
    ));
    // Two of three: sealed, and the sealer says which failed.
    let dir = tempfile::tempdir().unwrap();
    let sealer = Sealer::new(&a).also_wrap_with(&b).also_wrap_with(&c).quorum(2);
    for i in 0..10 {
        let (env, failed) = sealer.seal_reporting(format!("doc {i}").as_bytes(), &ctx()).unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].index, 2);
        assert_eq!(failed[0].error.kind(), ProviderErrorKind::Unavailable);
        assert_eq!(lockbox::inspect(&env).unwrap().wrapped_keys().len(), 2);
        std::fs::write(dir.path().join(format!("d{i}.lbx")), env).unwrap();
    }
    // A streaming seal reports the same.
    let h = sealer.seal_header(&ctx()).unwrap();
    assert_eq!(h.wrap_failures().len(), 1);
    assert_eq!(h.wrap_failures()[0].index, 2);
    // The first provider down too: the data key is drawn locally.
    let first_down = Sealer::new(&c).also_wrap_with(&a).also_wrap_with(&b).quorum(2);
    let (env, failed) = first_down.seal_reporting(b"first down", &ctx()).unwrap();
    assert_eq!(failed[0].index, 0);
    assert_eq!(lockbox::open(&b, &env, &ctx()).unwrap(), b"first down");
    std::fs::write(dir.path().join("first-down.lbx"), env).unwrap();
    // The async sealer: the same plan.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (env, failed) = rt
        .block_on(
            lockbox::AsyncSealer::new(&a)
                .also_wrap_with(&c)
                .also_wrap_with(&b)
                .quorum(2)
                .seal_reporting(b"async", &ctx()),
        )
        .unwrap();
    assert_eq!(failed[0].index, 1);
    std::fs::write(dir.path().join("async.lbx"), env).unwrap();

    // The census sees 12 envelopes lacking region c.
    let policy = MigrationPolicy::new()
        .require(lockbox::LOCAL_PROVIDER_ID, a.key_id().as_str())
        .require(lockbox::LOCAL_PROVIDER_ID, b.key_id().as_str())
        .require(lockbox::LOCAL_PROVIDER_ID, c.inner.key_id().as_str());
    let store = DirStore::new(dir.path());
    let report = Census::new(policy.clone()).run(&store).unwrap();
    assert_eq!(report.missing.values().map(|t| t.envelopes).sum::<u64>(), 12);
    let before = payload_hashes(dir.path());
    // While c is down, healing fails and is retried, then reported.
    let job = Job::new(policy.clone())
        .unwrap_with(&a)
        .also(&b)
        .heal_with(&c)
        .retry(RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        });
    let s = job.run(&store, dir.path().join(".lockbox-heal1.log")).unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Failed), 12, "{s}");
    // c is back: the heal adds its wraps, header only.
    c.down.store(false, Ordering::Relaxed);
    let s = job.run(&store, dir.path().join(".lockbox-heal2.log")).unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Healed), 12, "{s}");
    assert_eq!(payload_hashes(dir.path()), before);
    let report = Census::new(policy).run(&store).unwrap();
    assert!(report.missing.is_empty());
    assert_eq!(report.current.envelopes, 12);
    let env = std::fs::read(dir.path().join("d3.lbx")).unwrap();
    assert_eq!(lockbox::open(&c, &env, &ctx()).unwrap(), b"doc 3");
    assert_eq!(lockbox::open(&a, &env, &ctx()).unwrap(), b"doc 3");
}

/// `also` for readability in the test above.
trait Also<'a> {
    fn also(self, p: &'a dyn KeyEncryptionProvider) -> Self;
}
impl<'a> Also<'a> for Job<'a> {
    fn also(self, p: &'a dyn KeyEncryptionProvider) -> Self {
        self.unwrap_with(p)
    }
}

#[test]
fn lazy_upgrade_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = UnixTime(1_700_000_000);
    let mut ring = Keyring::generate(KeyId::new("hot").unwrap(), t0).unwrap();
    populate(dir.path(), 3, &ring);
    ring.rotate(t0).unwrap();
    let store = DirStore::new(dir.path());
    let job = Job::new(MigrationPolicy::new().keyring(&ring))
        .unwrap_with(&ring)
        .wrap_with(&ring);
    let key = "01/e00001.lbx";
    // A read path: read, open, and learn that the envelope is stale.
    let f = store.read(key).unwrap();
    let pt = lockbox::open(&ring, &f.bytes, &ctx()).unwrap();
    let a = job.assess(&f.bytes).unwrap();
    assert_eq!(a.reasons().collect::<Vec<_>>(), [Reason::NotPrimary]);
    // Upgrade it in place through the write-if-unchanged path.
    let o = job.upgrade(&store, key, &f.version);
    assert_eq!(o.kind, OutcomeKind::Rewrapped, "{o:?}");
    let after = store.read(key).unwrap();
    assert!(job.assess(&after.bytes).unwrap().is_current());
    assert_eq!(lockbox::open(&ring, &after.bytes, &ctx()).unwrap(), pt);
    // Upgrading with a stale version token: a conflict, nothing written.
    let o = job.upgrade(&store, key, &f.version);
    assert_eq!(o.kind, OutcomeKind::Conflict);
    assert_eq!(store.read(key).unwrap().bytes, after.bytes);
    // The async twin.
    let key2 = "02/e00002.lbx";
    let f2 = store.read(key2).unwrap();
    let ajob = AsyncJob::new(MigrationPolicy::new().keyring(&ring))
        .unwrap_with(&ring)
        .wrap_with(&ring);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let o = rt.block_on(ajob.upgrade_async(&store, key2, &f2.version, &lockbox::rotation::TokioSleep));
    assert_eq!(o.kind, OutcomeKind::Rewrapped);
}

#[test]
fn async_driver_migrates_and_resumes_like_the_blocking_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = LocalKek::generate().unwrap();
    let new = Throttling {
        inner: LocalKek::generate().unwrap(),
        fail_every: 4,
        calls: AtomicU32::new(1),
        throttled: AtomicU32::new(0),
    };
    populate(dir.path(), 120, &old);
    let before = payload_hashes(dir.path());
    let store = DirStore::new(dir.path());
    let policy = MigrationPolicy::new().retire(lockbox::LOCAL_PROVIDER_ID, old.key_id().as_str());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let log = dir.path().join(".lockbox-async.log");
    let job = AsyncJob::new(policy.clone())
        .unwrap_with(&old)
        .wrap_with(&new)
        .concurrency(16)
        .checkpoint_every(5)
        .retry(RetryPolicy {
            max_attempts: 30,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(10),
        });
    let s = rt
        .block_on(job.run_async(&store, &log, &lockbox::rotation::TokioSleep))
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Rewrapped), 120, "{s}");
    assert!(s.counts.retries > 0);
    assert_eq!(payload_hashes(dir.path()), before);
    let report = rt
        .block_on(
            Census::new(policy)
                .concurrency(8)
                .run_async(&store, &lockbox::rotation::TokioSleep),
        )
        .unwrap();
    assert_eq!(report.current.envelopes, 120);
}
