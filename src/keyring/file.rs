//! Keyring files: atomic, durable saves under a lock file, with a
//! compare-and-swap on the generation number (`KEYRING.md` §4).
//!
//! Every operation is written once as file steps (lock, read, check, write,
//! adopt) around the master's seal or open, which the sync and the `_async`
//! drivers make (`codec.rs`); the drivers differ only in `.await`. The file
//! I/O is blocking `std::fs` in both.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::codec::{Sealed, peek};
use super::{AuditAction, AuditSink, Keyring, KeyringError};
use crate::error::Error;
use crate::keys::os_random;
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};

/// Largest keyring file read (a full keyring of 65 535 versions is about 3.5 MiB).
const MAX_FILE_LEN: u64 = 16 << 20;

fn io_err(what: String, e: io::Error) -> Error {
    Error::Keyring(KeyringError::Io {
        what,
        source: Some(Box::new(e)),
    })
}

fn owner_only(opts: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = opts;
}

fn with_suffix(path: &Path, prefix: &str, suffix: &str) -> Result<PathBuf, Error> {
    let name = path.file_name().ok_or_else(|| {
        io_err(
            format!("{} is not a file path", path.display()),
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    })?;
    let mut n = OsString::from(prefix);
    n.push(name);
    n.push(suffix);
    Ok(path.with_file_name(n))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Takes the exclusive lock on `<path>.lock` (created `0600` and never
/// removed: removing a lock file lets two writers hold "the" lock at once).
/// Released when the returned file is dropped.
fn lock(path: &Path) -> Result<File, Error> {
    let lock_path = with_suffix(path, "", ".lock")?;
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    owner_only(&mut opts);
    let f = opts
        .open(&lock_path)
        .map_err(|e| io_err(format!("cannot open lock file {}", lock_path.display()), e))?;
    f.lock()
        .map_err(|e| io_err(format!("cannot lock {}", lock_path.display()), e))?;
    Ok(f)
}

/// Reads the file, bounded; `None` if it does not exist.
fn read(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let shown = path.display();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(format!("cannot open keyring file {shown}"), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_err(format!("cannot stat keyring file {shown}"), e))?;
    if !meta.is_file() {
        return Err(io_err(
            format!("keyring file {shown} is not a regular file"),
            io::Error::from(io::ErrorKind::InvalidInput),
        ));
    }
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
/// one (a crash before the rename can leave the temporary file behind).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = parent(path);
    let mut suffix = [0u8; 8];
    os_random(&mut suffix)?;
    let tmp = with_suffix(path, ".", &format!(".tmp-{:016x}", u64::from_be_bytes(suffix)))?;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    owner_only(&mut opts);
    let result = (|| {
        let mut f = opts
            .open(&tmp)
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
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(format!("cannot sync directory {}", dir.display()), e))?;
    Ok(())
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
fn file_generation(path: &Path, bytes: &[u8]) -> Result<(crate::keys::KeyId, u64), Error> {
    peek(bytes).map_err(|e| rejected(path, e))
}

fn id_mismatch(expected: &Keyring, found: crate::keys::KeyId) -> Error {
    Error::Keyring(KeyringError::IdMismatch {
        expected: expected.table.id.clone(),
        found,
    })
}

/// The file steps. Each public operation below is a driver: these steps
/// around one or two calls to the master (sync or async).
impl Keyring {
    /// Before a save: takes the lock and checks that the file is absent or
    /// still at this copy's generation (a conflict is audited). Returns the
    /// lock, held until the write.
    fn lock_for_save(&self, path: &Path) -> Result<File, Error> {
        let lock = lock(path)?;
        // No file: nothing can be lost by writing one.
        let found = match read(path)? {
            None => self.generation,
            Some(bytes) => {
                let (id, generation) = file_generation(path, &bytes)?;
                if id != self.table.id {
                    return Err(id_mismatch(self, id));
                }
                generation
            }
        };
        if found != self.generation {
            let e = KeyringError::Conflict {
                expected: self.generation,
                found,
            };
            self.emit(AuditAction::Save { generation: found }, None, None, Some(&e));
            return Err(Error::Keyring(e));
        }
        Ok(lock)
    }

    /// After the seal: writes the sealed generation (the caller holds the
    /// lock) and adopts it.
    fn write_sealed(&mut self, path: &Path, sealed: Sealed) -> Result<(), Error> {
        write_atomic(path, &sealed.bytes)?;
        self.adopt_sealed(sealed);
        Ok(())
    }

    /// A loaded keyring, or the file's rejection.
    fn loaded(path: &Path, opened: Result<Self, Error>) -> Result<Self, Error> {
        opened.map_err(|e| rejected(path, e))
    }

    /// The file's bytes if its header claims another generation than this
    /// copy's; `None` if it is unchanged.
    fn changed(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        let bytes = read_existing(path)?;
        let (_, generation) = file_generation(path, &bytes)?;
        Ok((generation != self.generation).then_some(bytes))
    }

    /// `fresh`, checked to be this keyring, with this copy's audit sink.
    fn same_keyring(&self, mut fresh: Self) -> Result<Self, Error> {
        if fresh.table.id != self.table.id {
            return Err(id_mismatch(self, fresh.table.id));
        }
        fresh.audit = self.audit.clone();
        Ok(fresh)
    }

    fn report_load(&self) {
        let generation = self.generation;
        self.emit(AuditAction::Load { generation }, None, None, None);
    }

    /// `fresh` (same id required) replaces this copy, keeping the audit sink;
    /// reported as a load.
    fn adopt(&mut self, fresh: Result<Self, Error>) -> Result<(), Error> {
        *self = self.same_keyring(fresh?)?;
        self.report_load();
        Ok(())
    }

    /// The start of an update: `opened` is the file read under the lock.
    fn updating(&self, path: &Path, opened: Result<Self, Error>) -> Result<Self, Error> {
        self.same_keyring(Self::loaded(path, opened)?)
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
    /// [`KeyringError::Io`].
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
    /// A file that cannot be read as a keyring file is never overwritten.
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
    /// keeping the audit sink.
    pub fn reload(&mut self, path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        self.adopt(Self::load(path, master))
    }

    /// [`reload`](Self::reload) under an async master.
    pub async fn reload_async(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<(), Error> {
        self.adopt(Self::load_async(path, master).await)
    }

    /// Reloads from `path` only if the file is at another generation than
    /// this copy (another process saved); returns whether it reloaded. Cheap
    /// when nothing changed (the generation is read from the file's header),
    /// so readers can call it before each batch of work to pick up rotations.
    pub fn reload_if_changed(
        &mut self,
        path: impl AsRef<Path>,
        master: &dyn KeyEncryptionProvider,
    ) -> Result<bool, Error> {
        let fresh = match self.changed(path.as_ref())? {
            Some(bytes) => Self::from_sealed_bytes(&bytes, master),
            None => return Ok(false),
        };
        self.adopt(Self::loaded(path.as_ref(), fresh)).map(|()| true)
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
        self.adopt(Self::loaded(path.as_ref(), fresh)).map(|()| true)
    }

    /// Read-modify-write under the lock, for several processes sharing one
    /// file: takes the lock, loads the file (same id required), applies `f`,
    /// saves the next generation and releases the lock; this copy becomes the
    /// result. No update is lost however many processes do this at once. If
    /// `f` fails, nothing is written and this copy is unchanged.
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
}
