//! Hostile paths (Unix): key files, keyring files and lock files that are
//! FIFOs, symbolic links, other users' files or open to others are refused
//! with a typed `Error::UnsafeFile`, checked on the opened handle, without
//! blocking, following a link or writing anything.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

mod keyring_common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use keyring_common::t;
use lockbox::keyring::Keyring;
use lockbox::{Error, FileProblem, KeyId, LocalKek};

/// A uid that is not ours (nobody).
const OTHER_UID: u32 = 65_534;

#[track_caller]
fn assert_unsafe<T: std::fmt::Debug>(r: Result<T, Error>, what: &str, path: &Path, problem: FileProblem) {
    match r {
        Err(Error::UnsafeFile {
            what: w,
            path: p,
            problem: got,
            ..
        }) => {
            assert_eq!(
                (w, p.as_str(), got),
                (what, path.display().to_string().as_str(), problem)
            );
        }
        other => panic!(
            "expected UnsafeFile({what}, {problem:?}) for {}, got {other:?}",
            path.display()
        ),
    }
}

/// Runs `f` on another thread; fails if it has not returned within 20 s
/// (then writes to `fifo` to let the blocked thread go).
fn within_deadline<T: Send + 'static>(fifo: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(v) => v,
        Err(_) => {
            // Unblock the reader (an open for writing completes its open).
            let _ = fs::OpenOptions::new().write(true).open(fifo);
            panic!("opening the FIFO {} blocked", fifo.display());
        }
    }
}

fn mkfifo(path: &Path) {
    // A clean environment (PATH only): no key variable reaches the child.
    let mut cmd = std::process::Command::new("mkfifo");
    cmd.env_clear();
    if let Some(p) = std::env::var_os("PATH") {
        cmd.env("PATH", p);
    }
    let st = cmd.arg(path).status().unwrap();
    assert!(st.success());
}

/// `chown`s `path` to another user; false if this process may not (not root).
fn give_away(path: &Path) -> bool {
    match std::os::unix::fs::lchown(path, Some(OTHER_UID), None) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            println!("not root: the other-owner case is not checked");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

fn key_file(dir: &Path, name: &str) -> (LocalKek, PathBuf) {
    let kek = LocalKek::generate().unwrap();
    let p = dir.join(name);
    kek.write_new_file(&p).unwrap();
    (kek, p)
}

fn saved_ring(dir: &Path, master: &LocalKek) -> PathBuf {
    let p = dir.join("ring");
    Keyring::generate(KeyId::new("hostile").unwrap(), t(0))
        .unwrap()
        .save(&p, master)
        .unwrap();
    p
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let p = fifo.clone();
    let r = within_deadline(&fifo, move || LocalKek::from_file(&p));
    assert_unsafe(r, "key file", &fifo, FileProblem::Fifo);
    let p = fifo.clone();
    let master = LocalKek::generate().unwrap();
    let r = within_deadline(&fifo, move || Keyring::load(&p, &master).map(drop));
    assert_unsafe(r, "keyring file", &fifo, FileProblem::Fifo);
    // A FIFO planted as the lock file: refused, not waited on.
    let master = LocalKek::generate().unwrap();
    let ring = saved_ring(dir.path(), &master);
    let lock = dir.path().join("ring.lock");
    fs::remove_file(&lock).unwrap();
    mkfifo(&lock);
    let (p, m) = (ring.clone(), LocalKek::generate().unwrap());
    let r = within_deadline(&lock, move || {
        let mut r = Keyring::generate(KeyId::new("hostile").unwrap(), t(0)).unwrap();
        r.save(&p, &m)
    });
    assert_unsafe(r, "lock file", &lock, FileProblem::Fifo);
}

#[test]
fn symbolic_links_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (kek, real) = key_file(dir.path(), "real.key");
    let link = dir.path().join("link.key");
    symlink(&real, &link).unwrap();
    assert_unsafe(LocalKek::from_file(&link), "key file", &link, FileProblem::Symlink);
    // The resolved path loads.
    let resolved = fs::canonicalize(&link).unwrap();
    assert_eq!(LocalKek::from_file(&resolved).unwrap().key_id(), kek.key_id());

    // A keyring file reached through a link: loading refuses, and so does
    // saving (a rename over the path would replace the link itself).
    let master = LocalKek::generate().unwrap();
    let ring_dir = dir.path().join("rings");
    fs::create_dir(&ring_dir).unwrap();
    let real_ring = saved_ring(&ring_dir, &master);
    let linked = dir.path().join("linked-ring");
    symlink(&real_ring, &linked).unwrap();
    assert_unsafe(
        Keyring::load(&linked, &master).map(drop),
        "keyring file",
        &linked,
        FileProblem::Symlink,
    );
    let mut ring = Keyring::load(&real_ring, &master).unwrap();
    let before = fs::read(&real_ring).unwrap();
    assert_unsafe(
        ring.save(&linked, &master),
        "keyring file",
        &linked,
        FileProblem::Symlink,
    );
    assert_unsafe(
        ring.update(&linked, &master, |r| r.rotate(t(1))),
        "keyring file",
        &linked,
        FileProblem::Symlink,
    );
    assert!(
        fs::symlink_metadata(&linked).unwrap().file_type().is_symlink(),
        "the link is still a link"
    );
    assert_eq!(fs::read(&real_ring).unwrap(), before, "the target is unchanged");
}

