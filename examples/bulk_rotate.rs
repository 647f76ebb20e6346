//! Rotation at scale: a census, then a bulk rewrap of a directory and of an
//! S3 bucket, each killed halfway with SIGKILL and resumed, then a final
//! census showing every envelope on the new version and every payload
//! byte-identical (SHA-256 of each payload before and after).
//!
//! ```sh
//! cargo run --release --example bulk_rotate                 # a 20,000-file directory
//! bash scripts/services.sh start kms && source "$(bash scripts/services.sh env)"
//! cargo run --release --example bulk_rotate                 # ... and a 2,000-object bucket (moto)
//! cargo run --release --example bulk_rotate -- bench 100000 # throughput and peak memory (below)
//! ```
//!
//! The migration runs in a child process (this example, re-invoked with
//! `child`), so it can be killed for real: no destructor runs, nothing is
//! flushed. The parent kills it when about 40% is done, runs it again (it
//! resumes from the log's checkpoint), and checks the result.
//!
//! `bench N` measures, each in a fresh child process (so peak memory is
//! that run's): the census and the header-only rewrap of `N` small envelopes
//! in a local directory, and of `N / 10` in the S3 server when it is up,
//! with a provider rate limit set; it prints envelopes per second and the
//! peak resident memory (`VmHWM`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockbox::keyring::{KEYRING_PROVIDER_ID, Keyring, UnixTime};
use lockbox::rotation::{
    AsyncJob, AsyncStore, Census, CensusReport, DirStore, Job, MigrationPolicy, OutcomeKind, Progress, RateLimit,
    Store, TokioSleep,
};
use lockbox::secrecy::ExposeSecret;
use lockbox::{EncryptionContext, KeyId, KeyVersion, LocalKek};
use lockbox_object_store::{ObjectStorage, S3Settings};
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const RING: &str = "archive";

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("app", "bulk-rotate").unwrap()
}

/// Where a run's keyring lives: sealed under a master KEK kept in a file
/// (a KMS key in production), so the child process can load it.
struct Keys {
    ring_path: PathBuf,
    master_path: PathBuf,
}

impl Keys {
    fn create(dir: &Path) -> Result<(Self, Keyring)> {
        let master = LocalKek::generate()?;
        let master_path = dir.join("master.key");
        std::fs::write(
            &master_path,
            lockbox::hazmat::local_kek_to_base64(&master).expose_secret(),
        )?;
        let ring = Keyring::generate(KeyId::new(RING)?, UnixTime::now())?;
        let keys = Self {
            ring_path: dir.join("archive.keyring"),
            master_path,
        };
        Ok((keys, ring))
    }
    fn master(&self) -> Result<LocalKek> {
        Ok(lockbox::hazmat::local_kek_from_base64(&std::fs::read_to_string(
            &self.master_path,
        )?)?)
    }
    fn save(&self, ring: &mut Keyring) -> Result<()> {
        ring.save(&self.ring_path, &self.master()?)?;
        Ok(())
    }
    fn load(&self) -> Result<Keyring> {
        Ok(Keyring::load(&self.ring_path, &self.master()?)?)
    }
}

/// Seals `n` small envelopes (about 100 bytes of payload) into 256
/// subdirectories, as git shards its objects; returns the payload hashes.
fn fill_dir(dir: &Path, n: usize, ring: &Keyring) -> Result<BTreeMap<String, [u8; 32]>> {
    let mut hashes = BTreeMap::new();
    for i in 0..n {
        let key = format!("{:02x}/doc-{i:07}.lbx", i % 256);
        let env = lockbox::seal(ring, format!("record {i}: {}", "·".repeat(40)).as_bytes(), &ctx())?;
        let h = lockbox::inspect(&env)?.header_len();
        hashes.insert(key.clone(), Sha256::digest(&env[h..]).into());
        let path = dir.join(&key);
        if i < 256 {
            std::fs::create_dir_all(path.parent().unwrap())?;
        }
        std::fs::write(path, env)?;
    }
    Ok(hashes)
}

