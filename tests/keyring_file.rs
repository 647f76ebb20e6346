//! Keyring persistence: round trips, owner-only atomic saves, tampering and
//! corruption (never overwritten), compare-and-swap conflicts, master
//! rotation over 1,000 envelopes, destruction removing key bytes from the
//! file, a child process killed mid-save, and two processes updating at once.
#![allow(
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

#[path = "support/child.rs"]
mod child;
mod keyring_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use keyring_common::{decode_file, t, version_keys};
use lockbox::keyring::{KeyState, Keyring, KeyringError, RotationPolicy};
use lockbox::{EncryptionContext, Error, KeyId, KeyVersion, LocalKek};

const CHILD_ENV: &str = "LOCKBOX_KEYRING_TEST_CHILD";
const DIR_ENV: &str = "LOCKBOX_KEYRING_TEST_DIR";

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("app", "billing").unwrap()
}

fn new_ring(id: &str) -> Keyring {
    Keyring::generate(KeyId::new(id).unwrap(), t(0))
        .unwrap()
        .with_policy(RotationPolicy::new().rotate_every(86_400).min_destruction_delay(0))
}

fn keyring_err(e: Error) -> KeyringError {
    match e {
        Error::Keyring(k) => k,
        other => panic!("expected a keyring error, got {other:?}"),
    }
}

/// The specific error under a `FileRejected`, checking the path is named.
fn rejected(e: Error, path: &Path) -> Error {
    match e {
        Error::Keyring(KeyringError::FileRejected { path: p, source }) => {
            assert_eq!(p, path.display().to_string());
            let shown = Error::Keyring(KeyringError::FileRejected {
                path: p,
                source: Box::new(Error::Authentication),
            })
            .to_string();
            assert!(shown.contains("was rejected"), "{shown}");
            *source
        }
        other => panic!("expected FileRejected, got {other:?}"),
    }
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn save_then_load_round_trips_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    let mut r = new_ring("orders");
    let env1 = lockbox::seal(&r, b"one", &ctx()).unwrap();
    r.rotate(t(1)).unwrap();
    r.add_version(t(2)).unwrap();
    r.compromised(KeyVersion(1), t(3)).unwrap();
    r.schedule_destruction(KeyVersion(3), t(9), t(4)).unwrap();
    let env2 = lockbox::seal(&r, b"two", &ctx()).unwrap();
    r.save(&path, &master).unwrap();
    assert_eq!(r.generation(), 1);
    // Only the file and its lock file: no temporary file is left.
    assert_eq!(dir_entries(dir.path()), ["ring", "ring.lock"]);

    let l = Keyring::load(&path, &master).unwrap();
    assert_eq!(l.id(), r.id());
    assert_eq!(l.generation(), 1);
    assert_eq!(l.primary(), r.primary());
    assert_eq!(l.minimum_decryption_version(), r.minimum_decryption_version());
    assert_eq!(l.policy(), r.policy());
    assert_eq!(l.versions().collect::<Vec<_>>(), r.versions().collect::<Vec<_>>());
    assert_eq!(lockbox::open(&l, &env2, &ctx()).unwrap(), b"two");
    assert_eq!(lockbox::open(&l.migration_provider(), &env1, &ctx()).unwrap(), b"one");
    assert!(lockbox::open(&l, &env1, &ctx()).is_err(), "v1 is compromised");

    // The file is a lockbox envelope whose stored context names the keyring.
    let bytes = fs::read(&path).unwrap();
    let info = lockbox::inspect(&bytes).unwrap();
    let stored: Vec<_> = info.stored_context().collect();
    assert_eq!(
        stored,
        [
            ("lockbox.keyring.format", "1"),
            ("lockbox.keyring.generation", "1"),
            ("lockbox.keyring.id", "orders"),
        ]
    );
    let (_, raw) = decode_file(&bytes, &master);
    assert_eq!(
        (raw.id.as_str(), raw.generation, raw.primary, raw.last_version),
        ("orders", 1, 2, 3)
    );
    assert_eq!(raw.entries.len(), 3);
    assert_eq!(raw.entries[0].flags, 1, "v1 compromised");
    assert_eq!(raw.entries[2].state, 3, "v3 scheduled");
    assert_eq!(raw.entries[2].time, t(9).0);
}

#[cfg(unix)]
#[test]
fn files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    new_ring("a").save(&path, &master).unwrap();
    for p in [path.clone(), dir.path().join("ring.lock")] {
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            p.display()
        );
    }
}

