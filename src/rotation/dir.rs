//! A directory tree as a [`Store`]: one envelope per regular file, keyed by
//! its path relative to the root.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use super::store::{Fetched, ObjectMeta, Store, StoreError, StoreErrorKind, VersionToken};

/// Names starting with this are the engine's own (temporary files, job logs)
/// and are never listed.
pub const RESERVED_PREFIX: &str = ".lockbox-";

/// A local directory tree of envelopes: every regular file under the root
/// (recursively; symbolic links are not followed, names starting with
/// [`RESERVED_PREFIX`] are skipped) is one object, keyed by its relative
/// path with `/` separators.
///
/// **Writes** are atomic per file: the new envelope is written to a
/// temporary file in the same directory, synced, given the old file's
/// permissions, renamed over the old one, and the directory is synced.
/// A crash (even `SIGKILL` or power loss after the sync) leaves the old or
/// the new envelope, never a torn one.
///
/// **Write-if-unchanged** compares a [`VersionToken`] made of the file's
/// device, inode, size, modification time and status-change time (ctime, in
/// nanoseconds). Any write to the file changes its mtime and ctime (ctime
/// cannot be set back by a non-root process), and an atomic replacement by
/// anyone changes the inode, so a changed file is caught. The token is
/// checked when the original is opened (its remaining bytes are copied from
/// that same open file, so what is kept is what was checked) and again just
/// before the rename. POSIX has no compare-and-swap rename: a writer that
/// replaces the file in the microseconds between that last check and the
/// rename can still be lost. Writers that must never race the engine should
/// write through the same store (or stop during the migration).
///
/// Listing is in lexicographic order of keys and holds one directory's
/// entries at a time: memory grows with the largest directory, not with the
/// tree (shard big trees into subdirectories, as git's object store does).
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
    sync: bool,
}

