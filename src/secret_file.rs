//! Files that hold secrets (local KEK files, identity files): created new,
//! owner-only and atomically; read only if no one else can read them, into
//! buffers that are zeroized. Written once for every key file lockbox writes.

use alloc::string::String;
use alloc::vec::Vec;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{BoxError, Error};
use crate::keys::os_random;

fn load_err(what: String, source: Option<std::io::Error>) -> Error {
    Error::KeyLoad {
        what,
        source: source.map(BoxError::from),
    }
}

/// Reads the secret file at `path` (called a `kind` in messages, for example
/// "key file"): it must be a regular file that, on Unix, neither group nor
/// others can access (mode `0600` or stricter), of at most `max_len` bytes.
/// The bytes land in a buffer sized for `max_len` up front (growing would
/// free a block holding secret text) that is zeroized on drop.
pub(crate) fn read(path: &Path, kind: &str, max_len: u64) -> Result<Zeroizing<Vec<u8>>, Error> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| load_err(format!("cannot open {kind} {shown}"), Some(e)))?;
    let meta = file
        .metadata()
        .map_err(|e| load_err(format!("cannot stat {kind} {shown}"), Some(e)))?;
    if !meta.is_file() {
        return Err(load_err(format!("{kind} {shown} is not a regular file"), None));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(load_err(
                format!("{kind} {shown} is accessible by group or others (mode {mode:03o}); run `chmod 600` on it"),
                None,
            ));
        }
    }
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
/// directory, which is then linked into place. An existing file is never
/// overwritten, and a crash leaves either no file or a complete one; a crash
/// before the temporary file is removed can leave it behind
/// (`.<name>.tmp-<random>`, mode `0600`): remove it. Needs a file system
/// with hard links. The parts are written separately so that a caller never
/// has to concatenate secret text (which would reallocate it).
pub(crate) fn write_new(path: &Path, kind: &str, parts: &[&[u8]]) -> Result<(), Error> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| load_err(format!("{shown} is not a file path"), None))?;
    let mut suffix = [0u8; 8];
    os_random(&mut suffix)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{:016x}", u64::from_be_bytes(suffix)));
    let tmp = dir.join(tmp_name);

    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts
            .open(&tmp)
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
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| load_err(format!("cannot sync directory {}", dir.display()), Some(e)))?;
    Ok(())
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