/// The payload hash of every envelope in `store`, and whether every one is
/// on the keyring's primary with one wrapped key.
fn check_dir(store: &DirStore, expected: &BTreeMap<String, [u8; 32]>, ring: &Keyring) -> Result<()> {
    let mut after: Option<String> = None;
    let mut seen = 0;
    loop {
        let page = store.list_after(after.as_deref(), 1000)?;
        for m in &page {
            let env = store.read(&m.key)?.bytes;
            check_one(&m.key, &env, expected, ring)?;
            seen += 1;
        }
        if page.len() < 1000 {
            break;
        }
        after = page.last().map(|m| m.key.clone());
    }
    if seen != expected.len() {
        return Err(format!("{seen} envelopes, expected {}", expected.len()).into());
    }
    Ok(())
}

fn check_one(key: &str, env: &[u8], expected: &BTreeMap<String, [u8; 32]>, ring: &Keyring) -> Result<()> {
    let info = lockbox::inspect(env)?;
    let h: [u8; 32] = Sha256::digest(&env[info.header_len()..]).into();
    if expected.get(key) != Some(&h) {
        return Err(format!("{key}: payload changed").into());
    }
    let w = info.wrapped_keys();
    if w.len() != 1 || w[0].key_version() != ring.primary() {
        return Err(format!("{key}: not on the primary alone: {w:?}").into());
    }
    Ok(())
}

fn policy(ring: &Keyring) -> MigrationPolicy {
    MigrationPolicy::new().keyring(ring)
}

fn print_census(title: &str, r: &CensusReport) {
    println!("── census: {title}");
    for line in r.to_string().lines() {
        println!("   {line}");
    }
}

/// A progress bar on stderr, redrawn every 1%.
fn progress_bar(total: u64) -> impl Fn(&Progress) + Send + Sync {
    let last = AtomicU64::new(u64::MAX);
    move |p: &Progress| {
        let done = p.counts.total();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if last.swap(pct, Ordering::Relaxed) != pct {
            let bar = "█".repeat((pct / 4) as usize) + &"░".repeat(25 - (pct / 4).min(25) as usize);
            let mut e = std::io::stderr();
            let _ = write!(
                e,
                "\r   [{bar}] {pct:>3}%  {done}/{total}  rewrapped {}  current {}  retries {}",
                p.counts.get(OutcomeKind::Rewrapped),
                p.counts.get(OutcomeKind::Current),
                p.counts.retries
            );
            let _ = e.flush();
        }
    }
}

