//! Identities on disk and in the environment: identity files (owner-only,
//! created atomically), identity files sealed under any provider, and
//! environment variables.

use alloc::string::String;
use alloc::vec::Vec;
use std::path::Path;

use zeroize::Zeroizing;

use super::Identity;
use crate::context::EncryptionContext;
use crate::error::Error;
use crate::open::{AsyncOpener, Opener};
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider};
use crate::seal::{AsyncSealer, Sealer};
use crate::secret_file;

/// Largest identity file read (an X-Wing recipient comment is about 2 KiB).
const MAX_IDENTITY_FILE_LEN: u64 = 16 * 1024;
/// Largest sealed identity file read.
const MAX_SEALED_FILE_LEN: u64 = 64 * 1024;
const IDENTITY_FILE: &str = "identity file";
const SEALED_IDENTITY_FILE: &str = "sealed identity file";
/// The stored context entry every sealed identity file carries, so that no
/// other envelope sealed under the same provider is taken for one.
const SEALED_CONTEXT: (&str, &str) = ("lockbox.content", "identity");

fn load_err(what: String) -> Error {
    Error::KeyLoad { what, source: None }
}

fn sealed_context() -> Result<EncryptionContext, Error> {
    EncryptionContext::new().with(SEALED_CONTEXT.0, SEALED_CONTEXT.1)
}

/// The one identity string in an identity file's text: lines that are
/// empty or start with `#` are skipped; exactly one other line must remain.
fn identity_line<'t>(text: &'t str, shown: &dyn core::fmt::Display) -> Result<&'t str, Error> {
    let mut lines = text
        .lines()
        .map(str::trim_ascii)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines
        .next()
        .ok_or_else(|| load_err(format!("{IDENTITY_FILE} {shown} holds no identity")))?;
    if lines.next().is_some() {
        return Err(load_err(format!(
            "{IDENTITY_FILE} {shown} holds more than one identity"
        )));
    }
    Ok(line)
}

impl Identity {
    /// Loads an identity file: one identity string on a line of its own;
    /// empty lines and lines starting with `#` are ignored (the form
    /// [`write_new_file`](Self::write_new_file) writes).
    ///
    /// On Unix the file must not be accessible by group or others (mode
    /// `0600` or stricter); otherwise this fails with [`Error::KeyLoad`]
    /// saying how to fix it. A malformed identity is an
    /// [`Error::KeyString`] (which never contains the file's text).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let shown = path.display();
        let bytes = secret_file::read(path, IDENTITY_FILE, MAX_IDENTITY_FILE_LEN)?;
        let text =
            core::str::from_utf8(&bytes).map_err(|_| load_err(format!("{IDENTITY_FILE} {shown} is not text")))?;
        Self::parse(identity_line(text, &shown)?)
    }

    /// Loads an identity from the environment variable `name`, holding an
    /// identity string. The variable stays in the process environment; clear
    /// it at start-up if child processes must not inherit it.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        Self::parse(&secret_file::env_var(name)?)
    }

    /// Writes the identity to a new file at `path`: two comment lines (what
    /// the file is, and the recipient string to share) and the identity
    /// string. Readable only by its owner (mode `0600` on Unix), written
    /// atomically, and never over an existing file (see
    /// [`LocalKek::write_new_file`](crate::LocalKek::write_new_file)).
    ///
    /// The secret then sits in clear on disk, protected by file permissions
    /// only; [`write_sealed_file`](Self::write_sealed_file) keeps it
    /// encrypted under another provider instead.
    pub fn write_new_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let header = format!(
            "# lockbox identity (secret key): keep this file private\n# recipient: {}\n",
            self.recipient()
        );
        let text = self.secret_text();
        secret_file::write_new(
            path.as_ref(),
            IDENTITY_FILE,
            &[header.as_bytes(), text.as_bytes(), b"\n"],
        )
    }

    /// Writes the identity to a new file at `path`, sealed under `provider`
    /// (a KMS or HSM key, a keyring, a [`Passphrase`](crate::passphrase::Passphrase)):
    /// the file is a lockbox envelope whose plaintext is the identity string
    /// and whose context holds the stored entry `lockbox.content = identity`,
    /// so the secret never sits in clear on disk. Created as
    /// [`write_new_file`](Self::write_new_file) creates files.
    pub fn write_sealed_file(&self, path: impl AsRef<Path>, provider: &dyn KeyEncryptionProvider) -> Result<(), Error> {
        let envelope = Sealer::new(provider).seal(self.secret_text().as_bytes(), &sealed_context()?)?;
        secret_file::write_new(path.as_ref(), SEALED_IDENTITY_FILE, &[&envelope])
    }

    /// [`write_sealed_file`](Self::write_sealed_file) under an async provider.
    pub async fn write_sealed_file_async(
        &self,
        path: impl AsRef<Path>,
        provider: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<(), Error> {
        let envelope = AsyncSealer::new(provider)
            .seal(self.secret_text().as_bytes(), &sealed_context()?)
            .await?;
        secret_file::write_new(path.as_ref(), SEALED_IDENTITY_FILE, &[&envelope])
    }

    /// Loads an identity file written by
    /// [`write_sealed_file`](Self::write_sealed_file), opened with `provider`.
    /// The file holds only ciphertext, so its permissions are not checked.
    pub fn from_sealed_file(path: impl AsRef<Path>, provider: &dyn KeyEncryptionProvider) -> Result<Self, Error> {
        let envelope = read_sealed(path.as_ref())?;
        let plaintext = Zeroizing::new(Opener::new(provider).open(&envelope, &sealed_context()?)?);
        Self::from_sealed_plaintext(&plaintext)
    }

    /// [`from_sealed_file`](Self::from_sealed_file) with an async provider.
    pub async fn from_sealed_file_async(
        path: impl AsRef<Path>,
        provider: &dyn AsyncKeyEncryptionProvider,
    ) -> Result<Self, Error> {
        let envelope = read_sealed(path.as_ref())?;
        let plaintext = Zeroizing::new(AsyncOpener::new(provider).open(&envelope, &sealed_context()?).await?);
        Self::from_sealed_plaintext(&plaintext)
    }

    fn from_sealed_plaintext(plaintext: &[u8]) -> Result<Self, Error> {
        let text =
            core::str::from_utf8(plaintext).map_err(|_| load_err(String::from("sealed identity is not text")))?;
        Self::parse(text)
    }
}

/// A sealed identity file's bytes (at most 64 KiB).
fn read_sealed(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let shown = path.display();
    let io = |what: String| move |e: std::io::Error| Error::key_load(what, Some(crate::error::BoxError::from(e)));
    let file = std::fs::File::open(path).map_err(io(format!("cannot open {SEALED_IDENTITY_FILE} {shown}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_SEALED_FILE_LEN.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io(format!("cannot read {SEALED_IDENTITY_FILE} {shown}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_SEALED_FILE_LEN {
        return Err(load_err(format!("{SEALED_IDENTITY_FILE} {shown} is too large")));
    }
    Ok(bytes)
}
