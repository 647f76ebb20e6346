//! Why a secrets-file operation failed ([`Error::Secrets`](crate::Error::Secrets)).
//! Names and paths are not secret and are reported; values never are.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{BoxError, Error};

/// A secrets-file error: structure, names, key coverage, verification, I/O.
/// Authentication failures (a tampered file, a wrong key) are
/// [`Error::Authentication`], not this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The file does not follow `SECRETS.md` (`line` is 1-based for the
    /// dotenv form, 0 when it is not about one line).
    #[error("malformed secrets file (line {line}): {what}")]
    #[non_exhaustive]
    Malformed {
        /// The line, 1-based (0: the file as a whole).
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The JSON form is not strict JSON (duplicate keys included).
    #[error("malformed JSON secrets file at byte {offset}: {what}")]
    #[non_exhaustive]
    MalformedJson {
        /// Byte offset.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The file is of a secrets-file version this release does not read.
    #[error("unsupported secrets file version {0}")]
    UnsupportedVersion(u32),
    /// The file is larger than the limit.
    #[error("secrets file larger than {max} bytes")]
    #[non_exhaustive]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// More values than the limit.
    #[error("more than {max} values in one secrets file")]
    #[non_exhaustive]
    TooManyValues {
        /// The limit.
        max: usize,
    },
    /// A name appears twice.
    #[error("the name {name:?} appears twice")]
    #[non_exhaustive]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A name or path that the file's form does not allow.
    #[error("invalid name {name:?}: {why}")]
    #[non_exhaustive]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// A value that the form cannot hold (a NUL in a dotenv value, JSON
    /// text that is not JSON).
    #[error("invalid value for {name:?}: {why}")]
    #[non_exhaustive]
    InvalidValue {
        /// The name.
        name: String,
        /// Why (never the value).
        why: &'static str,
    },
    /// The key envelope is not a secrets file's: its context lacks or
    /// misstates the `lockbox.secrets.*` entries, or names another form.
    #[error("the key envelope is not a {form} secrets file's: {what}")]
    #[non_exhaustive]
    NotASecretsFile {
        /// The form of the file being read.
        form: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// The caller's context uses a reserved key (`lockbox.secrets.*`).
    #[error("encryption context key {key:?} is reserved for secrets files")]
    #[non_exhaustive]
    ReservedContextKey {
        /// The key.
        key: String,
    },
    /// Rotation refused: these wrapped keys of the old file are held by no
    /// provider of the new key set, so rotating would lock their holders
    /// out. Add their providers, or remove them explicitly.
    #[error("refusing to rotate: {} wrapped key(s) of the file would not be re-made: {}", .0.len(), list(.0))]
    Uncovered(Vec<KeyRef>),
    /// Verification refused the new file: the provider that wrapped its key
    /// could not open it (a KMS key the caller may encrypt with but not
    /// decrypt with, a keyring version that is not the one wrapped, ...).
    #[error("provider {provider_id} (key {key_id}) could not open the new file; nothing was written")]
    #[non_exhaustive]
    Unverified {
        /// The provider id.
        provider_id: String,
        /// Its key id, as in the wrapped key.
        key_id: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// Both sides of a merge changed the file's keys (update keys or
    /// rotate) differently: redo one side's key change on the merged file.
    #[error("both sides changed the file's keys differently; merge the values, then redo the key change")]
    KeysConflict,
    /// The file changed on disk since it was read: read it again.
    #[error("{path} changed since it was read; nothing was written")]
    #[non_exhaustive]
    Changed {
        /// The path.
        path: String,
    },
    /// Reading or writing the file failed.
    #[error("{what}")]
    #[non_exhaustive]
    Io {
        /// What failed.
        what: String,
        /// The operating system's error.
        #[source]
        source: Option<BoxError>,
    },
}

/// A wrapped key of a file, named by provider and key id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRef {
    /// The provider id.
    pub provider_id: String,
    /// The key id.
    pub key_id: String,
}

fn list(keys: &[KeyRef]) -> String {
    let mut s = String::new();
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&k.provider_id);
        s.push(' ');
        s.push_str(&k.key_id);
    }
    s
}

impl From<SecretsError> for Error {
    fn from(e: SecretsError) -> Self {
        Error::Secrets(Box::new(e))
    }
}