#[test]
fn a_planted_lock_link_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let master = LocalKek::generate().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("created-by-lockbox");
    let ring_path = dir.path().join("ring");
    let lock = dir.path().join("ring.lock");
    symlink(&victim, &lock).unwrap();
    let mut ring = Keyring::generate(KeyId::new("hostile").unwrap(), t(0)).unwrap();
    assert_unsafe(ring.save(&ring_path, &master), "lock file", &lock, FileProblem::Symlink);
    assert!(!victim.exists(), "the link's target was created");
    assert!(!ring_path.exists(), "nothing was saved");
    assert_eq!(ring.generation(), 0);
    // A link to an existing file is refused the same way.
    fs::write(&victim, b"not a lock").unwrap();
    assert_unsafe(ring.save(&ring_path, &master), "lock file", &lock, FileProblem::Symlink);
    assert_eq!(fs::read(&victim).unwrap(), b"not a lock");
}

#[test]
fn permissions_and_owners_are_checked_on_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    // A key file open to group or others.
    let (_, key) = key_file(dir.path(), "open.key");
    for mode in [0o640, 0o604, 0o660, 0o602] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        assert_unsafe(
            LocalKek::from_file(&key),
            "key file",
            &key,
            FileProblem::AccessibleByOthers { mode },
        );
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    LocalKek::from_file(&key).unwrap();

    // A keyring file others may write: they could put an older one back.
    let master = LocalKek::generate().unwrap();
    let ring = saved_ring(dir.path(), &master);
    for mode in [0o620, 0o602, 0o666] {
        fs::set_permissions(&ring, fs::Permissions::from_mode(mode)).unwrap();
        assert_unsafe(
            Keyring::load(&ring, &master).map(drop),
            "keyring file",
            &ring,
            FileProblem::WritableByOthers { mode },
        );
    }
    // Readable by others is fine (it is sealed under the master).
    fs::set_permissions(&ring, fs::Permissions::from_mode(0o644)).unwrap();
    let mut loaded = Keyring::load(&ring, &master).unwrap();
    loaded.rotate(t(1)).unwrap();
    loaded.save(&ring, &master).unwrap();
    // A directory is not a keyring file.
    assert_unsafe(
        Keyring::load(dir.path(), &master).map(drop),
        "keyring file",
        dir.path(),
        FileProblem::NotRegular,
    );

    // Another user's files.
    if give_away(&key) {
        assert_unsafe(
            LocalKek::from_file(&key),
            "key file",
            &key,
            FileProblem::OtherOwner {
                owner: OTHER_UID,
                user: 0,
            },
        );
        give_away(&ring);
        assert_unsafe(
            Keyring::load(&ring, &master).map(drop),
            "keyring file",
            &ring,
            FileProblem::OtherOwner {
                owner: OTHER_UID,
                user: 0,
            },
        );
        let lock = dir.path().join("ring.lock");
        std::os::unix::fs::chown(&ring, Some(0), None).unwrap();
        give_away(&lock);
        assert_unsafe(
            loaded.save(&ring, &master),
            "lock file",
            &lock,
            FileProblem::OtherOwner {
                owner: OTHER_UID,
                user: 0,
            },
        );
    }
}
