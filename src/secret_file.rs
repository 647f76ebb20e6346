//! Files that hold secrets (local KEK files, identity files): created new,
//! owner-only and atomically; read only through the hardened open of
//! [`files`](crate::files) (no links followed, no FIFO waited on, regular
//! file owned by this user that no one else can access), into buffers that
//! are zeroized. Written once for every secret file lockbox reads or writes.

use alloc::string::String;
use alloc::vec::Vec;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{BoxError, Error};
use crate::files::{self, Rules};

fn load_err(what: String, source: Option<std::io::Error>) -> Error {
    Error::KeyLoad {
        what,
        source: source.map(BoxError::from),
    }
}

/// The rules of a key file (owner-only, ours), for a secret file called
/// `kind` in messages.
fn rules(kind: &'static str) -> Rules {
    Rules {
        what: kind,
        ..files::KEY_FILE
    }
}

/// Reads the secret file at `path` (a `kind` in messages, for example "key
/// file"): opened without following a link or waiting on a FIFO, and
/// checked on the handle to be a regular file of this user that neither
/// group nor others can access (mode `0600` or stricter), else
/// [`Error::UnsafeFile`]; of at most `max_len` bytes. The bytes land in a
/// buffer sized for `max_len` up front (growing would free a block holding
/// secret text) that is zeroized on drop.
pub(crate) fn read(path: &Path, kind: &'static str, max_len: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    let shown = path.display();
    let rules = rules(kind);
    let file = files::open_existing(path, &rules).map_err(|e| {
        e.into_error(path, &rules, |e| {
            load_err(format!("cannot open {kind} {shown}"), Some(e))
        })
    })?;
    let cap = usize::try_from(max_len).unwrap_or(usize::MAX).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(cap));
    file.take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| load_err(format!("cannot read {kind} {shown}"), Some(e)))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_len {
        return Err(load_err(format!("{kind} {shown} is too large"), None));
    }
    Ok(bytes)
}

/// Writes `parts`, one after the other, to a new file at `path` (a `kind`
/// in messages), readable only by its owner (mode `0600` on Unix),
/// atomically: written and synced to a temporary file in the same
/// directory (`.<name>.tmp-<16 hex digits>`, created exclusively, never
/// through a link), which is then linked into place. An existing file (or
/// link) is never overwritten, and a crash leaves either no file or a
/// complete one; a crash before the temporary file is removed can leave it
/// behind: remove it. Needs a file system with hard links. The parts are
/// written separately so that a caller never has to concatenate secret text
/// (which would reallocate it).
pub(crate) fn write_new(path: &Path, kind: &str, parts: &[&[u8]]) -> Result<(), Error> {
    let shown = path.display();
    let dir = files::parent(path);
    let tmp = files::temporary_path(path)?.ok_or_else(|| load_err(format!("{shown} is not a file path"), None))?;
    let result = (|| {
        let mut f = files::create_new_private(&tmp)
            .map_err(|e| load_err(format!("cannot create temporary {kind} in {}", dir.display()), Some(e)))?;
        parts
            .iter()
            .try_for_each(|p| f.write_all(p))
            .and_then(|()| f.sync_all())
            .map_err(|e| load_err(format!("cannot write {kind} {shown}"), Some(e)))?;
        fs::hard_link(&tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                load_err(format!("refusing to overwrite existing {kind} {shown}"), Some(e))
            } else {
                load_err(format!("cannot move {kind} into place at {shown}"), Some(e))
            }
        })
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    files::sync_dir(dir).map_err(|e| load_err(format!("cannot sync directory {}", dir.display()), Some(e)))
}

/// The value of the environment variable `name` (which holds a key or a
/// secret, never echoed in errors), in a buffer zeroized on drop. The
/// variable stays in the process environment.
pub(crate) fn env_var(name: &str) -> Result<Zeroizing<String>, Error> {
    let value =
        std::env::var_os(name).ok_or_else(|| load_err(format!("environment variable {name} is not set"), None))?;
    value
        .into_string()
        .map(Zeroizing::new)
        .map_err(|_| load_err(format!("environment variable {name} is not valid UTF-8"), None))
}
