//! Keyring rollback (KEYRING.md §3.4): a keyring file put back to an older
//! generation (a restored backup, a compromised deploy step) is refused by
//! every path that reads or writes it, sync and async alike: `update`,
//! `save`, `load`, `reload` and `reload_if_changed` never adopt or build on a
//! generation below the highest this process has seen for that file, so a
//! destroyed version is never resurrected and no generation number ever names
//! two different keyrings. Across restarts, a caller-stored floor
//! (`Keyring::raise_generation_floor`) does the same; a deliberate restore
//! goes through `Keyring::advance_generation`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod keyring_common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use keyring_common::async_only::{AsyncOnly, block_on};
use keyring_common::{decode_file, t};
use lockbox::keyring::{Keyring, KeyringError, RotationPolicy};
use lockbox::{EncryptionContext, Error, KeyId, KeyVersion, LocalKek};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Sync,
    Async,
}

/// The keyring's file operations, through the sync methods or their `_async`
/// twins (with an async-only master holding the same key).
struct Files {
    master: AsyncOnly<LocalKek>,
    mode: Mode,
}

impl Files {
    fn new(mode: Mode) -> Self {
        Self {
            master: AsyncOnly::new(LocalKek::generate().unwrap()),
            mode,
        }
    }
    fn load(&self, p: &Path) -> Result<Keyring, Error> {
        match self.mode {
            Mode::Sync => Keyring::load(p, &self.master.inner),
            Mode::Async => block_on(Keyring::load_async(p, &self.master)),
        }
    }
    fn save(&self, r: &mut Keyring, p: &Path) -> Result<(), Error> {
        match self.mode {
            Mode::Sync => r.save(p, &self.master.inner),
            Mode::Async => block_on(r.save_async(p, &self.master)),
        }
    }
    fn update<T: Send>(
        &self,
        r: &mut Keyring,
        p: &Path,
        f: impl FnOnce(&mut Keyring) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        match self.mode {
            Mode::Sync => r.update(p, &self.master.inner, f),
            Mode::Async => block_on(r.update_async(p, &self.master, f)),
        }
    }
    fn reload(&self, r: &mut Keyring, p: &Path) -> Result<(), Error> {
        match self.mode {
            Mode::Sync => r.reload(p, &self.master.inner),
            Mode::Async => block_on(r.reload_async(p, &self.master)),
        }
    }
    fn reload_if_changed(&self, r: &mut Keyring, p: &Path) -> Result<bool, Error> {
        match self.mode {
            Mode::Sync => r.reload_if_changed(p, &self.master.inner),
            Mode::Async => block_on(r.reload_if_changed_async(p, &self.master)),
        }
    }
    /// The decrypted contents of the file at `p` and its generation.
    fn contents(&self, p: &Path) -> (Vec<u8>, u64) {
        let (body, raw) = decode_file(&fs::read(p).unwrap(), &self.master.inner);
        (body, raw.generation)
    }
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("app", "rollback").unwrap()
}

fn new_ring(id: &str) -> Keyring {
    Keyring::generate(KeyId::new(id).unwrap(), t(0))
        .unwrap()
        .with_policy(RotationPolicy::new().min_destruction_delay(0))
}

/// `e` is a rollback refusal: the file holds `found`, below `seen`.
#[track_caller]
fn assert_rollback(r: Result<impl std::fmt::Debug, Error>, seen: u64, found: u64) {
    match r {
        Err(Error::Keyring(KeyringError::Rollback { highest_seen, found: f })) => {
            assert_eq!((highest_seen, f), (seen, found));
        }
        other => panic!("expected a rollback refusal (seen {seen}, file {found}), got {other:?}"),
    }
}

/// Every generation number observed in the file names one content only.
#[derive(Default)]
struct History(BTreeMap<u64, Vec<u8>>);

impl History {
    #[track_caller]
    fn observe(&mut self, files: &Files, p: &Path) {
        let (body, g) = files.contents(p);
        let known = self.0.entry(g).or_insert_with(|| body.clone());
        assert!(*known == body, "generation {g} names two different keyrings");
    }
}

/// A keyring at generation 3 whose version 1 was destroyed at generation 3,
/// and the bytes of its generation 1 (which still holds version 1's key).
fn rolled_back_setup(files: &Files, p: &Path, history: &mut History) -> (Keyring, Vec<u8>) {
    let mut ring = new_ring("payments");
    files.save(&mut ring, p).unwrap();
    history.observe(files, p);
    let old = fs::read(p).unwrap();
    files.update(&mut ring, p, |r| r.rotate(t(1))).unwrap();
    history.observe(files, p);
    files
        .update(&mut ring, p, |r| {
            r.schedule_destruction(KeyVersion(1), t(2), t(2))?;
            r.destroy(KeyVersion(1), t(2))
        })
        .unwrap();
    history.observe(files, p);
    assert_eq!(ring.generation(), 3);
    (ring, old)
}