#[test]
fn a_tampered_or_corrupted_file_is_refused_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    let mut r = new_ring("a");
    r.save(&path, &master).unwrap();
    let good = fs::read(&path).unwrap();
    let info = lockbox::inspect(&good).unwrap();
    let header = info.header_len();

    // Any flipped payload byte fails authentication; header bytes fail one way or another.
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let e = rejected(Keyring::load(&path, &master).unwrap_err(), &path);
        if i >= header {
            assert!(matches!(e, Error::Authentication), "byte {i}: {e:?}");
        }
        // The failed load left the file as it was.
        assert_eq!(fs::read(&path).unwrap(), bad);
    }
    // Truncated, empty, extended.
    for bad in [
        &good[..good.len() - 1],
        &good[..10],
        &[][..],
        &[good.as_slice(), b"x"].concat()[..],
    ] {
        fs::write(&path, bad).unwrap();
        assert!(Keyring::load(&path, &master).is_err());
        assert_eq!(fs::read(&path).unwrap(), bad);
    }

    // A save over a file that is not a keyring file refuses, and leaves it.
    fs::write(&path, b"garbage").unwrap();
    assert!(matches!(
        rejected(r.save(&path, &master).unwrap_err(), &path),
        Error::Malformed { .. }
    ));
    assert_eq!(fs::read(&path).unwrap(), b"garbage");
    // So does an update.
    assert!(r.update(&path, &master, |k| k.rotate(t(5))).is_err());
    assert_eq!(fs::read(&path).unwrap(), b"garbage");
    assert_eq!(r.primary(), KeyVersion(1), "failed update left the copy unchanged");
}

