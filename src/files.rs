//! Hardened file access, written once for every file lockbox opens or writes:
//! [`LocalKek`](crate::LocalKek) key files, keyring files and their lock
//! files (and, crate-internally, any other secret file such as an identity
//! file: use [`open_existing`] with your own [`Rules`]).
//!
//! - **No following, no blocking.** Files are opened with `O_NOFOLLOW` (a
//!   symbolic link in the last path component is refused, not followed),
//!   `O_NONBLOCK` (opening a FIFO returns at once instead of waiting for a
//!   writer) and `O_CLOEXEC`.
//! - **Checked on the handle.** Type, owner and mode come from `fstat` of the
//!   opened file (`File::metadata`), never from the path, so the file checked
//!   is the file read: regular files only, owned by the process's effective
//!   user or root, and none of the [`Rules`]' forbidden mode bits.
//! - **Each refusal is typed**: [`Error::UnsafeFile`] with a [`FileProblem`].
//! - **Writes** go to a new temporary file (`.<name>.tmp-<16 hex digits>`,
//!   `O_CREAT | O_EXCL`, mode `0600`) in the same directory, which is synced
//!   and renamed over the target; the directory is synced after. Stale
//!   temporaries of that pattern are removed by [`remove_stale_temporaries`]
//!   (only under the writer's lock).
//!
//! On platforms without these flags (not Unix) the checks that exist there
//! are made (`symlink_metadata` before opening, regular file after); owner and
//! mode are Unix notions.

use alloc::string::ToString;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, FileProblem};
use crate::keys::os_random;

/// What a file must be, beyond being a regular file that is not a link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// What the file is, for errors ("key file").
    pub(crate) what: &'static str,
    /// Unix permission bits that must be clear: `0o077` for a secret that
    /// only its owner may read, `0o022` for a file only its owner may write.
    pub(crate) forbidden_mode: u32,
    /// Whether the file must belong to the effective user (or root).
    pub(crate) owned: bool,
}

/// A local KEK file: a secret, owner-only (`0600` or stricter).
pub(crate) const KEY_FILE: Rules = Rules {
    what: "key file",
    forbidden_mode: 0o077,
    owned: true,
};

/// A keyring file: sealed under its master, but whoever can write it can put
/// an older generation back, so only its owner may write it.
pub(crate) const KEYRING_FILE: Rules = Rules {
    what: "keyring file",
    forbidden_mode: 0o022,
    owned: true,
};

/// A keyring's lock file: a regular file of ours (never a link to follow
/// into creating a file elsewhere).
pub(crate) const LOCK_FILE: Rules = Rules {
    what: "lock file",
    forbidden_mode: 0o022,
    owned: true,
};

/// Why opening failed: an I/O error (the caller words it), or a refusal.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The operating system's error.
    Io(io::Error),
    /// The file is not one lockbox may use.
    Unsafe(FileProblem),
}

impl OpenError {
    /// An [`Error::UnsafeFile`] for a refusal, else `io` applied to the error.
    pub(crate) fn into_error(self, path: &Path, rules: &Rules, io: impl FnOnce(io::Error) -> Error) -> Error {
        match self {
            Self::Io(e) => io(e),
            Self::Unsafe(problem) => unsafe_file(path, rules, problem),
        }
    }
}

/// The typed refusal of `path`.
pub(crate) fn unsafe_file(path: &Path, rules: &Rules, problem: FileProblem) -> Error {
    Error::UnsafeFile {
        what: rules.what,
        path: path.display().to_string(),
        problem,
    }
}

/// The flags every open adds: no following a final symlink, no blocking on
/// a FIFO, closed on exec.
fn harden(opts: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    #[cfg(not(unix))]
    let _ = opts;
}

/// New files: owner-only.
fn owner_only(opts: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = opts;
}

/// Whether `path` itself (not what it points to) is a symbolic link.
fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// An open that failed: a refusal if the path is a link (`O_NOFOLLOW` fails
/// with `ELOOP`, or `EMLINK` on some BSDs), else the I/O error.
fn open_failed(path: &Path, e: io::Error) -> OpenError {
    if e.kind() != io::ErrorKind::NotFound && is_symlink(path) {
        OpenError::Unsafe(FileProblem::Symlink)
    } else {
        OpenError::Io(e)
    }
}

/// The process's effective user id.
#[cfg(unix)]
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks what `file` is, on the handle.
fn check(file: &File, rules: &Rules) -> Result<(), OpenError> {
    let meta = file.metadata().map_err(OpenError::Io)?;
    let kind = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        if kind.is_fifo() {
            return Err(OpenError::Unsafe(FileProblem::Fifo));
        }
        if !kind.is_file() {
            return Err(OpenError::Unsafe(FileProblem::NotRegular));
        }
        let user = effective_uid();
        if rules.owned && meta.uid() != user && meta.uid() != 0 {
            return Err(OpenError::Unsafe(FileProblem::OtherOwner {
                owner: meta.uid(),
                user,
            }));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & rules.forbidden_mode != 0 {
            return Err(OpenError::Unsafe(if rules.forbidden_mode & 0o044 != 0 {
                FileProblem::AccessibleByOthers { mode }
            } else {
                FileProblem::WritableByOthers { mode }
            }));
        }
    }
    #[cfg(not(unix))]
    {
        let _ = rules;
        if kind.is_symlink() {
            return Err(OpenError::Unsafe(FileProblem::Symlink));
        }
        if !kind.is_file() {
            return Err(OpenError::Unsafe(FileProblem::NotRegular));
        }
    }
    Ok(())
}

