//! Keyring files: atomic, durable saves under a lock file, with a
//! compare-and-swap on the generation number (`KEYRING.md` §4).

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::codec::peek;
use super::{AuditAction, AuditSink, Keyring, KeyringError};
use crate::error::Error;
use crate::keys::os_random;
use crate::provider::KeyEncryptionProvider;

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

/// Opens file bytes, naming the file in the error.
fn open_file(path: &Path, bytes: &[u8], master: &dyn KeyEncryptionProvider) -> Result<Keyring, Error> {
    Keyring::from_sealed_bytes(bytes, master).map_err(|e| {
        Error::Keyring(KeyringError::FileRejected {
            path: path.display().to_string(),
            source: Box::new(e),
        })
    })
}

fn not_found(path: &Path) -> Error {
    io_err(
        format!("keyring file {} does not exist", path.display()),
        io::Error::from(io::ErrorKind::NotFound),
    )
}

impl Keyring {
    /// Loads a keyring file sealed under `master`. Nothing is written, so a
    /// corrupted or tampered file stays as it is for inspection. A file that
    /// does not open fails with [`KeyringError::FileRejected`], naming the
    /// file, whose source is the error of
    /// [`from_sealed_bytes`](Self::from_sealed_bytes); I/O failures with
    /// [`KeyringError::Io`].
    pub fn load(path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = read(path)?.ok_or_else(|| not_found(path))?;
        open_file(path, &bytes, master)
    }

    /// [`load`](Self::load), then sends this and every later event to `sink`.
    pub fn load_with_audit(
        path: impl AsRef<Path>,
        master: &dyn KeyEncryptionProvider,
        sink: Arc<dyn AuditSink>,
    ) -> Result<Self, Error> {
        let mut ring = Self::load(path, master)?;
        ring.set_audit_sink(sink);
        ring.emit(
            AuditAction::Load {
                generation: ring.generation,
            },
            None,
            None,
            None,
        );
        Ok(ring)
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
        let path = path.as_ref();
        let _lock = lock(path)?;
        // No file: nothing can be lost by writing one.
        let found = match read(path)? {
            None => self.generation,
            Some(bytes) => {
                let (id, generation) = peek(&bytes).map_err(|e| {
                    Error::Keyring(KeyringError::FileRejected {
                        path: path.display().to_string(),
                        source: Box::new(e),
                    })
                })?;
                if id != self.table.id {
                    return Err(Error::Keyring(KeyringError::IdMismatch {
                        expected: self.table.id.clone(),
                        found: id,
                    }));
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
        self.write_next(path, master)
    }

    /// Seals the next generation and writes it; the caller holds the lock.
    fn write_next(&mut self, path: &Path, master: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        let generation = self.generation.checked_add(1).ok_or(Error::InvalidArgument {
            what: "keyring generation exhausted",
        })?;
        let bytes = self.seal_generation(master, generation)?;
        write_atomic(path, &bytes)?;
        self.generation = generation;
        self.emit(AuditAction::Save { generation }, None, None, None);
        Ok(())
    }

    /// Replaces this copy with the keyring in `path` (same id required),
    /// keeping the audit sink.
    pub fn reload(&mut self, path: impl AsRef<Path>, master: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        let fresh = Self::load(path, master)?;
        self.adopt(fresh)
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
        let path = path.as_ref();
        let bytes = read(path)?.ok_or_else(|| not_found(path))?;
        let (_, generation) = peek(&bytes).map_err(|e| {
            Error::Keyring(KeyringError::FileRejected {
                path: path.display().to_string(),
                source: Box::new(e),
            })
        })?;
        if generation == self.generation {
            return Ok(false);
        }
        let fresh = open_file(path, &bytes, master)?;
        self.adopt(fresh)?;
        Ok(true)
    }

    fn adopt(&mut self, mut fresh: Self) -> Result<(), Error> {
        if fresh.table.id != self.table.id {
            return Err(Error::Keyring(KeyringError::IdMismatch {
                expected: self.table.id.clone(),
                found: fresh.table.id,
            }));
        }
        fresh.audit = self.audit.clone();
        *self = fresh;
        self.emit(
            AuditAction::Load {
                generation: self.generation,
            },
            None,
            None,
            None,
        );
        Ok(())
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
        let path = path.as_ref();
        let _lock = lock(path)?;
        let bytes = read(path)?.ok_or_else(|| not_found(path))?;
        let mut fresh = open_file(path, &bytes, master)?;
        if fresh.table.id != self.table.id {
            return Err(Error::Keyring(KeyringError::IdMismatch {
                expected: self.table.id.clone(),
                found: fresh.table.id,
            }));
        }
        fresh.audit = self.audit.clone();
        let out = f(&mut fresh)?;
        fresh.write_next(path, master)?;
        *self = fresh;
        Ok(out)
    }
}
