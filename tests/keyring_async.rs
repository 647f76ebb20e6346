//! A keyring under an async master (a provider that implements only the async
//! trait, as AWS KMS and OpenBao do): sealed bytes, save, load, update,
//! reload and reload-if-changed through the `_async` methods, with the same
//! file format, checks, errors and audit events as the sync ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod keyring_common;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use keyring_common::async_only::{AsyncOnly, block_on};
use keyring_common::{decode_file, t};
use lockbox::keyring::{AuditEvent, AuditSink, Keyring, KeyringAction as AuditAction, KeyringError, RotationPolicy};
use lockbox::{EncryptionContext, Error, KeyId, KeyVersion, LocalKek};

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("app", "billing").unwrap()
}

fn new_ring(id: &str) -> Keyring {
    Keyring::generate(KeyId::new(id).unwrap(), t(0))
        .unwrap()
        .with_policy(RotationPolicy::new().min_destruction_delay(0))
}

fn master() -> AsyncOnly<LocalKek> {
    AsyncOnly::new(LocalKek::generate().unwrap())
}

fn keyring_err(e: Error) -> KeyringError {
    match e {
        Error::Keyring(k) => k,
        other => panic!("expected a keyring error, got {other:?}"),
    }
}

fn rejected(e: Error, path: &Path) -> Error {
    match keyring_err(e) {
        KeyringError::FileRejected { path: p, source } => {
            assert_eq!(p, path.display().to_string());
            *source
        }
        other => panic!("expected FileRejected, got {other:?}"),
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<AuditAction>>);

impl AuditSink for Recorder {
    fn record(&self, e: &AuditEvent<'_>) -> Result<(), lockbox::audit::AuditError> {
        if let AuditEvent::Keyring(e) = e {
            self.0.lock().unwrap().push(e.action);
        }
        Ok(())
    }
}

#[tokio::test]
async fn save_load_update_and_reload_under_an_async_master() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = Arc::new(master());
    let mut ring = new_ring("orders");
    let env1 = lockbox::seal(&ring, b"one", &ctx()).unwrap();

    ring.save_async(&path, &*master).await.unwrap();
    assert_eq!(ring.generation(), 1);
    // One data key (no provider-side generation: asked, then a wrap).
    assert_eq!(master.calls(), 2);
    // The file is an ordinary keyring file sealed under the master's key:
    // the sync API with the same KEK reads it.
    let bytes = fs::read(&path).unwrap();
    let (_, raw) = decode_file(&bytes, &master.inner);
    assert_eq!((raw.id.as_str(), raw.generation, raw.primary), ("orders", 1, 1));
    assert_eq!(Keyring::load(&path, &master.inner).unwrap().generation(), 1);

    let reader = Keyring::load_async(&path, &*master).await.unwrap();
    assert_eq!(
        reader.versions().collect::<Vec<_>>(),
        ring.versions().collect::<Vec<_>>()
    );
    assert_eq!(lockbox::open(&reader, &env1, &ctx()).unwrap(), b"one");

    // Rotate through update_async: the lock is held across both master calls.
    let calls = master.calls();
    let v2 = ring.update_async(&path, &*master, |r| r.rotate(t(1))).await.unwrap();
    assert_eq!((v2, ring.generation()), (KeyVersion(2), 2));
    assert_eq!(master.calls(), calls + 3, "one unwrap, one generate, one wrap");
    let env2 = lockbox::seal(&ring, b"two", &ctx()).unwrap();

    // Another thread's copy picks the rotation up, once.
    let (m, p) = (master.clone(), path.clone());
    let reader = std::thread::spawn(move || {
        let mut reader = reader;
        assert!(block_on(reader.reload_if_changed_async(&p, &*m)).unwrap());
        assert!(!block_on(reader.reload_if_changed_async(&p, &*m)).unwrap());
        reader
    })
    .join()
    .unwrap();
    assert_eq!((reader.generation(), reader.primary()), (2, v2));
    assert_eq!(lockbox::open(&reader, &env2, &ctx()).unwrap(), b"two");
    assert_eq!(lockbox::open(&reader, &env1, &ctx()).unwrap(), b"one");

    // A stale copy cannot overwrite the newer file; reload_async, then it can.
    let mut stale = Keyring::load_async(&path, &*master).await.unwrap();
    ring.update_async(&path, &*master, |r| r.add_version(t(2)))
        .await
        .unwrap();
    stale.add_version(t(3)).unwrap();
    let before = fs::read(&path).unwrap();
    match keyring_err(stale.save_async(&path, &*master).await.unwrap_err()) {
        KeyringError::Conflict { expected, found } => assert_eq!((expected, found), (2, 3)),
        e => panic!("{e:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
    stale.reload_async(&path, &*master).await.unwrap();
    assert_eq!(stale.generation(), 3);
    stale.add_version(t(3)).unwrap();
    stale.save_async(&path, &*master).await.unwrap();
    let now = Keyring::load_async(&path, &*master).await.unwrap();
    assert_eq!((now.generation(), now.versions().count()), (4, 4));
    // A failing closure writes nothing and leaves the copy unchanged.
    let before = fs::read(&path).unwrap();
    assert!(
        ring.update_async(&path, &*master, |r| r.disable(r.primary(), t(4)))
            .await
            .is_err()
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(ring.generation(), 3);
}

#[tokio::test]
async fn the_master_can_move_between_sync_and_async_providers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let sync_master = LocalKek::generate().unwrap();
    let async_master = master();
    let mut ring = new_ring("m");
    ring.save(&path, &sync_master).unwrap();
    // Re-seal under the async master (rotating the master key): only this file changes.
    ring.save_async(&path, &async_master).await.unwrap();
    assert!(Keyring::load(&path, &sync_master).is_err());
    let mut l = Keyring::load_async(&path, &async_master).await.unwrap();
    assert_eq!(l.generation(), 2);
    // And back.
    l.save(&path, &sync_master).unwrap();
    assert_eq!(Keyring::load(&path, &sync_master).unwrap().generation(), 3);
    // Sealed bytes are interchangeable too.
    let bytes = ring.to_sealed_bytes_async(&async_master).await.unwrap();
    assert_eq!(ring.generation(), 3);
    let back = Keyring::from_sealed_bytes_async(&bytes, &async_master).await.unwrap();
    assert_eq!((back.id().as_str(), back.generation()), ("m", 3));
    let sync_view = Keyring::from_sealed_bytes(&bytes, &async_master.inner).unwrap();
    assert_eq!(sync_view.generation(), 3);
}

#[tokio::test]
async fn failures_are_the_sync_drivers_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = master();
    let mut ring = new_ring("f");
    ring.save_async(&path, &master).await.unwrap();

    // Another master: rejected, naming the file, nothing unwrapped.
    let other = AsyncOnly::new(LocalKek::generate().unwrap());
    let e = Keyring::load_async(&path, &other).await.unwrap_err();
    assert!(matches!(
        rejected(e, &path),
        Error::NoProviderCouldUnwrap { attempts: 0, .. }
    ));
    assert!(matches!(
        Keyring::from_sealed_bytes_async(&fs::read(&path).unwrap(), &other).await,
        Err(Error::NoProviderCouldUnwrap { .. })
    ));
    // A missing file.
    match keyring_err(Keyring::load_async(dir.path().join("nope"), &master).await.unwrap_err()) {
        KeyringError::Io { what, .. } => assert!(what.contains("does not exist"), "{what}"),
        e => panic!("{e:?}"),
    }
    // A tampered file is refused and never overwritten.
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        rejected(Keyring::load_async(&path, &master).await.unwrap_err(), &path),
        Error::Authentication
    ));
    assert!(matches!(
        keyring_err(ring.update_async(&path, &master, |_| Ok(())).await.unwrap_err()),
        KeyringError::FileRejected { .. }
    ));
    // Its header still claims this copy's generation: nothing to reload.
    assert!(!ring.reload_if_changed_async(&path, &master).await.unwrap());
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // Another keyring's file.
    let other_path = dir.path().join("other");
    new_ring("g").save_async(&other_path, &master).await.unwrap();
    assert!(matches!(
        keyring_err(ring.reload_async(&other_path, &master).await.unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
    assert!(matches!(
        keyring_err(ring.save_async(&other_path, &master).await.unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
}

#[tokio::test]
async fn audit_events_are_the_sync_drivers_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = master();
    let rec = Arc::new(Recorder::default());
    let mut ring = new_ring("a");
    ring.set_audit_sink(rec.clone());
    ring.save_async(&path, &master).await.unwrap();
    let mut stale = Keyring::load_with_audit_async(&path, &master, rec.clone())
        .await
        .unwrap();
    ring.update_async(&path, &master, |r| r.rotate(t(1))).await.unwrap();
    stale.add_version(t(2)).unwrap();
    assert!(stale.save_async(&path, &master).await.is_err());
    assert!(stale.reload_if_changed_async(&path, &master).await.unwrap());
    let actions = rec.0.lock().unwrap().clone();
    let saves_and_loads: Vec<_> = actions
        .iter()
        .filter(|a| matches!(a, AuditAction::Save { .. } | AuditAction::Load { .. }))
        .collect();
    assert_eq!(
        saves_and_loads,
        [
            &AuditAction::Save { generation: 1 },
            &AuditAction::Load { generation: 1 },
            &AuditAction::Save { generation: 2 },
            // The conflict, reported with the generation found.
            &AuditAction::Save { generation: 2 },
            &AuditAction::Load { generation: 2 },
        ]
    );
}

/// The futures are `Send`, so they can be spawned on a multi-threaded
/// runtime, with the master shared in an `Arc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_futures_are_send_and_spawn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = Arc::new(master());
    let (m, p) = (master.clone(), path.clone());
    let ring = tokio::spawn(async move {
        let mut ring = new_ring("s");
        ring.save_async(&p, &*m).await?;
        ring.update_async(&p, &*m, |r| r.rotate(t(1))).await?;
        ring.reload_async(&p, &*m).await?;
        ring.reload_if_changed_async(&p, &*m).await?;
        let bytes = ring.to_sealed_bytes_async(&*m).await?;
        Keyring::from_sealed_bytes_async(&bytes, &*m).await?;
        Ok::<_, Error>(ring)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((ring.generation(), ring.primary()), (3, KeyVersion(2)));
    let l = tokio::spawn(
        async move { Keyring::load_with_audit_async(path, &*master, Arc::new(Recorder::default())).await },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(l.generation(), 2);
}
