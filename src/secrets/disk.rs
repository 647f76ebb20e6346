//! Secrets files on disk, through the hardened helpers of
//! [`files`](crate::files): no link followed, no FIFO waited on, checked on
//! the handle (a regular file of this user or root that group and others
//! cannot write: whoever can write it can put an older version back); reads
//! bounded; writes atomic (temporary file, fsync, rename, fsync of the
//! directory) with a check that the file did not change since it was read.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::doc::MAX_FILE_LEN;
use super::error::SecretsError;
use crate::error::Error;
use crate::files::{self, Rules};

/// A secrets file: not secret (every value is encrypted) but authenticated,
/// so only its owner may write it.
const SECRETS_FILE: Rules = Rules {
    what: "secrets file",
    forbidden_mode: 0o022,
    owned: true,
};

/// Where a file was read from and what it was then.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) path: PathBuf,
    token: Token,
}

/// Device, inode, size, modification and status-change times: any write
/// or replacement changes one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token([u64; 5]);

fn token(meta: &fs::Metadata) -> Token {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| {
            u64::try_from(s)
                .unwrap_or(0)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::try_from(n).unwrap_or(0))
        };
        Token([
            meta.dev(),
            meta.ino(),
            meta.size(),
            ns(meta.mtime(), meta.mtime_nsec()),
            ns(meta.ctime(), meta.ctime_nsec()),
        ])
    }
    #[cfg(not(unix))]
    {
        let m = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Token([0, 0, meta.len(), m, 0])
    }
}

fn io_err(what: String, e: io::Error) -> Error {
    SecretsError::Io {
        what,
        source: Some(alloc::boxed::Box::new(e)),
    }
    .into()
}

/// Reads the file at `path` (hardened, at most [`MAX_FILE_LEN`] bytes).
pub(crate) fn read(path: &Path) -> Result<(Vec<u8>, Origin), Error> {
    let shown = path.display();
    let file = files::open_existing(path, &SECRETS_FILE).map_err(|e| {
        e.into_error(path, &SECRETS_FILE, |e| {
            io_err(format!("cannot open secrets file {shown}"), e)
        })
    })?;
    let meta = file
        .metadata()
        .map_err(|e| io_err(format!("cannot stat secrets file {shown}"), e))?;
    if meta.len() > u64::try_from(MAX_FILE_LEN).unwrap_or(u64::MAX) {
        return Err(SecretsError::TooLarge { max: MAX_FILE_LEN }.into());
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(u64::try_from(MAX_FILE_LEN).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io_err(format!("cannot read secrets file {shown}"), e))?;
    if out.len() > MAX_FILE_LEN {
        return Err(SecretsError::TooLarge { max: MAX_FILE_LEN }.into());
    }
    let origin = Origin {
        path: path.to_path_buf(),
        token: token(&meta),
    };
    Ok((out, origin))
}

/// How a write treats the file already at the path.
pub(crate) enum Mode<'a> {
    /// There must be none (the file is linked into place, never replacing).
    New,
    /// Replace it, whatever it is now (but never through a link).
    Replace,
    /// Replace it only if it is still what `origin` read.
    IfUnchanged(&'a Origin),
}

/// Writes `bytes` to `path` atomically; returns the new origin.
pub(crate) fn write(path: &Path, bytes: &[u8], mode: Mode<'_>) -> Result<Origin, Error> {
    let shown = path.display().to_string();
    files::refuse_symlink(path, &SECRETS_FILE)?;
    let dir = files::parent(path);
    let tmp = files::temporary_path(path)?.ok_or_else(|| {
        Error::from(SecretsError::Io {
            what: format!("{shown} is not a file path"),
            source: None,
        })
    })?;
    // Keep the permissions of the file being replaced (the new file is
    // owner-only otherwise).
    let perms = match &mode {
        Mode::New => None,
        Mode::Replace | Mode::IfUnchanged(_) => fs::symlink_metadata(path).ok().map(|m| m.permissions()),
    };
    let result = (|| -> Result<(), Error> {
        let mut f: File = files::create_new_private(&tmp)
            .map_err(|e| io_err(format!("cannot create a temporary file in {}", dir.display()), e))?;
        f.write_all(bytes)
            .and_then(|()| match perms {
                Some(p) => f.set_permissions(p),
                None => Ok(()),
            })
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(format!("cannot write {}", tmp.display()), e))?;
        drop(f);
        match mode {
            Mode::New => fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    io_err(format!("refusing to overwrite existing {shown}"), e)
                } else {
                    io_err(format!("cannot move the new file into place at {shown}"), e)
                }
            }),
            Mode::Replace => fs::rename(&tmp, path).map_err(|e| io_err(format!("cannot replace {shown}"), e)),
            Mode::IfUnchanged(origin) => {
                let now = fs::symlink_metadata(path).map_err(|e| io_err(format!("cannot stat {shown}"), e))?;
                if token(&now) != origin.token {
                    return Err(SecretsError::Changed { path: shown.clone() }.into());
                }
                fs::rename(&tmp, path).map_err(|e| io_err(format!("cannot replace {shown}"), e))
            }
        }
    })();
    // After a rename the temporary name is gone; after a link or a failure
    // it is removed here.
    let _ = fs::remove_file(&tmp);
    result?;
    files::sync_dir(dir).map_err(|e| io_err(format!("cannot sync directory {}", dir.display()), e))?;
    let meta = fs::symlink_metadata(path).map_err(|e| io_err(format!("cannot stat {shown}"), e))?;
    Ok(Origin {
        path: path.to_path_buf(),
        token: token(&meta),
    })
}