impl DirStore {
    /// A store over the tree under `root` (which must exist).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            sync: true,
        }
    }

    /// Skips the `fsync` of each new file and of its directory. Replacement
    /// stays atomic for readers and survives a killed process (the rename
    /// is atomic and the kernel keeps the data), but after a power loss or
    /// kernel crash a file may come back empty or old. For scratch copies
    /// and benchmarks of the engine itself; the default syncs.
    #[must_use]
    pub fn without_fsync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`, refusing keys that leave the root.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        let ok = !key.is_empty()
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(n) if !n.to_string_lossy().starts_with(RESERVED_PREFIX)));
        if !ok {
            return Err(StoreError::new(StoreErrorKind::Other, key).with_source("invalid key for a directory store"));
        }
        Ok(self.root.join(rel))
    }

    /// Appends up to `limit - out.len()` keys under `dir` (key prefix
    /// `prefix`) sorting after `after`, in order.
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        out: &mut Vec<ObjectMeta>,
    ) -> Result<(), StoreError> {
        let listing_error = |e: io::Error| io_error(prefix, e);
        let mut entries: Vec<(String, bool, u64)> = Vec::new();
        for e in fs::read_dir(dir).map_err(listing_error)? {
            let e = e.map_err(listing_error)?;
            let Ok(name) = e.file_name().into_string() else {
                continue; // not UTF-8: not addressable by a key
            };
            if name.starts_with(RESERVED_PREFIX) {
                continue;
            }
            let ft = e.file_type().map_err(listing_error)?;
            if ft.is_dir() {
                // A directory sorts as its name plus `/`, so the walk visits
                // keys in the lexicographic order of their full paths.
                entries.push(([name.as_str(), "/"].concat(), true, 0));
            } else if ft.is_file() {
                let size = e.metadata().map_err(listing_error)?.len();
                entries.push((name, false, size));
            }
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, is_dir, size) in entries {
            if out.len() >= limit {
                return Ok(());
            }
            let key = [prefix, name.as_str()].concat();
            if is_dir {
                // Skip a subtree whose keys all sort before `after`.
                if let Some(a) = after
                    && !a.starts_with(&key)
                    && key.as_str() < a
                {
                    continue;
                }
                let sub = dir.join(name.trim_end_matches('/'));
                self.walk(&sub, &key, after, limit, out)?;
            } else if after.is_none_or(|a| key.as_str() > a) {
                out.push(ObjectMeta { key, size });
            }
        }
        Ok(())
    }

    /// Writes `fill`'s output to a temporary file beside `key`'s file and
    /// renames it over the file if the file is still at `expected`.
    fn replace(
        &self,
        key: &str,
        expected: &VersionToken,
        fill: impl FnOnce(&mut File, &mut File) -> io::Result<()>,
    ) -> Result<VersionToken, StoreError> {
        let path = self.path(key)?;
        let err = |e: io::Error| io_error(key, e);
        let mut original = File::open(&path).map_err(err)?;
        let meta = original.metadata().map_err(err)?;
        if token(&meta) != *expected {
            return Err(StoreError::new(StoreErrorKind::Conflict, key));
        }
        let dir = path.parent().unwrap_or(&self.root);
        let mut suffix = [0u8; 8];
        crate::keys::os_random(&mut suffix)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, key).with_source(e.to_string()))?;
        let tmp = dir.join(format!("{RESERVED_PREFIX}tmp-{}", hex8(&suffix)));
        let mut new = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(err)?;
        let written = (|| {
            fill(&mut original, &mut new)?;
            new.set_permissions(meta.permissions())?;
            if self.sync {
                new.sync_all()?;
            }
            // Checked again just before the rename (see the type's docs).
            let now = fs::symlink_metadata(&path)?;
            if token(&now) != *expected {
                return Err(io::Error::other(Conflict));
            }
            fs::rename(&tmp, &path)?;
            if self.sync {
                sync_dir(dir)?;
            }
            new.metadata()
        })();
        match written {
            Ok(_) => {
                let m = fs::symlink_metadata(&path).map_err(err)?;
                Ok(token(&m))
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if e.get_ref().is_some_and(|inner| inner.is::<Conflict>()) {
                    Err(StoreError::new(StoreErrorKind::Conflict, key))
                } else {
                    Err(err(e))
                }
            }
        }
    }
}

#[derive(Debug)]
struct Conflict;
impl core::fmt::Display for Conflict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("modified concurrently")
    }
}
impl std::error::Error for Conflict {}

fn hex8(b: &[u8; 8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn io_error(key: &str, e: io::Error) -> StoreError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => StoreErrorKind::Transient,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, key).with_source(e)
}

#[cfg(unix)]
fn token(m: &fs::Metadata) -> VersionToken {
    use std::os::unix::fs::MetadataExt;
    VersionToken::new(format!(
        "{:x}:{:x}:{}:{}.{:09}:{}.{:09}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn token(m: &fs::Metadata) -> VersionToken {
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    VersionToken::new(format!("{}:{}", m.len(), modified))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

impl Store for DirStore {
    fn list_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        self.walk(&self.root, "", after, limit, &mut out)?;
        Ok(out)
    }

    fn read_prefix(&self, key: &str, len: u64) -> Result<Fetched, StoreError> {
        let err = |e: io::Error| io_error(key, e);
        let f = File::open(self.path(key)?).map_err(err)?;
        let meta = f.metadata().map_err(err)?;
        let mut bytes = Vec::new();
        f.take(len).read_to_end(&mut bytes).map_err(err)?;
        Ok(Fetched {
            bytes,
            size: meta.len(),
            version: token(&meta),
        })
    }

    fn read(&self, key: &str) -> Result<Fetched, StoreError> {
        let err = |e: io::Error| io_error(key, e);
        let mut f = File::open(self.path(key)?).map_err(err)?;
        let meta = f.metadata().map_err(err)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(err)?;
        Ok(Fetched {
            bytes,
            size: meta.len(),
            version: token(&meta),
        })
    }

    fn replace_header(
        &self,
        key: &str,
        expected: &VersionToken,
        old_header_len: u64,
        new_header: &[u8],
    ) -> Result<VersionToken, StoreError> {
        self.replace(key, expected, |original, new| {
            new.write_all(new_header)?;
            original.seek(SeekFrom::Start(old_header_len))?;
            io::copy(original, new)?;
            Ok(())
        })
    }

    fn write_if_unchanged(&self, key: &str, expected: &VersionToken, bytes: &[u8]) -> Result<VersionToken, StoreError> {
        self.replace(key, expected, |_, new| new.write_all(bytes))
    }
}