fn every_path_refuses_a_rolled_back_file(mode: Mode) {
    let files = Files::new(mode);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ring");
    let mut history = History::default();
    let (mut ring, old) = rolled_back_setup(&files, &p, &mut history);
    // An envelope under the destroyed version: it must stay unopenable.
    let backup = Keyring::from_sealed_bytes(&old, &files.master.inner).unwrap();
    let under_v1 = lockbox::seal(&backup, b"sealed under v1", &ctx()).unwrap();
    let mut reader = files.load(&p).unwrap();

    // The attack: generation 1 is put back.
    fs::write(&p, &old).unwrap();

    // update: refused, nothing written, the copy unchanged.
    assert_rollback(files.update(&mut ring, &p, |r| r.add_version(t(3))), 3, 1);
    assert_eq!(fs::read(&p).unwrap(), old);
    assert_eq!(ring.generation(), 3);
    // save: refused (it used to be a conflict the caller "fixed" by reloading).
    assert_rollback(files.save(&mut ring, &p), 3, 1);
    assert_eq!(fs::read(&p).unwrap(), old);
    // reload and reload_if_changed: refused, the reader keeps generation 3.
    assert_rollback(files.reload(&mut reader, &p), 3, 1);
    assert_rollback(files.reload_if_changed(&mut reader, &p), 3, 1);
    assert_eq!(reader.generation(), 3);
    // A fresh load in this process: refused too (the process saw generation 3).
    assert_rollback(files.load(&p), 3, 1);
    // A copy that never saw generation 3 (a new keyring object, or one
    // loaded before) cannot build on the rolled-back file either.
    let mut stale = Keyring::from_sealed_bytes(&old, &files.master.inner).unwrap();
    assert_rollback(files.update(&mut stale, &p, |r| r.add_version(t(3))), 3, 1);
    assert_rollback(files.save(&mut stale, &p), 3, 1);
    assert_eq!(fs::read(&p).unwrap(), old);
    // Nothing opened the envelope under the destroyed version.
    assert!(lockbox::open(&ring, &under_v1, &ctx()).is_err());
    assert!(lockbox::open(&reader, &under_v1, &ctx()).is_err());

    // Deleting the file does not help a stale copy either.
    fs::remove_file(&p).unwrap();
    assert_rollback(files.save(&mut stale, &p), 3, 1);
    assert!(!p.exists());
    // The current copy can write it again, as generation 4.
    files.save(&mut ring, &p).unwrap();
    history.observe(&files, &p);
    assert_eq!(files.load(&p).unwrap().generation(), 4);
    assert!(files.reload_if_changed(&mut reader, &p).unwrap());
    assert_eq!(reader.generation(), 4);
}

#[test]
fn every_path_refuses_a_rolled_back_file_sync() {
    every_path_refuses_a_rolled_back_file(Mode::Sync);
}

#[test]
fn every_path_refuses_a_rolled_back_file_async() {
    every_path_refuses_a_rolled_back_file(Mode::Async);
}

fn the_floor_survives_a_restart(mode: Mode) {
    let files = Files::new(mode);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ring");
    let mut history = History::default();
    let (ring, old) = rolled_back_setup(&files, &p, &mut history);
    let id = ring.id().clone();
    // What a reader stores (somewhere the attacker cannot write) after each load.
    let stored = files.load(&p).unwrap().generation();
    assert_eq!(stored, 3);
    assert_eq!(Keyring::generation_floor(&p, &id).unwrap(), Some(3));

    // A restart, simulated by a path this process never saw: the same files
    // under a new directory, rolled back.
    let restarted = tempfile::tempdir().unwrap();
    let q = restarted.path().join("ring");
    fs::write(&q, &old).unwrap();
    assert_eq!(Keyring::generation_floor(&q, &id).unwrap(), None);
    // The stored value goes back in before the first load.
    Keyring::raise_generation_floor(&q, &id, stored).unwrap();
    assert_eq!(Keyring::generation_floor(&q, &id).unwrap(), Some(3));
    assert_rollback(files.load(&q), 3, 1);
    let mut copy = Keyring::from_sealed_bytes(&old, &files.master.inner).unwrap();
    assert_rollback(files.update(&mut copy, &q, |r| r.add_version(t(4))), 3, 1);
    assert_eq!(fs::read(&q).unwrap(), old, "nothing written");
    // A floor is never lowered.
    Keyring::raise_generation_floor(&q, &id, 2).unwrap();
    assert_eq!(Keyring::generation_floor(&q, &id).unwrap(), Some(3));
    // It is per keyring: another keyring id at that path is not affected.
    assert_eq!(
        Keyring::generation_floor(&q, &KeyId::new("another").unwrap()).unwrap(),
        None
    );
}

#[test]
fn the_floor_survives_a_restart_sync() {
    the_floor_survives_a_restart(Mode::Sync);
}

#[test]
fn the_floor_survives_a_restart_async() {
    the_floor_survives_a_restart(Mode::Async);
}

fn a_deliberate_restore_gets_a_new_generation(mode: Mode) {
    let files = Files::new(mode);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ring");
    let mut history = History::default();
    let (ring, old) = rolled_back_setup(&files, &p, &mut history);
    // An operator restores generation 1 on purpose (say generation 3 was
    // damaged): the backup is saved *above* every generation the file had,
    // so no number names two keyrings.
    let mut backup = Keyring::from_sealed_bytes(&old, &files.master.inner).unwrap();
    assert_eq!(backup.generation(), 1);
    backup.advance_generation(ring.generation());
    assert_eq!(backup.generation(), 3);
    backup.advance_generation(1);
    assert_eq!(backup.generation(), 3, "never lowered");
    files.save(&mut backup, &p).unwrap();
    history.observe(&files, &p);
    assert_eq!(files.contents(&p).1, 4);
    // The restored keyring has version 1 again: that was the operator's choice.
    assert!(files.load(&p).unwrap().version(KeyVersion(1)).is_ok());
}

#[test]
fn a_deliberate_restore_gets_a_new_generation_sync() {
    a_deliberate_restore_gets_a_new_generation(Mode::Sync);
}

#[test]
fn a_deliberate_restore_gets_a_new_generation_async() {
    a_deliberate_restore_gets_a_new_generation(Mode::Async);
}