/// Runs this example as a child (`args`), kills it with SIGKILL once the
/// log has `kill_at` item lines, and returns how many it had by then.
fn run_and_kill(args: &[String], log: &Path, kill_at: usize) -> Result<usize> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(log).map(|s| s.lines().filter(|l| l.contains("\"item\"")).count());
        let n = lines.unwrap_or(0);
        if n >= kill_at {
            child.kill()?; // SIGKILL
            child.wait()?;
            eprintln!();
            return Ok(n);
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the child ended before it could be killed ({status})").into());
        }
        if start.elapsed() > Duration::from_secs(600) {
            child.kill()?;
            return Err("the child made no progress".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_to_end(args: &[String]) -> Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("child failed: {}", out.status).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn demo_dir(work: &Path, n: usize) -> Result<()> {
    println!("\n═══ directory: {n} envelopes ═══");
    let data = work.join("envelopes");
    std::fs::create_dir_all(&data)?;
    let (keys, mut ring) = Keys::create(work)?;
    let hashes = fill_dir(&data, n, &ring)?;
    let v2 = ring.rotate(UnixTime::now())?;
    ring.compromised(KeyVersion(1), UnixTime::now())?;
    keys.save(&mut ring)?;
    println!("   sealed under {RING} v1; rotated to {v2}; v1 declared compromised");
    let store = DirStore::new(&data);
    let before = Census::new(policy(&ring))
        .revoking(KEYRING_PROVIDER_ID, RING, Some(KeyVersion(1)))
        .run(&store)?;
    print_census("before", &before);

    let log = work.join("rewrap.log");
    let args: Vec<String> = ["child-dir", &data.to_string_lossy(), &keys.ring_path.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .chain([
            keys.master_path.to_string_lossy().into_owned(),
            log.to_string_lossy().into_owned(),
        ])
        .collect();
    println!("── migrate (child process), SIGKILL at ~40%");
    let at = run_and_kill(&args, &log, n * 2 / 5)?;
    println!("   killed after {at} logged items; resuming from the log's checkpoint");
    let summary = run_to_end(&args)?;
    println!("   {}", summary.trim());
    let after = Census::new(policy(&ring)).run(&store)?;
    print_census("after", &after);
    check_dir(&store, &hashes, &ring)?;
    assert_eq!(after.current.envelopes, n as u64);
    println!("   ✓ all {n} envelopes on {v2} alone; every payload byte-identical (SHA-256)");
    Ok(())
}

fn s3_settings() -> Option<S3Settings> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let ca = std::fs::read(var("LOCKBOX_TEST_S3_CA_CERT")?).ok()?;
    Some(
        S3Settings::new(
            var("LOCKBOX_TEST_S3_ENDPOINT")?,
            var("LOCKBOX_TEST_S3_REGION")?,
            var("LOCKBOX_TEST_S3_BUCKET")?,
        )
        .with_credentials(
            var("LOCKBOX_TEST_S3_ACCESS_KEY_ID")?,
            var("LOCKBOX_TEST_S3_SECRET_ACCESS_KEY")?,
        )
        .with_ca_certificate_pem(ca),
    )
}

fn bucket(prefix: &str) -> Result<ObjectStorage> {
    let s = s3_settings().ok_or("no S3 endpoint")?;
    Ok(ObjectStorage::s3(&s)?.with_prefix(prefix))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Uploads `n` envelopes (8 at a time); returns the payload hashes.
fn fill_bucket(store: &ObjectStorage, n: usize, ring: &Keyring) -> Result<BTreeMap<String, [u8; 32]>> {
    let rt = runtime()?;
    let mut hashes = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..n {
        let key = format!("doc-{i:07}.lbx");
        let env = lockbox::seal(ring, format!("object {i}: {}", "·".repeat(40)).as_bytes(), &ctx())?;
        let h = lockbox::inspect(&env)?.header_len();
        hashes.insert(key.clone(), Sha256::digest(&env[h..]).into());
        batch.push((key, env));
        if batch.len() == 64 || i + 1 == n {
            let jobs = std::mem::take(&mut batch);
            rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for (key, env) in jobs {
                    let store = store.clone();
                    set.spawn(async move { store.create(&key, env).await });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            });
        }
    }
    Ok(hashes)
}

fn demo_s3(work: &Path, n: usize) -> Result<()> {
    println!("\n═══ S3 bucket (moto): {n} objects ═══");
    let mut r = [0u8; 4];
    lockbox::provider::fill_random(&mut r)?;
    let prefix = format!(
        "bulk-rotate-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let store = bucket(&prefix)?;
    let work = &work.join("s3");
    std::fs::create_dir_all(work)?;
    let (keys, mut ring) = Keys::create(work)?;
    let hashes = fill_bucket(&store, n, &ring)?;
    let v2 = ring.rotate(UnixTime::now())?;
    keys.save(&mut ring)?;
    println!("   uploaded under {RING} v1 (prefix {prefix}/); rotated to {v2}");
    let rt = runtime()?;
    let before = rt.block_on(
        Census::new(policy(&ring))
            .concurrency(16)
            .run_async(&store, &TokioSleep),
    )?;
    print_census("before", &before);
    let log = work.join("s3-rewrap.log");
    let args: Vec<String> = vec![
        "child-s3".into(),
        prefix.clone(),
        keys.ring_path.to_string_lossy().into_owned(),
        keys.master_path.to_string_lossy().into_owned(),
        log.to_string_lossy().into_owned(),
    ];
    println!("── migrate (child process, async job), SIGKILL at ~40%");
    let at = run_and_kill(&args, &log, n * 2 / 5)?;
    println!("   killed after {at} logged items; resuming");
    let summary = run_to_end(&args)?;
    println!("   {}", summary.trim());
    let after = rt.block_on(
        Census::new(policy(&ring))
            .concurrency(16)
            .run_async(&store, &TokioSleep),
    )?;
    print_census("after", &after);
    rt.block_on(async {
        for key in hashes.keys() {
            let env = store.read_async(key).await?.bytes;
            check_one(key, &env, &hashes, &ring)?;
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    assert_eq!(after.current.envelopes, n as u64);
    println!("   ✓ all {n} objects on {v2} alone; every payload byte-identical (SHA-256)");
    Ok(())
}

/// `child-dir DIR KEYRING MASTER LOG [RATE] [--no-fsync]`: the directory job.
fn child_dir(args: &[String]) -> Result<()> {
    let keys = Keys {
        ring_path: args[1].clone().into(),
        master_path: args[2].clone().into(),
    };
    let ring = keys.load()?;
    let migration = ring.migration_provider();
    let rate: f64 = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(20_000.0);
    let mut store = DirStore::new(&args[0]);
    if args.iter().any(|a| a == "--no-fsync") {
        store = store.without_fsync();
    }
    let total = Census::new(MigrationPolicy::new()).run(&store)?.objects.envelopes;
    let bar = progress_bar(total);
    let s = Job::new(policy(&ring))
        .unwrap_with(&migration)
        .wrap_with(&ring)
        .concurrency(8)
        .rate_limit(RateLimit {
            per_second: rate,
            burst: 64,
        })
        .on_progress(&bar)
        .run(&store, &args[3])?;
    eprintln!();
    println!("{s}");
    Ok(())
}

/// `child-s3 PREFIX KEYRING MASTER LOG [RATE]`: the bucket job (async).
fn child_s3(args: &[String]) -> Result<()> {
    let keys = Keys {
        ring_path: args[1].clone().into(),
        master_path: args[2].clone().into(),
    };
    let ring = keys.load()?;
    let rate: f64 = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(2_000.0);
    let store = bucket(&args[0])?;
    let rt = runtime()?;
    let total = rt
        .block_on(Census::new(MigrationPolicy::new()).run_async(&store, &TokioSleep))?
        .objects
        .envelopes;
    let bar = progress_bar(total);
    let s = rt.block_on(
        AsyncJob::new(policy(&ring))
            .unwrap_with(&ring)
            .wrap_with(&ring)
            .concurrency(16)
            .rate_limit(RateLimit {
                per_second: rate,
                burst: 32,
            })
            .on_progress(&bar)
            .run_async(&store, &args[3], &TokioSleep),
    )?;
    eprintln!();
    println!("{s}");
    Ok(())
}

/// Peak resident memory of this process, from `/proc/self/status`.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `measure KIND WHERE ...`: one timed run in this process; prints a JSON
/// line with the rate and the peak memory.
fn measure(args: &[String]) -> Result<()> {
    let (what, place) = (args[0].as_str(), args[1].as_str());
    let keys = Keys {
        ring_path: args[3].clone().into(),
        master_path: args[4].clone().into(),
    };
    let ring = keys.load()?;
    let rate = 50_000.0;
    let start = Instant::now();
    let n = match (what, place) {
        ("census", "dir") => {
            Census::new(policy(&ring))
                .run(&DirStore::new(&args[2]))?
                .objects
                .envelopes
        }
        ("rewrap", "dir") => {
            let store = DirStore::new(&args[2]);
            let store = if args.iter().any(|a| a == "--no-fsync") {
                store.without_fsync()
            } else {
                store
            };
            Job::new(policy(&ring))
                .unwrap_with(&ring)
                .wrap_with(&ring)
                .concurrency(8)
                .rate_limit(RateLimit {
                    per_second: rate,
                    burst: 64,
                })
                .run(&store, &args[5])?
                .counts
                .get(OutcomeKind::Rewrapped)
        }
        ("census", "s3") => {
            let rt = runtime()?;
            rt.block_on(
                Census::new(policy(&ring))
                    .concurrency(32)
                    .run_async(&bucket(&args[2])?, &TokioSleep),
            )?
            .objects
            .envelopes
        }
        ("rewrap", "s3") => {
            let rt = runtime()?;
            rt.block_on(
                AsyncJob::new(policy(&ring))
                    .unwrap_with(&ring)
                    .wrap_with(&ring)
                    .concurrency(32)
                    .rate_limit(RateLimit {
                        per_second: 5_000.0,
                        burst: 32,
                    })
                    .run_async(&bucket(&args[2])?, &args[5], &TokioSleep),
            )?
            .counts
            .get(OutcomeKind::Rewrapped)
        }
        _ => return Err("unknown measurement".into()),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"what\":\"{what}\",\"where\":\"{place}\",\"envelopes\":{n},\"seconds\":{secs:.3},\"per_second\":{:.0},\"peak_rss_kib\":{}}}",
        n as f64 / secs,
        peak_rss_kib()
    );
    Ok(())
}

fn bench(n: usize) -> Result<()> {
    let work = tempfile::tempdir()?;
    let measure_child = |args: Vec<String>| -> Result<String> {
        let mut full = vec!["measure".to_string()];
        full.extend(args);
        let out = run_to_end(&full)?;
        println!("   {}", out.trim());
        Ok(out)
    };
    for size in [n / 10, n] {
        println!("\n═══ bench: directory, {size} envelopes ═══");
        let dir = work.path().join(format!("d{size}"));
        std::fs::create_dir_all(&dir)?;
        let (keys, mut ring) = Keys::create(&dir)?;
        let data = dir.join("envelopes");
        std::fs::create_dir_all(&data)?;
        fill_dir(&data, size, &ring)?;
        ring.rotate(UnixTime::now())?;
        keys.save(&mut ring)?;
        let common = |what: &str, extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = vec![
                what.into(),
                "dir".into(),
                data.to_string_lossy().into_owned(),
                keys.ring_path.to_string_lossy().into_owned(),
                keys.master_path.to_string_lossy().into_owned(),
                dir.join(format!("{what}.log")).to_string_lossy().into_owned(),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        measure_child(common("census", &[]))?;
        measure_child(common("rewrap", &[]))?;
        measure_child(common("census", &[]))?;
    }
    if s3_settings().is_some() {
        let size = n / 10;
        println!("\n═══ bench: S3 (moto), {size} objects ═══");
        let dir = work.path().join("s3");
        std::fs::create_dir_all(&dir)?;
        let (keys, mut ring) = Keys::create(&dir)?;
        let mut r = [0u8; 4];
        lockbox::provider::fill_random(&mut r)?;
        let prefix = format!("bench-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>());
        fill_bucket(&bucket(&prefix)?, size, &ring)?;
        ring.rotate(UnixTime::now())?;
        keys.save(&mut ring)?;
        for what in ["census", "rewrap", "census"] {
            measure_child(vec![
                what.into(),
                "s3".into(),
                prefix.clone(),
                keys.ring_path.to_string_lossy().into_owned(),
                keys.master_path.to_string_lossy().into_owned(),
                dir.join("s3-rewrap.log").to_string_lossy().into_owned(),
            ])?;
        }
    } else {
        println!("\n(S3 bench skipped: start the services for the moto S3 endpoint)");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("child-dir") => return child_dir(&args[1..]),
        Some("child-s3") => return child_s3(&args[1..]),
        Some("measure") => return measure(&args[1..]),
        Some("bench") => return bench(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000)),
        _ => {}
    }
    let dir_n: usize = std::env::var("BULK_ROTATE_DIR_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let s3_n: usize = std::env::var("BULK_ROTATE_S3_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let work = tempfile::tempdir()?;
    demo_dir(work.path(), dir_n)?;
    if s3_settings().is_some() {
        demo_s3(work.path(), s3_n)?;
    } else {
        println!("\n(S3 part skipped: `bash scripts/services.sh start kms` and source its env file)");
    }
    Ok(())
}
