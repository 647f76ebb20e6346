//! The object store against a real S3 API (moto_server, started by
//! `bash scripts/services.sh start kms`): ranged header reads, ordered
//! listing with a cursor, ETag compare-and-swap, and the async rotation
//! engine (census, rewrap with a rate limit, resume) over a bucket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![allow(
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation
)]

#[path = "../../../tests/support/services.rs"]
mod services;

use std::collections::BTreeMap;
use std::time::Duration;

use lockbox::keyring::{Keyring, UnixTime};
use lockbox::rotation::{
    AsyncJob, AsyncStore, Census, MigrationPolicy, OutcomeKind, RateLimit, StoreErrorKind, TokioSleep, VersionToken,
};
use lockbox::{EncryptionContext, KeyId, KeyVersion};
use lockbox_object_store::{ObjectStorage, S3Settings};
use object_store::PutPayload;
use sha2::{Digest, Sha256};

/// The bucket, under a prefix of its own (tests run in parallel).
fn bucket(name: &str) -> Option<ObjectStorage> {
    let endpoint = services::service_env("LOCKBOX_TEST_S3_ENDPOINT")?;
    let ca = std::fs::read(services::service_env("LOCKBOX_TEST_S3_CA_CERT")?).unwrap();
    let settings = S3Settings::new(
        endpoint,
        services::service_env("LOCKBOX_TEST_S3_REGION")?,
        services::service_env("LOCKBOX_TEST_S3_BUCKET")?,
    )
    .with_credentials(
        services::service_env("LOCKBOX_TEST_S3_ACCESS_KEY_ID")?,
        services::service_env("LOCKBOX_TEST_S3_SECRET_ACCESS_KEY")?,
    )
    .with_ca_certificate_pem(ca);
    let mut run = [0u8; 6];
    lockbox::provider::fill_random(&mut run).unwrap();
    let prefix = format!("{name}-{}", run.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Some(ObjectStorage::s3(&settings).unwrap().with_prefix(prefix))
}

/// Creates an object through the object store directly (the engine only
/// rewrites existing ones).
async fn put(store: &ObjectStorage, full_key: &str, bytes: Vec<u8>) {
    store
        .inner()
        .put(
            &object_store::path::Path::parse(full_key).unwrap(),
            PutPayload::from(bytes),
        )
        .await
        .unwrap();
}

fn full_key(store: &ObjectStorage, key: &str) -> String {
    format!("{}{key}", store.prefix())
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("bucket", "test").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_ordered_listing_and_compare_and_swap() {
    let Some(store) = bucket("basics") else { return };
    let kek = lockbox::LocalKek::generate().unwrap();
    let big = vec![9u8; 100_000];
    let env = lockbox::seal(&kek, &big, &ctx()).unwrap();
    for k in ["b/2", "a", "b/1", "c"] {
        put(&store, &full_key(&store, k), env.clone()).await;
    }
    store.create("empty", Vec::new()).await.unwrap();
    // Create refuses to overwrite.
    assert_eq!(
        store.create("empty", b"x".to_vec()).await.unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    // Listing: key order, a cursor, a limit.
    let all: Vec<String> = store
        .list_after_async(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(all, ["a", "b/1", "b/2", "c", "empty"]);
    let page = store.list_after_async(Some("b/1"), 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), ["b/2", "c"]);
    assert_eq!(page[0].size, env.len() as u64);
    // A ranged read fetches the prefix only, and tells the whole size.
    let f = store.read_prefix_async("a", 4096).await.unwrap();
    assert_eq!(f.bytes.len(), 4096);
    assert_eq!(f.bytes[..], env[..4096]);
    assert_eq!(f.size, env.len() as u64);
    let e = store.read_prefix_async("empty", 4096).await.unwrap();
    assert!(e.bytes.is_empty() && e.size == 0);
    assert_eq!(
        store.read_async("missing").await.unwrap_err().kind(),
        StoreErrorKind::NotFound
    );
    // Compare-and-swap on the ETag.
    let v1 = store.read_async("c").await.unwrap().version;
    let v2 = store.write_if_unchanged_async("c", &v1, b"new").await.unwrap();
    assert_ne!(v1, v2);
    let stale = store
        .write_if_unchanged_async("c", &v1, b"lost update")
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), StoreErrorKind::Conflict);
    assert_eq!(store.read_async("c").await.unwrap().bytes, b"new");
    let bogus = VersionToken::new("\"0123456789abcdef0123456789abcdef\"");
    assert_eq!(
        store
            .replace_header_async("a", &bogus, 10, b"x")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Conflict
    );
    // A header replaced, the payload kept byte for byte.
    let va = store.read_async("a").await.unwrap().version;
    let h = lockbox::inspect(&env).unwrap().header_len() as u64;
    store.replace_header_async("a", &va, h, b"NEWHEADER").await.unwrap();
    let after = store.read_async("a").await.unwrap().bytes;
    assert_eq!(&after[..9], b"NEWHEADER");
    assert_eq!(after[9..], env[h as usize..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn census_and_rewrap_of_a_bucket_with_a_rate_limit() {
    let Some(store) = bucket("rotate") else { return };
    let t0 = UnixTime(1_700_000_000);
    let mut ring = Keyring::generate(KeyId::new("bucket-ring").unwrap(), t0).unwrap();
    let n = 60;
    let mut before = BTreeMap::new();
    for i in 0..n {
        let env = lockbox::seal(&ring, format!("object {i}").as_bytes(), &ctx()).unwrap();
        let h = lockbox::inspect(&env).unwrap().header_len();
        before.insert(format!("o/{i:03}"), Sha256::digest(&env[h..]).to_vec());
        put(&store, &full_key(&store, &format!("o/{i:03}")), env).await;
    }
    ring.rotate(t0).unwrap();
    let policy = MigrationPolicy::new().keyring(&ring);
    let report = Census::new(policy.clone())
        .revoking(
            lockbox::keyring::KEYRING_PROVIDER_ID,
            "bucket-ring",
            Some(KeyVersion(1)),
        )
        .concurrency(8)
        .run_async(&store, &TokioSleep)
        .await
        .unwrap();
    assert_eq!(report.needs_migration.envelopes, n);
    assert_eq!(report.revocations[0].strands.envelopes, n);
    let dir = tempfile_dir();
    let log = dir.join("s3-job.log");
    let start = std::time::Instant::now();
    let s = AsyncJob::new(policy.clone())
        .unwrap_with(&ring)
        .wrap_with(&ring)
        .concurrency(8)
        .rate_limit(RateLimit {
            per_second: 200.0,
            burst: 1,
        })
        .run_async(&store, &log, &TokioSleep)
        .await
        .unwrap();
    assert_eq!(s.counts.get(OutcomeKind::Rewrapped), n, "{s}");
    // 2 provider calls per envelope at 200/s.
    assert!(start.elapsed() >= Duration::from_secs_f64(2.0 * n as f64 / 200.0 * 0.9));
    let report = Census::new(policy).run_async(&store, &TokioSleep).await.unwrap();
    assert_eq!(report.current.envelopes, n);
    for (k, h) in before {
        let env = store.read_async(&k).await.unwrap().bytes;
        let info = lockbox::inspect(&env).unwrap();
        assert_eq!(info.wrapped_keys()[0].key_version(), KeyVersion(2));
        assert_eq!(Sha256::digest(&env[info.header_len()..]).to_vec(), h, "{k}");
        assert!(lockbox::open(&ring, &env, &ctx()).is_ok());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let mut r = [0u8; 8];
    lockbox::provider::fill_random(&mut r).unwrap();
    let d = std::env::temp_dir().join(format!(
        "lockbox-s3-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
