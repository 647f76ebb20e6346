//! What every async network provider must compose with, as one body per
//! check for the provider crates' tests (included with
//! `#[path = "<relative path to>/tests/support/composition.rs"] mod composition;`):
//!
//! - a keyring sealed under the provider as its master, saved, loaded by
//!   another process, rotated there, and reloaded here;
//! - a data-key cache over the provider that calls it once for many seals and
//!   once for many opens (the calls are counted).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::indexing_slicing,
    reason = "test support"
)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lockbox::cache::{AsyncCachingProvider, DataKeyCache};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, Binding, BoxFuture, DataKey, DataKeyRequest,
    EncryptionContext, KeyId, ProviderError, ProviderIdentity, WrappedKey, WrappedKeyRef,
};

/// Set in the child process: the keyring file to load, rotate and save.
pub const CHILD_VAR: &str = "LOCKBOX_TEST_COMPOSITION_CHILD";

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("purpose", "composition")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap()
}

/// Forwards to a provider and counts each kind of call it makes.
#[derive(Debug)]
pub struct Counting<P> {
    inner: P,
    generates: AtomicUsize,
    wraps: AtomicUsize,
    unwraps: AtomicUsize,
}

impl<P> Counting<P> {
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            generates: AtomicUsize::new(0),
            wraps: AtomicUsize::new(0),
            unwraps: AtomicUsize::new(0),
        }
    }
    /// Service calls that made a new data key (generated, or drawn here and
    /// wrapped).
    pub fn fresh_keys(&self) -> usize {
        self.generates.load(Ordering::SeqCst) + self.wraps.load(Ordering::SeqCst)
    }
    pub fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

impl<P: ProviderIdentity> ProviderIdentity for Counting<P> {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(w)
    }
}

impl<P: AsyncKeyEncryptionProvider> AsyncKeyEncryptionProvider for Counting<P> {
    fn wrap_async<'a>(&'a self, dek: &'a DataKey, b: Binding<'a>) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        self.wraps.fetch_add(1, Ordering::SeqCst);
        self.inner.wrap_async(dek, b)
    }
    fn unwrap_async<'a>(
        &'a self,
        w: WrappedKeyRef<'a>,
        b: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_async(w, b)
    }
    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        Box::pin(async move {
            let r = self.inner.generate_data_key_async(request).await;
            // Only a provider that offers generation calls its service here.
            if matches!(r, Ok(Some(_))) {
                self.generates.fetch_add(1, Ordering::SeqCst);
            }
            r
        })
    }
}

/// An `AsyncCachingProvider` over the provider (counted) seals `n` messages
/// with one call to the provider and opens them all with one more; the
/// envelopes are ordinary envelopes of the provider.
pub async fn cache_calls_the_provider_once<P: AsyncKeyEncryptionProvider>(provider: P, plain: &P) {
    let n = 50;
    let store = DataKeyCache::new(16).unwrap();
    let cached = AsyncCachingProvider::builder(Counting::new(provider), &store, Duration::from_secs(300))
        .max_messages(1000)
        .build()
        .unwrap();
    let sealer = AsyncSealer::new(&cached);
    let mut envelopes = Vec::new();
    for i in 0..n {
        envelopes.push(sealer.seal(format!("message {i}").as_bytes(), &ctx()).await.unwrap());
    }
    assert_eq!(
        cached.inner().fresh_keys(),
        1,
        "one data key from the service for {n} seals"
    );
    let opener = AsyncOpener::new(&cached);
    for (i, env) in envelopes.iter().enumerate() {
        assert_eq!(
            opener.open(env, &ctx()).await.unwrap(),
            format!("message {i}").as_bytes()
        );
    }
    assert_eq!(cached.inner().unwraps(), 1, "one unwrap by the service for {n} opens");
    let stats = cached.stats();
    assert_eq!((stats.seal_misses, stats.seal_hits), (1, n as u64 - 1));
    // Ordinary envelopes: the provider alone opens them.
    assert_eq!(
        AsyncOpener::new(plain).open(&envelopes[7], &ctx()).await.unwrap(),
        b"message 7"
    );
}

/// The parent's side: a keyring under `master` is saved, a child process
/// (this test binary, re-run with [`CHILD_VAR`] and `test` selected) loads it
/// with its own connection to the service, opens an envelope and rotates the
/// keyring; this side reloads and sees the rotation, and both versions open.
pub async fn keyring_under_master_across_processes(master: &dyn AsyncKeyEncryptionProvider, test: &str) {
    let dir = std::env::temp_dir().join(format!("lockbox-composition-{}-{}", std::process::id(), test));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ring.keyring");
    let _ = std::fs::remove_file(&path);
    let mut ring = Keyring::generate(KeyId::new("composition").unwrap(), UnixTime(1_000)).unwrap();
    ring.save_async(&path, master).await.unwrap();
    let env = lockbox::seal(&ring, b"sealed before the rotation", &ctx()).unwrap();
    std::fs::write(dir.join("envelope"), &env).unwrap();
    let before = ring.primary();

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("composition-child-ok"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        ring.reload_if_changed_async(&path, master).await.unwrap(),
        "the child's save is seen"
    );
    assert_ne!(ring.primary(), before, "rotated by the other process");
    assert_eq!(
        lockbox::open(&ring, &env, &ctx()).unwrap(),
        b"sealed before the rotation"
    );
    let after = lockbox::seal(&ring, b"sealed after", &ctx()).unwrap();
    assert_eq!(lockbox::open(&ring, &after, &ctx()).unwrap(), b"sealed after");
    // The file opens under the master only.
    let loaded = Keyring::load_async(&path, master).await.unwrap();
    assert_eq!(loaded.primary(), ring.primary());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The child's side of [`keyring_under_master_across_processes`].
pub async fn keyring_child(master: &dyn AsyncKeyEncryptionProvider, path: &Path) {
    let mut ring = Keyring::load_async(path, master).await.unwrap();
    let env = std::fs::read(path.with_file_name("envelope")).unwrap();
    assert_eq!(
        lockbox::open(&ring, &env, &ctx()).unwrap(),
        b"sealed before the rotation"
    );
    ring.update_async(path, master, |r| r.rotate(UnixTime(2_000)).map(drop))
        .await
        .unwrap();
    println!("composition-child-ok");
}