#[test]
fn another_master_cannot_load_and_a_missing_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    new_ring("a").save(&path, &master).unwrap();
    let other = LocalKek::generate().unwrap();
    let e = Keyring::load(&path, &other).unwrap_err();
    assert!(e.to_string().contains("no provider could unwrap"), "{e}");
    assert!(matches!(
        rejected(e, &path),
        Error::NoProviderCouldUnwrap { attempts: 0, .. }
    ));
    match keyring_err(Keyring::load(dir.path().join("nope"), &master).unwrap_err()) {
        KeyringError::Io { what, .. } => assert!(what.contains("does not exist"), "{what}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_stale_copy_cannot_overwrite_a_newer_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    let mut r = new_ring("a");
    r.save(&path, &master).unwrap();
    let mut a = Keyring::load(&path, &master).unwrap();
    let mut b = Keyring::load(&path, &master).unwrap();
    a.rotate(t(1)).unwrap();
    a.save(&path, &master).unwrap();
    b.add_version(t(2)).unwrap();
    match keyring_err(b.save(&path, &master).unwrap_err()) {
        KeyringError::Conflict { expected, found } => assert_eq!((expected, found), (1, 2)),
        e => panic!("{e:?}"),
    }
    // The file still holds a's save.
    let now = Keyring::load(&path, &master).unwrap();
    assert_eq!((now.generation(), now.primary()), (2, KeyVersion(2)));
    // b reloads, reapplies, saves.
    b.reload(&path, &master).unwrap();
    b.add_version(t(2)).unwrap();
    b.save(&path, &master).unwrap();
    assert_eq!(Keyring::load(&path, &master).unwrap().versions().count(), 3);
    // update() applies on top of the file whatever this copy's generation.
    let mut stale = r;
    let v = stale.update(&path, &master, |k| k.rotate(t(3))).unwrap();
    assert_eq!(v, KeyVersion(4));
    assert_eq!(stale.generation(), 4);
    assert_eq!(Keyring::load(&path, &master).unwrap().primary(), KeyVersion(4));
    // A failing closure writes nothing.
    let before = fs::read(&path).unwrap();
    assert!(stale.update(&path, &master, |k| k.disable(k.primary(), t(4))).is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
    // A new keyring never saved does not overwrite an existing file.
    let mut fresh = new_ring("a");
    assert!(matches!(
        keyring_err(fresh.save(&path, &master).unwrap_err()),
        KeyringError::Conflict { expected: 0, found: 4 }
    ));
    // Nor does another keyring.
    let mut other = Keyring::load(&path, &master).unwrap();
    let mut b_ring = new_ring("b");
    assert!(matches!(
        keyring_err(b_ring.save(&path, &master).unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
    assert!(matches!(
        keyring_err(b_ring.update(&path, &master, |_| Ok(())).unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
    // A deleted file can be written again from any copy.
    fs::remove_file(&path).unwrap();
    let g = stale.generation();
    stale.save(&path, &master).unwrap();
    assert_eq!(Keyring::load(&path, &master).unwrap().generation(), g + 1);
    let pb = dir.path().join("ring-b");
    b_ring.save(&pb, &master).unwrap();
    assert!(matches!(
        keyring_err(other.reload(&pb, &master).unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
}

#[test]
fn readers_pick_up_another_process_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    let mut writer = new_ring("r");
    writer.save(&path, &master).unwrap();
    let mut reader = Keyring::load(&path, &master).unwrap();
    assert!(!reader.reload_if_changed(&path, &master).unwrap());
    writer.rotate(t(1)).unwrap();
    writer.save(&path, &master).unwrap();
    let env = lockbox::seal(&writer, b"new", &ctx()).unwrap();
    assert!(
        lockbox::open(&reader, &env, &ctx()).is_err(),
        "the reader does not know v2 yet"
    );
    assert!(reader.reload_if_changed(&path, &master).unwrap());
    assert_eq!((reader.generation(), reader.primary()), (2, KeyVersion(2)));
    assert_eq!(lockbox::open(&reader, &env, &ctx()).unwrap(), b"new");
    assert!(!reader.reload_if_changed(&path, &master).unwrap());
    // A corrupted file is reported, and the reader keeps its copy.
    fs::write(&path, b"junk").unwrap();
    assert!(matches!(
        keyring_err(reader.reload_if_changed(&path, &master).unwrap_err()),
        KeyringError::FileRejected { .. }
    ));
    assert_eq!(lockbox::open(&reader, &env, &ctx()).unwrap(), b"new");
}

#[test]
fn sealed_bytes_round_trip_and_detect_a_swapped_context() {
    let master = LocalKek::generate().unwrap();
    let mut r = new_ring("mem");
    let b1 = r.to_sealed_bytes(&master).unwrap();
    let b2 = r.to_sealed_bytes(&master).unwrap();
    assert_eq!(r.generation(), 2);
    assert_eq!(Keyring::from_sealed_bytes(&b1, &master).unwrap().generation(), 1);
    assert_eq!(Keyring::from_sealed_bytes(&b2, &master).unwrap().generation(), 2);
    // Contents of one keyring sealed under a context naming another (a forger
    // holding the master could do this) are refused.
    let (body, _) = decode_file(&b1, &master);
    let forged_ctx = EncryptionContext::new()
        .with("lockbox.keyring.format", "1")
        .unwrap()
        .with("lockbox.keyring.id", "other")
        .unwrap()
        .with("lockbox.keyring.generation", "1")
        .unwrap();
    let forged = lockbox::seal(&master, &body, &forged_ctx).unwrap();
    assert!(matches!(
        keyring_err(Keyring::from_sealed_bytes(&forged, &master).unwrap_err()),
        KeyringError::IdMismatch { .. }
    ));
    let wrong_gen = EncryptionContext::new()
        .with("lockbox.keyring.format", "1")
        .unwrap()
        .with("lockbox.keyring.id", "mem")
        .unwrap()
        .with("lockbox.keyring.generation", "7")
        .unwrap();
    let forged = lockbox::seal(&master, &body, &wrong_gen).unwrap();
    assert!(matches!(
        keyring_err(Keyring::from_sealed_bytes(&forged, &master).unwrap_err()),
        KeyringError::Malformed { .. }
    ));
    let no_ctx = lockbox::seal(&master, &body, &EncryptionContext::new()).unwrap();
    assert!(Keyring::from_sealed_bytes(&no_ctx, &master).is_err());
    let good_ctx = || {
        EncryptionContext::new()
            .with("lockbox.keyring.id", "mem")
            .unwrap()
            .with("lockbox.keyring.generation", "1")
            .unwrap()
    };
    // The reference's own context is accepted; a future format is "unsupported";
    // an extra entry is refused.
    let ok = lockbox::seal(&master, &body, &good_ctx().with("lockbox.keyring.format", "1").unwrap()).unwrap();
    assert_eq!(Keyring::from_sealed_bytes(&ok, &master).unwrap().id().as_str(), "mem");
    let future = lockbox::seal(&master, &body, &good_ctx().with("lockbox.keyring.format", "2").unwrap()).unwrap();
    assert!(matches!(
        keyring_err(Keyring::from_sealed_bytes(&future, &master).unwrap_err()),
        KeyringError::UnsupportedFormat(2)
    ));
    let extra = good_ctx()
        .with("lockbox.keyring.format", "1")
        .unwrap()
        .with("note", "x")
        .unwrap();
    let extra = lockbox::seal(&master, &body, &extra).unwrap();
    assert!(matches!(
        keyring_err(Keyring::from_sealed_bytes(&extra, &master).unwrap_err()),
        KeyringError::Malformed { .. }
    ));
}

#[test]
fn rotating_the_master_rewrites_only_the_keyring_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let old_master = LocalKek::generate().unwrap();
    let mut r = new_ring("hierarchy");
    r.rotate(t(1)).unwrap();
    r.save(&path, &old_master).unwrap();

    let envelopes: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            if i == 500 {
                r.rotate(t(2)).unwrap();
            }
            lockbox::seal(&r, &i.to_be_bytes(), &ctx()).unwrap()
        })
        .collect();
    r.save(&path, &old_master).unwrap();
    let snapshot = envelopes.clone();
    let keys_before = version_keys(&fs::read(&path).unwrap(), &old_master);

    // Rotate the master: load under the old one, save under the new one.
    let new_master = LocalKek::generate().unwrap();
    let mut loaded = Keyring::load(&path, &old_master).unwrap();
    loaded.save(&path, &new_master).unwrap();

    let reloaded = Keyring::load(&path, &new_master).unwrap();
    assert_eq!(reloaded.generation(), 3);
    assert_eq!(envelopes, snapshot, "no envelope changed");
    for (i, env) in envelopes.iter().enumerate() {
        assert_eq!(lockbox::open(&reloaded, env, &ctx()).unwrap(), (i as u32).to_be_bytes());
    }
    // Same KEKs, under a new master; the old master opens nothing any more.
    let new_file = fs::read(&path).unwrap();
    assert_eq!(version_keys(&new_file, &new_master), keys_before);
    assert!(Keyring::load(&path, &old_master).is_err());
    assert!(lockbox::open(&old_master, &new_file, &EncryptionContext::new()).is_err());
}

#[test]
fn destroyed_key_bytes_leave_the_file_on_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let master = LocalKek::generate().unwrap();
    let mut r = new_ring("d");
    let env = lockbox::seal(&r, b"v1 data", &ctx()).unwrap();
    r.rotate(t(1)).unwrap();
    r.save(&path, &master).unwrap();
    let before = fs::read(&path).unwrap();
    let keys = version_keys(&before, &master);
    let v1_key = keys.iter().find(|(v, _)| *v == 1).unwrap().1;
    let v2_key = keys.iter().find(|(v, _)| *v == 2).unwrap().1;

    r.schedule_destruction(KeyVersion(1), t(2), t(2)).unwrap();
    r.save(&path, &master).unwrap();
    let (body, _) = decode_file(&fs::read(&path).unwrap(), &master);
    assert!(
        body.windows(32).any(|w| w == v1_key),
        "scheduled: the key is still there"
    );

    r.destroy(KeyVersion(1), t(2)).unwrap();
    r.save(&path, &master).unwrap();
    let after = fs::read(&path).unwrap();
    let (body, raw) = decode_file(&after, &master);
    assert!(
        !body.windows(32).any(|w| w == v1_key),
        "destroyed key bytes still in the file"
    );
    assert!(body.windows(32).any(|w| w == v2_key));
    // The tombstone stays.
    assert_eq!(raw.entries[0].version, 1);
    assert_eq!((raw.entries[0].state, raw.entries[0].key), (4, None));
    let l = Keyring::load(&path, &master).unwrap();
    assert_eq!(
        l.version(KeyVersion(1)).unwrap().state,
        KeyState::Destroyed { at: t(2) }
    );
    match lockbox::open(&l, &env, &ctx()) {
        Err(Error::NoProviderCouldUnwrap { source: Some(pe), .. }) => {
            assert_eq!(pe.kind(), lockbox::ProviderErrorKind::KeyDestroyed);
        }
        other => panic!("{other:?}"),
    }
    // Trimming removes the tombstone from the file as well.
    let mut l = l;
    l.set_minimum_decryption_version(KeyVersion(2), t(3)).unwrap();
    l.trim(t(3)).unwrap();
    l.save(&path, &master).unwrap();
    let (_, raw) = decode_file(&fs::read(&path).unwrap(), &master);
    assert_eq!((raw.entries.len(), raw.trimmed_below), (1, 2));
}

// ---------------------------------------------------------------------------
// Child processes: the test binary re-executed with CHILD_ENV set.

fn master_in(dir: &Path) -> LocalKek {
    LocalKek::from_file(dir.join("master.key")).unwrap()
}

/// The child side of the process tests; does nothing in a normal run.
#[test]
fn child_process_role() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    let dir = PathBuf::from(std::env::var(DIR_ENV).unwrap());
    let master = master_in(&dir);
    let path = dir.join("ring");
    let mut ring = Keyring::load(&path, &master).unwrap();
    match role.as_str() {
        // Saves forever (until killed), each save a new version.
        "loop" => loop {
            ring.update(&path, &master, |k| k.add_version(t(1)).map(|_| ()))
                .unwrap();
        },
        // A fixed number of read-modify-write updates.
        n => {
            let n: usize = n.parse().unwrap();
            for _ in 0..n {
                ring.update(&path, &master, |k| k.add_version(t(1)).map(|_| ()))
                    .unwrap();
            }
        }
    }
}

fn spawn_child(dir: &Path, role: &str) -> Child {
    child::test_binary("child_process_role")
        .env(CHILD_ENV, role)
        .env(DIR_ENV, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Checks that the file loads and is self-consistent: every save adds exactly
/// one version, so generation g holds g versions.
fn check_consistent(path: &Path, master: &LocalKek) -> u64 {
    let l = Keyring::load(path, master).unwrap_or_else(|e| panic!("torn or unreadable keyring file: {e}"));
    assert_eq!(l.versions().count() as u64, l.generation());
    l.generation()
}

#[test]
fn a_child_killed_mid_save_leaves_the_old_or_the_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let master = LocalKek::generate().unwrap();
    master.write_new_file(dir.path().join("master.key")).unwrap();
    let path = dir.path().join("ring");
    new_ring("crash").save(&path, &master).unwrap();

    let mut last = 1;
    for round in 0..6u64 {
        let mut child = spawn_child(dir.path(), "loop");
        // Let it save a few times, then kill it at an arbitrary point.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let g = check_consistent(&path, &master);
            if g >= last + 3 {
                break;
            }
            assert!(Instant::now() < deadline, "the child made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(3 + 7 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(check_consistent(&path, &master) >= last);
        // The file is usable: a new save on top of it works.
        let mut k = Keyring::load(&path, &master).unwrap();
        k.add_version(t(1)).unwrap();
        k.save(&path, &master).unwrap();
        last = check_consistent(&path, &master);
    }
    // Only temporary files of killed saves may be left, never a partial "ring".
    let mut leftovers = 0;
    for name in dir_entries(dir.path()) {
        assert!(
            ["ring", "ring.lock", "master.key"].contains(&name.as_str()) || name.starts_with(".ring.tmp-"),
            "{name}"
        );
        leftovers += usize::from(name.starts_with(".ring.tmp-"));
    }
    println!("{leftovers} of 6 kills landed between creating and renaming a temporary file");
}

#[test]
fn two_processes_updating_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let master = LocalKek::generate().unwrap();
    master.write_new_file(dir.path().join("master.key")).unwrap();
    let path = dir.path().join("ring");
    new_ring("shared").save(&path, &master).unwrap();

    const N: u64 = 25;
    let mut a = spawn_child(dir.path(), &N.to_string());
    let mut b = spawn_child(dir.path(), &N.to_string());
    // The parent updates too, through a stale copy.
    let mut mine = Keyring::load(&path, &master).unwrap();
    for _ in 0..N {
        mine.update(&path, &master, |k| k.add_version(t(1)).map(|_| ()))
            .unwrap();
    }
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let l = Keyring::load(&path, &master).unwrap();
    assert_eq!(l.generation(), 1 + 3 * N);
    assert_eq!(l.versions().count() as u64, 1 + 3 * N, "an update was lost");
    let numbers: Vec<u32> = l.versions().map(|v| v.version.0).collect();
    assert_eq!(numbers, (1..=(1 + 3 * N as u32)).collect::<Vec<_>>());
}
