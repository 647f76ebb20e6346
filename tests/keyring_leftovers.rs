//! Crash leftovers (KEYRING.md §3.3, §4): a writer killed between creating
//! its temporary file and renaming it leaves a complete keyring behind,
//! holding keys the live keyring later destroys. The next writer removes such
//! files under the lock, so a destroyed key does not survive in files
//! lockbox wrote. Measured with a loop of 220 SIGKILLs during saves.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::print_stdout
)]

#[path = "support/child.rs"]
mod child;
mod keyring_common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use keyring_common::{t, version_keys};
use lockbox::keyring::{KeyState, Keyring, RotationPolicy};
use lockbox::{KeyId, KeyVersion, LocalKek};

const CHILD_ENV: &str = "LOCKBOX_LEFTOVER_TEST_CHILD";
const DIR_ENV: &str = "LOCKBOX_LEFTOVER_TEST_DIR";
/// SIGKILLs during saves.
const KILLS: u64 = 220;

/// One save of the churn: a new primary, and the version two behind it
/// destroyed, so every generation destroys a key the one before still held.
fn churn(r: &mut Keyring) -> Result<(), lockbox::Error> {
    let n = r.rotate(t(1))?;
    if n.0 >= 3 {
        let old = KeyVersion(n.0 - 2);
        r.schedule_destruction(old, t(1), t(1))?;
        r.destroy(old, t(1))?;
    }
    Ok(())
}

/// The child: saves with `churn` until it is killed.
#[test]
fn child_role() {
    let Ok(dir) = std::env::var(DIR_ENV) else { return };
    assert_eq!(std::env::var(CHILD_ENV).as_deref(), Ok("churn"));
    let dir = PathBuf::from(dir);
    let master = LocalKek::from_file(dir.join("master.key")).unwrap();
    let path = dir.join("ring");
    let mut ring = Keyring::load(&path, &master).unwrap();
    loop {
        ring.update(&path, &master, churn).unwrap();
    }
}

/// The leftover temporary files of `ring` in `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".ring.tmp-"))
        })
        .collect();
    v.sort();
    v
}

/// Keys of versions the live keyring has destroyed, found in other files
/// of `dir` that load as a keyring under `master`.
fn destroyed_keys_outside_the_live_file(dir: &Path, master: &LocalKek) -> (usize, usize) {
    let live_bytes = fs::read(dir.join("ring")).unwrap();
    let live = Keyring::from_sealed_bytes(&live_bytes, master).unwrap();
    let destroyed: BTreeSet<u32> = live
        .versions()
        .filter(|v| matches!(v.state, KeyState::Destroyed { .. }))
        .map(|v| v.version.0)
        .collect();
    let live_keys: BTreeSet<[u8; 32]> = version_keys(&live_bytes, master).into_iter().map(|(_, k)| k).collect();
    let (mut loadable, mut holding) = (0, 0);
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().and_then(|n| n.to_str()) == Some("ring") {
            continue;
        }
        let Ok(bytes) = fs::read(&p) else { continue };
        if Keyring::from_sealed_bytes(&bytes, master).is_err() {
            continue;
        }
        loadable += 1;
        if version_keys(&bytes, master)
            .iter()
            .any(|(v, k)| destroyed.contains(v) && !live_keys.contains(k))
        {
            holding += 1;
        }
    }
    (loadable, holding)
}

#[test]
fn no_file_lockbox_wrote_keeps_a_destroyed_key_after_kills_during_saves() {
    if std::env::var(DIR_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let master = LocalKek::generate().unwrap();
    master.write_new_file(dir.path().join("master.key")).unwrap();
    let path = dir.path().join("ring");
    Keyring::generate(KeyId::new("leftovers").unwrap(), t(0))
        .unwrap()
        .with_policy(RotationPolicy::new().min_destruction_delay(0))
        .save(&path, &master)
        .unwrap();

    // A fixed pseudo-random schedule of kill delays (2 to 41 ms after spawn).
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let (mut seen, mut max_present) = (BTreeSet::new(), 0usize);
    for _ in 0..KILLS {
        let mut child = child::test_binary("child_role")
            .env(CHILD_ENV, "churn")
            .env(DIR_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_millis(2 + (seed >> 33) % 40));
        child.kill().unwrap();
        child.wait().unwrap();
        let present = leftovers(dir.path());
        max_present = max_present.max(present.len());
        seen.extend(present);
    }
    let before_save = leftovers(dir.path()).len();
    let (loadable_before, holding_before) = destroyed_keys_outside_the_live_file(dir.path(), &master);
    // The next save through lockbox (any writer) cleans up under the lock.
    let mut ring = Keyring::load(&path, &master).unwrap();
    ring.update(&path, &master, churn).unwrap();
    let after = leftovers(dir.path());
    let (loadable, holding) = destroyed_keys_outside_the_live_file(dir.path(), &master);
    let seen_leftovers = seen.len();
    println!(
        "{KILLS} kills; generation {}; {seen_leftovers} kills left a temporary file (at most {max_present} \
         present at once); before the final save: {before_save} leftover(s), {loadable_before} loadable keyring(s) \
         outside the live file, {holding_before} holding a destroyed key; after it: {} leftover(s), {loadable} \
         loadable, {holding} holding a destroyed key",
        ring.generation(),
        after.len()
    );
    assert!(
        seen_leftovers > 0,
        "no kill landed inside a save: the loop tests nothing"
    );
    assert!(after.is_empty(), "leftovers after a save: {after:?}");
    assert_eq!((loadable, holding), (0, 0));
    // Only the keyring, its lock and the master key remain.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["master.key", "ring", "ring.lock"]);
}

#[test]
fn only_our_own_temporary_files_are_removed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let master = LocalKek::generate().unwrap();
    let path = dir.path().join("ring");
    let mut ring = Keyring::generate(KeyId::new("mine").unwrap(), t(0)).unwrap();
    ring.save(&path, &master).unwrap();
    let keep = [
        ".ring.tmp-0123456789ABCDEF",  // not our (lowercase) pattern
        ".ring.tmp-0123",              // too short
        ".other.tmp-0123456789abcdef", // another target's
        "ring.tmp-0123456789abcdef",   // not hidden
        ".ring.tmp-0123456789abcdef0", // too long
    ];
    for name in keep {
        fs::write(dir.path().join(name), b"x").unwrap();
    }
    // A link with our pattern is not a file we wrote: left alone, as is its target.
    let target = dir.path().join("target-of-link");
    fs::write(&target, b"keep me").unwrap();
    symlink(&target, dir.path().join(".ring.tmp-00000000000000ff")).unwrap();
    let ours = dir.path().join(".ring.tmp-fedcba9876543210");
    fs::write(&ours, b"stale").unwrap();
    // A reader removes nothing: it holds no lock.
    Keyring::load(&path, &master).unwrap();
    assert!(ours.exists());
    ring.rotate(t(1)).unwrap();
    ring.save(&path, &master).unwrap();
    assert!(!ours.exists(), "our stale temporary file was removed");
    for name in keep {
        assert!(dir.path().join(name).exists(), "{name} was removed");
    }
    assert_eq!(fs::read(&target).unwrap(), b"keep me");
    assert!(
        fs::symlink_metadata(dir.path().join(".ring.tmp-00000000000000ff")).is_ok(),
        "a link is not ours to remove"
    );
}
