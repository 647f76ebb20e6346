//! Keyring files: atomic, durable saves under a lock file, with a
//! compare-and-swap on the generation number (`KEYRING.md` §4).
//!
//! Every operation is written once as file steps (lock, read, check, write,
//! adopt) around the master's seal or open, which the sync and the `_async`
//! drivers make (`codec.rs`); the drivers differ only in `.await`. The file
//! I/O is blocking `std::fs` in both.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::codec::{Sealed, peek};
use super::{AuditAction, AuditSink, Keyring, KeyringError};
use crate::error::Error;
use crate::files::{self, KEYRING_FILE, LOCK_FILE};
use crate::keys::KeyId;
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};

/// Largest keyring file read (a full keyring of 65 535 versions is about 3.5 MiB).
const MAX_FILE_LEN: u64 = 16 << 20;

fn io_err(what: String, e: io::Error) -> Error {
    Error::Keyring(KeyringError::Io {
        what,
        source: Some(Box::new(e)),
    })
}

fn not_a_file_path(path: &Path) -> Error {
    io_err(
        format!("{} is not a file path", path.display()),
        io::Error::from(io::ErrorKind::InvalidInput),
    )
}

/// Takes the exclusive lock on `<path>.lock` (created `0600` and never
/// removed: removing a lock file lets two writers hold "the" lock at once),
/// opened hardened (a planted link or another user's file is refused), then
/// removes the temporary files killed writers left (only we write now).
/// Released when the returned file is dropped.
fn lock(path: &Path) -> Result<File, Error> {
    let lock_path = files::sibling(path, "", ".lock").ok_or_else(|| not_a_file_path(path))?;
    let f = files::open_lock_file(&lock_path, &LOCK_FILE).map_err(|e| {
        e.into_error(&lock_path, &LOCK_FILE, |e| {
            io_err(format!("cannot open lock file {}", lock_path.display()), e)
        })
    })?;
    f.lock()
        .map_err(|e| io_err(format!("cannot lock {}", lock_path.display()), e))?;
    files::remove_stale_temporaries(path).map_err(|e| {
        io_err(
            format!("cannot remove the stale temporary files of {}", path.display()),
            e,
        )
    })?;
    Ok(f)
}