/// Opens `opts` at `path` hardened, and checks the handle.
fn open_checked(path: &Path, opts: &mut OpenOptions, rules: &Rules) -> Result<File, OpenError> {
    harden(opts);
    #[cfg(not(unix))]
    if is_symlink(path) {
        return Err(OpenError::Unsafe(FileProblem::Symlink));
    }
    let file = opts.open(path).map_err(|e| open_failed(path, e))?;
    check(&file, rules)?;
    Ok(file)
}

/// Opens an existing file for reading, checked against `rules`. A missing
/// file is `OpenError::Io` with kind `NotFound`.
pub(crate) fn open_existing(path: &Path, rules: &Rules) -> Result<File, OpenError> {
    open_checked(path, OpenOptions::new().read(true), rules)
}

/// Opens (creating it, owner-only, if missing) a lock file for reading and
/// writing, checked against `rules`. A planted link is refused, never
/// followed into creating a file at its target.
pub(crate) fn open_lock_file(path: &Path, rules: &Rules) -> Result<File, OpenError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    owner_only(&mut opts);
    open_checked(path, &mut opts, rules)
}

/// Refuses to replace `path` if it is a symbolic link: a rename over it
/// would replace the link, not the file the caller meant.
pub(crate) fn refuse_symlink(path: &Path, rules: &Rules) -> Result<(), Error> {
    if is_symlink(path) {
        return Err(unsafe_file(path, rules, FileProblem::Symlink));
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `prefix || file name of path || suffix`, in the same directory; `None` if
/// `path` has no file name.
pub(crate) fn sibling(path: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut n = OsString::from(prefix);
    n.push(name);
    n.push(suffix);
    Some(path.with_file_name(n))
}

/// Marks the temporary files of writes to a target: `.<name>.tmp-`.
const TEMP_INFIX: &str = ".tmp-";
/// Hex digits of the random part of a temporary name.
const TEMP_RANDOM_DIGITS: usize = 16;

/// A fresh temporary path next to `path`: `.<name>.tmp-<16 hex digits>`.
pub(crate) fn temporary_path(path: &Path) -> Result<Option<PathBuf>, Error> {
    let mut random = [0u8; 8];
    os_random(&mut random)?;
    let suffix = format!("{TEMP_INFIX}{:016x}", u64::from_be_bytes(random));
    Ok(sibling(path, ".", &suffix))
}

/// Whether `candidate` is a temporary name of `target` exactly as
/// [`temporary_path`] makes them (lowercase hex digits only).
fn is_temporary_of(candidate: &std::ffi::OsStr, target: &std::ffi::OsStr) -> bool {
    let (Some(candidate), Some(target)) = (candidate.to_str(), target.to_str()) else {
        return false;
    };
    candidate
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(target))
        .and_then(|rest| rest.strip_prefix(TEMP_INFIX))
        .is_some_and(|digits| {
            digits.len() == TEMP_RANDOM_DIGITS && digits.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Creates a new owner-only file (`O_CREAT | O_EXCL`: never an existing
/// file or a link) for writing.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    owner_only(&mut opts);
    harden(&mut opts);
    opts.open(path)
}

/// Syncs a directory, so that a rename or link in it is durable (Unix;
/// elsewhere a no-op).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all())?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes the temporary files that writes to `path` left behind (a writer
/// killed between creating its temporary file and renaming it): only names
/// of exactly `temporary_path`'s pattern, only regular files (not links)
/// owned by this user. Call it only while holding the writers' lock: then
/// no live writer has a temporary file. Returns how many were removed.
pub(crate) fn remove_stale_temporaries(path: &Path) -> io::Result<usize> {
    let Some(target) = path.file_name() else {
        return Ok(0);
    };
    let mut removed = 0usize;
    for entry in fs::read_dir(parent(path))? {
        let entry = entry?;
        if !is_temporary_of(&entry.file_name(), target) {
            continue;
        }
        // The entry itself, not what a link points to.
        let meta = match fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_file() {
            continue;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if meta.uid() != effective_uid() {
                continue;
            }
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed = removed.saturating_add(1),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_temporary_names_match() {
        let t = std::ffi::OsStr::new("ring");
        let yes = |s: &str| is_temporary_of(std::ffi::OsStr::new(s), t);
        assert!(yes(".ring.tmp-0123456789abcdef"));
        assert!(!yes(".ring.tmp-0123456789ABCDEF"));
        assert!(!yes(".ring.tmp-0123456789abcde"));
        assert!(!yes(".ring.tmp-0123456789abcdef0"));
        assert!(!yes("ring.tmp-0123456789abcdef"));
        assert!(!yes(".ring2.tmp-0123456789abcdef"));
        assert!(!yes(".ring.tmp-0123456789abcdeg"));
        assert!(!yes("ring"));
        assert!(!yes("ring.lock"));
    }
}