/// Reads the file, bounded; `None` if it does not exist. Opened hardened:
/// a link, a FIFO, another user's file or one others may write is refused.
fn read(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let shown = path.display();
    let file = match files::open_existing(path, &KEYRING_FILE) {
        Ok(f) => f,
        Err(files::OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e.into_error(path, &KEYRING_FILE, |e| {
                io_err(format!("cannot open keyring file {shown}"), e)
            }));
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| io_err(format!("cannot stat keyring file {shown}"), e))?;
    if meta.len() > MAX_FILE_LEN {
        return Err(io_err(
            format!("keyring file {shown} is larger than {MAX_FILE_LEN} bytes"),
            io::Error::from(io::ErrorKind::InvalidData),
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_LEN.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io_err(format!("cannot read keyring file {shown}"), e))?;
    if u64::try_from(out.len()).unwrap_or(u64::MAX) > MAX_FILE_LEN {
        return Err(io_err(
            format!("keyring file {shown} is larger than {MAX_FILE_LEN} bytes"),
            io::Error::from(io::ErrorKind::InvalidData),
        ));
    }
    Ok(Some(out))
}

/// Replaces `path` with `bytes` atomically and durably: a new temporary file
/// in the same directory (mode `0600`), write, fsync, rename over `path`,
/// fsync the directory. A crash leaves the old or the new file, never a torn
/// one; a crash before the rename can leave the temporary file behind, which
/// the next writer removes under the lock. A link at `path` is refused (the
/// rename would replace the link, not its target).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    files::refuse_symlink(path, &KEYRING_FILE)?;
    let dir = files::parent(path);
    let tmp = files::temporary_path(path)?.ok_or_else(|| not_a_file_path(path))?;
    let result = (|| {
        let mut f = files::create_new_private(&tmp)
            .map_err(|e| io_err(format!("cannot create a temporary file in {}", dir.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(format!("cannot write {}", tmp.display()), e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| {
            io_err(
                format!("cannot move the new keyring into place at {}", path.display()),
                e,
            )
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    files::sync_dir(dir).map_err(|e| io_err(format!("cannot sync directory {}", dir.display()), e))
}

/// The highest generation this process has seen of each keyring (by id) in
/// each file (by canonical path): loaded, reloaded, saved, or raised by the
/// caller. Every read and write refuses a file below it (`KEYRING.md` §3.4).
static SEEN: Mutex<BTreeMap<(PathBuf, String), u64>> = Mutex::new(BTreeMap::new());

/// The key of `path` in [`SEEN`]: its directory canonicalized (links there
/// resolved), then its file name.
fn seen_key(path: &Path, id: &KeyId) -> Result<(PathBuf, String), Error> {
    let name = path.file_name().ok_or_else(|| not_a_file_path(path))?;
    let dir = files::parent(path);
    let dir = fs::canonicalize(dir).map_err(|e| io_err(format!("cannot resolve directory {}", dir.display()), e))?;
    Ok((dir.join(name), id.as_str().to_string()))
}

fn seen_map() -> std::sync::MutexGuard<'static, BTreeMap<(PathBuf, String), u64>> {
    // A panic elsewhere while holding it cannot leave a map half-updated.
    SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The highest generation of `id` seen at `path` (0: none).
fn seen(path: &Path, id: &KeyId) -> Result<u64, Error> {
    let key = seen_key(path, id)?;
    Ok(seen_map().get(&key).copied().unwrap_or(0))
}

/// Records that `generation` of `id` was seen at `path` (never lowers).
fn record_seen(path: &Path, id: &KeyId, generation: u64) -> Result<(), Error> {
    let key = seen_key(path, id)?;
    let mut map = seen_map();
    let g = map.entry(key).or_insert(0);
    *g = (*g).max(generation);
    Ok(())
}

fn rollback(highest_seen: u64, found: u64) -> KeyringError {
    KeyringError::Rollback { highest_seen, found }
}

/// A file that does not open or parse as a keyring file: `e`, naming the file.
fn rejected(path: &Path, e: Error) -> Error {
    Error::Keyring(KeyringError::FileRejected {
        path: path.display().to_string(),
        source: Box::new(e),
    })
}

fn not_found(path: &Path) -> Error {
    io_err(
        format!("keyring file {} does not exist", path.display()),
        io::Error::from(io::ErrorKind::NotFound),
    )
}

/// The file's bytes; it must exist.
fn read_existing(path: &Path) -> Result<Vec<u8>, Error> {
    read(path)?.ok_or_else(|| not_found(path))
}

/// The generation a file's header claims, unauthenticated.
fn file_generation(path: &Path, bytes: &[u8]) -> Result<(KeyId, u64), Error> {
    peek(bytes).map_err(|e| rejected(path, e))
}

fn id_mismatch(expected: &Keyring, found: KeyId) -> Error {
    Error::Keyring(KeyringError::IdMismatch {
        expected: expected.table.id.clone(),
        found,
    })
}

/// The file steps. Each public operation below is a driver: these steps
/// around one or two calls to the master (sync or async).
impl Keyring {
    /// The lowest generation this copy may build on or adopt from `path`:
    /// its own, or the highest this process has seen there if higher.
    fn floor(&self, path: &Path) -> Result<u64, Error> {
        Ok(self.generation.max(seen(path, &self.table.id)?))
    }

    /// Before a save: takes the lock and checks that the file is still at
    /// this copy's generation, or absent (then there is nothing to lose);
    /// neither may be below the floor (a rollback). Refusals are audited.
    /// Returns the lock, held until the write.
    fn lock_for_save(&self, path: &Path) -> Result<File, Error> {
        let lock = lock(path)?;
        let floor = self.floor(path)?;
        let found = match read(path)? {
            None => None,
            Some(bytes) => {
                let (id, generation) = file_generation(path, &bytes)?;
                if id != self.table.id {
                    return Err(id_mismatch(self, id));
                }
                Some(generation)
            }
        };
        let e = match found {
            Some(g) if g < floor => rollback(floor, g),
            // A stale copy must not rewrite a file that went away.
            None if self.generation < floor => rollback(floor, self.generation),
            Some(g) if g != self.generation => KeyringError::Conflict {
                expected: self.generation,
                found: g,
            },
            _ => return Ok(lock),
        };
        let generation = found.unwrap_or(self.generation);
        self.emit(AuditAction::Save { generation }, None, None, Some(&e));
        Err(Error::Keyring(e))
    }

    /// After the seal: writes the sealed generation (the caller holds the
    /// lock), records it as seen, and adopts it.
    fn write_sealed(&mut self, path: &Path, sealed: Sealed) -> Result<(), Error> {
        write_atomic(path, &sealed.bytes)?;
        record_seen(path, &self.table.id, sealed.generation)?;
        self.adopt_sealed(sealed);
        Ok(())
    }

    /// A keyring loaded from `path`: the file's rejection if it did not
    /// open, a rollback if it is below the highest generation this process
    /// has seen there; else recorded as seen.
    fn loaded(path: &Path, opened: Result<Self, Error>) -> Result<Self, Error> {
        let ring = opened.map_err(|e| rejected(path, e))?;
        let floor = seen(path, &ring.table.id)?;
        if ring.generation < floor {
            return Err(Error::Keyring(rollback(floor, ring.generation)));
        }
        record_seen(path, &ring.table.id, ring.generation)?;
        Ok(ring)
    }

    /// The file's bytes unless it is at this copy's generation and that is
    /// not below the floor (then `None`: unchanged).
    fn changed(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        let bytes = read_existing(path)?;
        let (_, generation) = file_generation(path, &bytes)?;
        let unchanged = generation == self.generation && generation >= self.floor(path)?;
        Ok((!unchanged).then_some(bytes))
    }

    /// `fresh`, loaded from `path`, checked to be this keyring at no lower a
    /// generation than this copy's floor (a rollback is audited), with this
    /// copy's audit sink.
    fn same_keyring(&self, path: &Path, mut fresh: Self) -> Result<Self, Error> {
        if fresh.table.id != self.table.id {
            return Err(id_mismatch(self, fresh.table.id));
        }
        let floor = self.floor(path)?;
        if fresh.generation < floor {
            let e = rollback(floor, fresh.generation);
            let generation = fresh.generation;
            self.emit(AuditAction::Load { generation }, None, None, Some(&e));
            return Err(Error::Keyring(e));
        }
        fresh.audit = self.audit.clone();
        Ok(fresh)
    }

    fn report_load(&self) {
        let generation = self.generation;
        self.emit(AuditAction::Load { generation }, None, None, None);
    }

    /// `fresh` (same id, no rollback) replaces this copy, keeping the audit
    /// sink; reported as a load.
    fn adopt(&mut self, path: &Path, fresh: Result<Self, Error>) -> Result<(), Error> {
        *self = self.same_keyring(path, fresh?)?;
        self.report_load();
        Ok(())
    }

    /// The start of an update: `opened` is the file read under the lock.
    fn updating(&self, path: &Path, opened: Result<Self, Error>) -> Result<Self, Error> {
        self.same_keyring(path, Self::loaded(path, opened)?)
    }

    /// The end of an update: writes `fresh`'s sealed next generation, and
    /// `fresh` becomes this copy.
    fn updated(&mut self, path: &Path, mut fresh: Self, sealed: Sealed) -> Result<(), Error> {
        fresh.write_sealed(path, sealed)?;
        *self = fresh;
        Ok(())
    }

    /// `self` with `sink` installed, reporting the load to it.
    fn audited(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.set_audit_sink(sink);
        self.report_load();
        self
    }
}

/// The file operations, each with its `_async` twin for an async master (a
/// cloud KMS, OpenBao): same file, checks, errors and audit events. The async
/// twins do their file I/O with blocking `std::fs` calls on the polling
/// thread (a small read, or a write and two `fsync`s), and
/// [`save_async`](Keyring::save_async) and [`update_async`](Keyring::update_async)
/// hold the lock file's exclusive lock across the master's `.await`: waiting
/// for that lock blocks the thread while another process holds it, so keep
/// such writers off a single-threaded runtime's only thread (or in
/// `tokio::task::block_in_place`) if they contend.
impl Keyring {
    /// Loads a keyring file sealed under `master`. Nothing is written, so a
    /// corrupted or tampered file stays as it is for inspection. A file that
    /// does not open fails with [`KeyringError::FileRejected`], naming the
    /// file, whose source is the error of
    /// [`from_sealed_bytes`](Self::from_sealed_bytes); I/O failures with
    /// [`KeyringError::Io`]. The file is opened without following a link or
    /// blocking and checked on the handle (a regular file of this user or
    /// root that group and others cannot write), else
    /// [`Error::UnsafeFile`]. A file below the generation this process has
    /// seen there ([`generation_floor`](Self::generation_floor)) fails with
    /// [`KeyringError::Rollback`]; the generation loaded raises the floor.
    pub fn load(path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<Self, Error> {
        let bytes = read_existing(path.as_ref())?;
        Self::loaded(path.as_ref(), Self::from_sealed_bytes(&bytes, master))
    }

    /// [`load`](Self::load) under an async master.
    pub async fn load_async(path: impl AsRef<Path>, master: &dyn AsyncKeyEncryptionProvider) -> Result<Self, Error> {
        let bytes = read_existing(path.as_ref())?;
        Self::loaded(path.as_ref(), Self::from_sealed_bytes_async(&bytes, master).await)
    }

    /// [`load`](Self::load), then sends this and every later event to `sink`.
    pub fn load_with_audit(
        path: impl AsRef<Path>,
        master: &dyn KeyEncryptionProvider,
        sink: Arc<dyn AuditSink>,
    ) -> Result<Self, Error> {
        Ok(Self::load(path, master)?.audited(sink))
    }

    /// [`load_with_audit`](Self::load_with_audit) under an async master.
    pub async fn load_with_audit_async(
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
        sink: Arc<dyn AuditSink>,
    ) -> Result<Self, Error> {
        Ok(Self::load_async(path, master).await?.audited(sink))
    }

    /// Saves the keyring to `path`, sealed under `master` (which may differ
    /// from the master it was loaded with: that is how the master key is
    /// rotated, and only this file changes).
    ///
    /// Under an exclusive lock on `<path>.lock`, it checks that the file is
    /// still at the generation this copy was loaded or last saved at, or
    /// absent (then there is nothing to lose), then writes the next
    /// generation atomically and durably (`KEYRING.md` §4). If another writer saved in
    /// between, nothing is written and it fails with [`KeyringError::Conflict`]:
    /// [`reload`](Self::reload) and reapply, or use [`update`](Self::update).
    /// A file that cannot be read as a keyring file is never overwritten. A
    /// file (or, if it is gone, this copy) below the generation floor fails
    /// with [`KeyringError::Rollback`] (`KEYRING.md` §3.4); a path, or lock
    /// file, that is a link or not this user's fails with
    /// [`Error::UnsafeFile`]. Under the lock, temporary files that killed
    /// writers left are removed first (`KEYRING.md` §3.3).
    pub fn save(&mut self, path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        let _lock = self.lock_for_save(path.as_ref())?;
        let sealed = self.seal_next(master)?;
        self.write_sealed(path.as_ref(), sealed)
    }

    /// [`save`](Self::save) under an async master: `keyring.save_async(path,
    /// &kms).await` seals the keyring under a cloud KMS or OpenBao.
    pub async fn save_async(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<(), Error> {
        let _lock = self.lock_for_save(path.as_ref())?;
        let sealed = self.seal_next_async(master).await?;
        self.write_sealed(path.as_ref(), sealed)
    }

    /// Replaces this copy with the keyring in `path` (same id required),
    /// keeping the audit sink. A file below this copy's generation or the
    /// floor is refused with [`KeyringError::Rollback`], and this copy stays.
    pub fn reload(&mut self, path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        self.adopt(path.as_ref(), Self::load(path.as_ref(), master))
    }

    /// [`reload`](Self::reload) under an async master.
    pub async fn reload_async(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<(), Error> {
        self.adopt(path.as_ref(), Self::load_async(path.as_ref(), master).await)
    }

    /// Reloads from `path` only if the file is at another generation than
    /// this copy (another process saved); returns whether it reloaded. Cheap
    /// when nothing changed (the generation is read from the file's header),
    /// so readers can call it before each batch of work to pick up rotations.
    /// A file rolled back below this copy's generation (or the floor) fails
    /// with [`KeyringError::Rollback`], and this copy stays.
    pub fn reload_if_changed(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn KeyEncryptionProvider,
    ) -> Result<bool, Error> {
        let fresh = match self.changed(path.as_ref())? {
            Some(bytes) => Self::from_sealed_bytes(&bytes, master),
            None => return Ok(false),
        };
        self.adopt(path.as_ref(), Self::loaded(path.as_ref(), fresh))
            .map(|()| true)
    }

    /// [`reload_if_changed`](Self::reload_if_changed) under an async master.
    pub async fn reload_if_changed_async(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<bool, Error> {
        let fresh = match self.changed(path.as_ref())? {
            Some(bytes) => Self::from_sealed_bytes_async(&bytes, master).await,
            None => return Ok(false),
        };
        self.adopt(path.as_ref(), Self::loaded(path.as_ref(), fresh))
            .map(|()| true)
    }

    /// Read-modify-write under the lock, for several processes sharing one
    /// file: takes the lock, loads the file (same id required), applies `f`,
    /// saves the next generation and releases the lock; this copy becomes the
    /// result. No update is lost however many processes do this at once. If
    /// `f` fails, nothing is written and this copy is unchanged. A file below
    /// this copy's generation or the floor is a rollback, never built on
    /// ([`KeyringError::Rollback`], nothing written).
    pub fn update<T>(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn KeyEncryptionProvider,
        f: impl FnOnce(&mut Keyring) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (path, _lock) = (path.as_ref(), lock(path.as_ref())?);
        let bytes = read_existing(path)?;
        let mut fresh = self.updating(path, Self::from_sealed_bytes(&bytes, master))?;
        let out = f(&mut fresh)?;
        let sealed = fresh.seal_next(master)?;
        self.updated(path, fresh, sealed).map(|()| out)
    }

    /// [`update`](Self::update) under an async master. `f` itself is sync,
    /// and `Send` so that the future is (it is held across the master's
    /// calls, as is the lock).
    pub async fn update_async<T>(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
        f: impl FnOnce(&mut Keyring) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        let (path, _lock) = (path.as_ref(), lock(path.as_ref())?);
        let bytes = read_existing(path)?;
        let mut fresh = self.updating(path, Self::from_sealed_bytes_async(&bytes, master).await)?;
        let out = f(&mut fresh)?;
        let sealed = fresh.seal_next_async(master).await?;
        self.updated(path, fresh, sealed).map(|()| out)
    }

    /// The generation floor of keyring `id` at `path`: the highest
    /// generation this process has seen there (loaded, reloaded, saved, or
    /// raised with [`raise_generation_floor`](Self::raise_generation_floor)),
    /// or `None`. Every load, reload, save and update of `path` refuses a
    /// file below it with [`KeyringError::Rollback`] (`KEYRING.md` §3.4).
    /// Store it (after each load or save) where whoever can write the
    /// keyring file cannot, to raise the floor again after a restart.
    pub fn generation_floor(path: impl AsRef<Path>, id: &KeyId) -> Result<Option<u64>, Error> {
        let g = seen(path.as_ref(), id)?;
        Ok((g > 0).then_some(g))
    }

    /// Raises the generation floor of keyring `id` at `path` to
    /// `generation` (a floor is never lowered): call it after a restart,
    /// before the first load, with the value stored from
    /// [`generation_floor`](Self::generation_floor) or
    /// [`generation`](Self::generation), so that a file rolled back while
    /// the process was down is refused too. The path's directory must exist
    /// (floors are kept by its canonical path).
    ///
    /// ```
    /// # fn main() -> Result<(), lockbox::Error> {
    /// use lockbox::keyring::{Keyring, KeyringError, UnixTime};
    /// use lockbox::{Error, KeyId, LocalKek};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("payments.keyring");
    /// # let master = LocalKek::generate()?;
    /// # let id = KeyId::new("payments")?;
    /// # let mut ring = Keyring::generate(id.clone(), UnixTime(0))?;
    /// # ring.save(&path, &master)?;
    /// # let old = std::fs::read(&path).unwrap();
    /// # ring.rotate(UnixTime(1))?;
    /// # ring.save(&path, &master)?;
    /// # let stored = ring.generation();
    /// # let restarted = tempfile::tempdir().unwrap();
    /// # let path = restarted.path().join("payments.keyring");
    /// # std::fs::write(&path, &old).unwrap();
    /// // At start-up: the generation stored before the restart (say 2).
    /// Keyring::raise_generation_floor(&path, &id, stored)?;
    /// // Someone put generation 1 back while the process was down.
    /// match Keyring::load(&path, &master) {
    ///     Err(Error::Keyring(KeyringError::Rollback { highest_seen: 2, found: 1 })) => {}
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn raise_generation_floor(path: impl AsRef<Path>, id: &KeyId, generation: u64) -> Result<(), Error> {
        record_seen(path.as_ref(), id, generation)
    }
}
