//! Encrypted secrets files (feature `secrets`): an application's API keys
//! and passwords in a `.env`-style or JSON file that can be committed,
//! reviewed and merged, opened with any lockbox provider (`SECRETS.md`).
//!
//! - **Readable structure, encrypted values.** The dotenv form keeps
//!   `NAME=value` lines, comments and order; the JSON form keeps nested
//!   objects and arrays. Names stay visible; each value is encrypted
//!   (XChaCha20-Poly1305, padded to 32 bytes) and **bound to its name or
//!   path and to the file**, so a value moved to another name or pasted into
//!   another file does not open.
//! - **One data key per file**, the payload of a lockbox envelope (the
//!   file's *key envelope*, `FORMAT.md`) whose data key is wrapped under any
//!   set of providers: a KMS for production, a keyring, public-key
//!   recipients for each developer, a passphrase for break-glass. Any one of
//!   them opens the file, by exactly the envelope's rules.
//! - **A whole-file authenticator** (HMAC-SHA-256 over the key envelope and
//!   every name and value in order): removing, adding, reordering or
//!   swapping values between files is detected, not only a changed value.
//!   Comments, blank lines and JSON whitespace are presentation: they are
//!   not authenticated and may be edited by hand.
//! - **Small diffs**: editing re-encrypts only what changed; every other
//!   value keeps its ciphertext byte for byte, so a changed value is one
//!   line of `git diff` (plus the authenticator line). [`merge`] is a
//!   three-way merge of two edited versions (a git merge driver:
//!   `examples/secrets.rs merge`).
//! - **Update keys or rotate, never confused.**
//!   [`update_keys`](SecretsFile::update_keys) rewraps the file's data key
//!   (add or remove providers; values untouched);
//!   [`rotate`](SecretsFile::rotate) makes a new data key and re-encrypts
//!   every value, and refuses if a provider that held the old key would not
//!   hold the new one. Saves are atomic and refuse a file that changed since
//!   it was read.
//! - **Verified at edit time.** Creating, updating keys and rotating open
//!   the new key envelope with each provider that wrapped it, alone, before
//!   anything is written ([`Verify`]): a KMS key the caller may encrypt with
//!   but not decrypt with is caught. A public-key recipient cannot be
//!   checked by whoever only has the public key (reported as
//!   [`CheckOutcome::CannotUnwrap`]): its holder should open the file once.
//! - **Loading** gives [`Secrets`]: [`SecretString`]s by name, typed
//!   getters, and the variables of a child process's environment.
//!
//! Blocking and async providers alike: [`SecretsFile::unlock`] takes an
//! [`Opener`], [`SecretsFile::unlock_async`] an [`AsyncOpener`], and so on;
//! both drive the same steps (only the provider calls differ).
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::secrets::{Form, SecretsFile, Verify};
//! use lockbox::secrecy::ExposeSecret;
//! use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};
//!
//! let kms = LocalKek::generate()?; // a KMS, a keyring, recipients...
//! let ctx = EncryptionContext::new();
//! let mut file = SecretsFile::create(Form::Dotenv, &Sealer::new(&kms), &ctx, Verify::EachProvider)?;
//! file.set("DATABASE_PASSWORD", "hunter2")?;
//! file.set("API_TOKEN", "tok_123")?;
//! let text = file.to_bytes()?; // commit this
//!
//! let opened = SecretsFile::parse(Form::Dotenv, &text)?.unlock(&Opener::new(&kms), &ctx)?;
//! let secrets = opened.load()?;
//! assert_eq!(secrets.require("DATABASE_PASSWORD")?.expose_secret(), "hunter2");
//! # Ok(()) }
//! ```
//!
//! # What the file does not protect
//!
//! Names, the number of values, their order and their lengths (to 32
//! bytes) are visible. Anyone who can write the file can put back an
//! **older version** of it (it still authenticates); keep it under version
//! control and review changes. Removing a provider with `update_keys` does
//! not take away what its holder already had: they knew the data key, so
//! rotate (and change the secrets themselves) after removing someone who
//! should lose access. There is no signature: any holder of the data key
//! can write a file the others accept.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::error::{Error, ProviderErrorKind};
use crate::format::{self, Limits, Segments};
use crate::inspect::EnvelopeInfo;
use crate::keys::os_random;
use crate::provider::{AsyncKeyEncryptionProvider, KeyEncryptionProvider, ProviderIdentity};
use crate::{AsyncOpener, AsyncRewrapper, AsyncSealer, Opener, Rewrapper, Sealer};

mod disk;
mod doc;
mod edit;
mod error;
pub(crate) mod json;
mod keys;
mod load;
mod merge;

pub use doc::{Form, MAX_FILE_LEN, MAX_NAME_LEN, MAX_VALUES};
pub use error::{KeyRef, SecretsError};
pub use load::{SecretValue, Secrets};
pub use merge::{Merged, merge};

use doc::{Body, Parsed};
use keys::{FILE_ID_LEN, FILE_KEY_LEN, FileKeys};

/// Context key of the secrets-file format version (`1`).
pub const CONTEXT_FORMAT: &str = "lockbox.secrets.format";
/// Context key of the form (`dotenv` or `json`).
pub const CONTEXT_FORM: &str = "lockbox.secrets.form";
/// Context key of the file id (32 lowercase hex digits).
pub const CONTEXT_FILE: &str = "lockbox.secrets.file";
/// Context keys starting with this are reserved for secrets files.
pub const CONTEXT_PREFIX: &str = "lockbox.secrets.";

/// Whether a key operation (create, update keys, rotate) must be opened by
/// every provider that wrapped the new data key before it is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verify {
    /// Open the new key envelope with each new provider alone; if one that
    /// can unwrap at all fails, refuse ([`SecretsError::Unverified`]) and
    /// produce nothing. The default, and the right choice unless a provider
    /// is known to be wrap-only for this caller.
    #[default]
    EachProvider,
    /// Open with each, but only report the outcomes
    /// ([`UnlockedFile::verification`]): for a caller who may encrypt to a
    /// KMS key but not decrypt with it (a CI job adding a production key).
    ReportOnly,
}

/// What verification found for one provider.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckOutcome {
    /// The provider alone opened the new key envelope to the file's key.
    Opened,
    /// The provider cannot unwrap at all (a public-key recipient without its
    /// identity): its holder should open the file once to check.
    CannotUnwrap,
    /// The provider could not open it.
    Failed(Error),
}

/// The verification of one provider after a key operation.
#[derive(Debug)]
pub struct ProviderCheck {
    provider_id: String,
    key_id: Option<String>,
    outcome: CheckOutcome,
}

impl ProviderCheck {
    /// The provider's id.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }
    /// The key id of the wrapped key it matches in the new file (`None`:
    /// none matched, a failure).
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
    /// What happened.
    pub fn outcome(&self) -> &CheckOutcome {
        &self.outcome
    }
}

/// The verification of a key operation: one [`ProviderCheck`] per provider
/// that wrapped the new data key, in order.
#[derive(Debug, Default)]
pub struct Verification {
    checks: Vec<ProviderCheck>,
}

impl Verification {
    /// Every provider's check.
    pub fn checks(&self) -> &[ProviderCheck] {
        &self.checks
    }
    /// Whether every provider that can unwrap opened the file.
    pub fn all_opened_or_cannot_unwrap(&self) -> bool {
        self.checks
            .iter()
            .all(|c| !matches!(c.outcome, CheckOutcome::Failed(_)))
    }
}

/// A secrets file as read: its form, names, encrypted values, key envelope
/// and authenticator. Nothing in it is trusted until it is unlocked
/// ([`unlock`](Self::unlock)), which checks the authenticator.
#[derive(Clone)]
pub struct SecretsFile {
    parsed: Parsed,
    origin: Option<disk::Origin>,
}

/// A secrets file unlocked with one of its providers: its data key is known
/// (boxed, zeroized on drop), the authenticator verified. Read values
/// ([`get`](Self::get), [`load`](Self::load)), edit them
/// ([`set`](Self::set), [`remove`](Self::remove)) and write the file
/// ([`save`](Self::save), [`to_bytes`](Self::to_bytes)).
pub struct UnlockedFile {
    parsed: Parsed,
    keys: Box<FileKeys>,
    origin: Option<disk::Origin>,
    verification: Option<Verification>,
}

fn secrets_err(e: SecretsError) -> Error {
    e.into()
}

fn not_secrets(form: Form, what: &'static str) -> Error {
    secrets_err(SecretsError::NotASecretsFile {
        form: form.name(),
        what,
    })
}

/// A buffer holding `header` with exactly its capacity, zeroized on drop: a
/// key envelope opens in place into it, so the file key never lands in a
/// buffer that grows.
fn key_buffer(header: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(header.len()));
    buf.extend_from_slice(header);
    buf
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        s.extend(char::from_digit(u32::from(b >> 4), 16));
        s.extend(char::from_digit(u32::from(b & 0xF), 16));
    }
    s
}

fn unhex_id(s: &str) -> Option<[u8; FILE_ID_LEN]> {
    if s.len() != FILE_ID_LEN.saturating_mul(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; FILE_ID_LEN];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let text = core::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// The context a key envelope is sealed and opened under: the caller's
/// entries plus the three reserved ones (stored).
fn full_context(
    caller: &EncryptionContext,
    form: Form,
    file_id: &[u8; FILE_ID_LEN],
) -> Result<EncryptionContext, Error> {
    if let Some(e) = caller.iter().find(|e| e.key.starts_with(CONTEXT_PREFIX)) {
        return Err(secrets_err(SecretsError::ReservedContextKey { key: e.key.to_string() }));
    }
    let mut full = caller.clone();
    full.insert(CONTEXT_FORMAT, "1")?;
    full.insert(CONTEXT_FORM, form.name())?;
    full.insert(CONTEXT_FILE, &hex(file_id))?;
    Ok(full)
}

/// Reads the reserved entries of a key envelope (unauthenticated until it
/// opens): its file id, after checking the format version and the form.
fn header_file_id(header: &[u8], form: Form, limits: &Limits) -> Result<[u8; FILE_ID_LEN], Error> {
    let info = EnvelopeInfo::parse(header, limits)?;
    if info.required_context_keys().any(|k| k.starts_with(CONTEXT_PREFIX)) {
        return Err(not_secrets(form, "a lockbox.secrets.* entry is required, not stored"));
    }
    let get = |key: &str| info.stored_context().find(|(k, _)| *k == key).map(|(_, v)| v);
    match get(CONTEXT_FORMAT) {
        Some("1") => {}
        Some(v) => {
            return Err(match v.parse::<u32>() {
                Ok(n) if !v.starts_with(['0', '+']) => secrets_err(SecretsError::UnsupportedVersion(n)),
                _ => not_secrets(form, "lockbox.secrets.format is not a version"),
            });
        }
        None => return Err(not_secrets(form, "no lockbox.secrets.format entry")),
    }
    if get(CONTEXT_FORM) != Some(form.name()) {
        return Err(not_secrets(form, "lockbox.secrets.form names another form"));
    }
    let known = [CONTEXT_FORMAT, CONTEXT_FORM, CONTEXT_FILE];
    if info
        .stored_context()
        .any(|(k, _)| k.starts_with(CONTEXT_PREFIX) && !known.contains(&k))
    {
        return Err(not_secrets(form, "unknown lockbox.secrets.* entry"));
    }
    get(CONTEXT_FILE)
        .and_then(unhex_id)
        .ok_or_else(|| not_secrets(form, "lockbox.secrets.file is not 32 lowercase hex digits"))
}

/// Rotation refuses if an entry of the old key envelope is matched by no
/// new provider (and by none of those removed on purpose).
fn check_coverage<P: AsIdentity + ?Sized>(
    header: &[u8],
    limits: &Limits,
    new: &[&P],
    removed: &[&dyn ProviderIdentity],
) -> Result<(), Error> {
    let info = EnvelopeInfo::parse(header, limits)?;
    let uncovered: Vec<KeyRef> = info
        .wrapped_keys()
        .iter()
        .filter(|w| {
            let covered = new.iter().map(|p| p.identity()).chain(removed.iter().copied());
            !covered.into_iter().any(|p| p.matches(w.as_ref()))
        })
        .map(|w| KeyRef {
            provider_id: w.provider_id().to_string(),
            key_id: w.key_id().as_str().to_string(),
        })
        .collect();
    if uncovered.is_empty() {
        Ok(())
    } else {
        Err(secrets_err(SecretsError::Uncovered(uncovered)))
    }
}

/// Providers of either kind, seen as identities.
trait AsIdentity {
    fn identity(&self) -> &dyn ProviderIdentity;
}

impl AsIdentity for dyn KeyEncryptionProvider + '_ {
    fn identity(&self) -> &dyn ProviderIdentity {
        self
    }
}

impl AsIdentity for dyn AsyncKeyEncryptionProvider + '_ {
    fn identity(&self) -> &dyn ProviderIdentity {
        self
    }
}

/// The verification of a new key envelope, between the provider calls: the
/// driver opens it with each provider alone (into the buffer [`next`](Self::next)
/// hands out) and hands the result to [`record`](Self::record).
struct Checks {
    info: EnvelopeInfo,
    envelope: Vec<u8>,
    expected: secrecy::SecretBox<[u8; FILE_KEY_LEN]>,
    verify: Verify,
    next: usize,
    out: Verification,
}

impl Checks {
    fn new(envelope: &[u8], keys: &FileKeys, limits: &Limits, verify: Verify) -> Result<Self, Error> {
        let mut expected = secrecy::SecretBox::new(Box::new([0u8; FILE_KEY_LEN]));
        secrecy::ExposeSecretMut::expose_secret_mut(&mut expected).copy_from_slice(keys.file_key());
        Ok(Self {
            info: EnvelopeInfo::parse(envelope, limits)?,
            envelope: envelope.to_vec(),
            expected,
            verify,
            next: 0,
            out: Verification::default(),
        })
    }

    /// The next provider to check, and a buffer holding the envelope to
    /// open in place.
    fn next<'p, P: AsIdentity + ?Sized>(&mut self, providers: &[&'p P]) -> Option<(&'p P, Zeroizing<Vec<u8>>)> {
        let p = providers.get(self.next).copied()?;
        self.next = self.next.saturating_add(1);
        Some((p, key_buffer(&self.envelope)))
    }

    /// Records what opening with `p` alone gave (`buf`: the payload).
    fn record(&mut self, p: &dyn ProviderIdentity, opened: Result<(), Error>, buf: &[u8]) -> Result<(), Error> {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let key_id = self
            .info
            .wrapped_keys()
            .iter()
            .find(|w| p.matches(w.as_ref()))
            .map(|w| w.key_id().as_str().to_string());
        let outcome = match opened {
            Ok(()) if bool::from(buf.ct_eq(self.expected.expose_secret().as_slice())) => CheckOutcome::Opened,
            Ok(()) => CheckOutcome::Failed(Error::Authentication),
            Err(Error::NoProviderCouldUnwrap {
                source: Some(ref e), ..
            }) if e.kind() == ProviderErrorKind::Unsupported => CheckOutcome::CannotUnwrap,
            Err(e) => CheckOutcome::Failed(e),
        };
        let check = ProviderCheck {
            provider_id: p.provider_id().to_string(),
            key_id,
            outcome,
        };
        if self.verify == Verify::EachProvider
            && let CheckOutcome::Failed(e) = check.outcome
        {
            return Err(secrets_err(SecretsError::Unverified {
                provider_id: check.provider_id,
                key_id: check.key_id.unwrap_or_default(),
                source: Box::new(e),
            }));
        }
        self.out.checks.push(check);
        Ok(())
    }
}

/// Opens `checks`' envelope with each of `providers` alone (blocking).
fn check_each(
    checks: &mut Checks,
    providers: &[&dyn KeyEncryptionProvider],
    limits: &Limits,
    full: &EncryptionContext,
) -> Result<(), Error> {
    while let Some((p, mut buf)) = checks.next(providers) {
        let r = Opener::new(p).limits(*limits).open_in_place(&mut buf, full);
        checks.record(p.identity(), r, &buf)?;
    }
    Ok(())
}

/// [`check_each`] with async providers.
async fn check_each_async(
    checks: &mut Checks,
    providers: &[&dyn AsyncKeyEncryptionProvider],
    limits: &Limits,
    full: &EncryptionContext,
) -> Result<(), Error> {
    while let Some((p, mut buf)) = checks.next(providers) {
        let opener = AsyncOpener::new(p).limits(*limits);
        let r = opener.open_in_place(&mut buf, full).await;
        checks.record(p.identity(), r, &buf)?;
    }
    Ok(())
}

/// A new data key (a new file, or a rotation), before and after its key
/// envelope is sealed.
struct Fresh {
    form: Form,
    body: Body,
    origin: Option<disk::Origin>,
    /// Rotation: the old keys, to re-encrypt the values with.
    old: Option<Box<FileKeys>>,
    keys: Box<FileKeys>,
    header: Vec<u8>,
}

impl Fresh {
    /// A new empty file, and the context to seal its key envelope under.
    fn create(form: Form, context: &EncryptionContext) -> Result<(Self, EncryptionContext), Error> {
        let mut id = [0u8; FILE_ID_LEN];
        os_random(&mut id)?;
        let full = full_context(context, form, &id)?;
        let fresh = Self {
            form,
            body: Body::empty(form),
            origin: None,
            old: None,
            keys: FileKeys::generate(id)?,
            header: Vec::new(),
        };
        Ok((fresh, full))
    }

    /// A rotation of `old` (same file id).
    fn rotate(old: UnlockedFile, context: &EncryptionContext) -> Result<(Self, EncryptionContext), Error> {
        let id = *old.keys.file_id();
        let full = full_context(context, old.parsed.form, &id)?;
        let fresh = Self {
            form: old.parsed.form,
            body: old.parsed.body,
            origin: old.origin,
            old: Some(old.keys),
            keys: FileKeys::generate(id)?,
            header: Vec::new(),
        };
        Ok((fresh, full))
    }

    fn file_key(&self) -> &[u8; FILE_KEY_LEN] {
        self.keys.file_key()
    }

    /// The sealed key envelope; what to check it with.
    fn sealed(&mut self, header: Vec<u8>, limits: &Limits, verify: Verify) -> Result<Checks, Error> {
        let checks = Checks::new(&header, &self.keys, limits, verify)?;
        self.header = header;
        Ok(checks)
    }

    /// The new file (every value re-encrypted, for a rotation).
    fn finish(mut self, checks: Checks) -> Result<UnlockedFile, Error> {
        if let Some(old) = &self.old {
            edit::reseal_body(old, &self.keys, self.form, &mut self.body)?;
        }
        let mut file = UnlockedFile::new(self.form, self.body, self.header, self.keys, checks.out);
        file.origin = self.origin;
        Ok(file)
    }
}

/// An update of keys, between the provider calls.
struct Update {
    file: SecretsFile,
    full: EncryptionContext,
    id: [u8; FILE_ID_LEN],
    limits: Limits,
}

impl Update {
    fn new(file: SecretsFile, context: &EncryptionContext, limits: &Limits) -> Result<Self, Error> {
        let (full, id) = file.open_context(context, limits)?;
        Ok(Self {
            file,
            full,
            id,
            limits: *limits,
        })
    }

    /// The old key envelope's header, for the rewrapper.
    fn header(&self) -> Result<format::Header<'_>, Error> {
        Ok(format::parse(&self.file.parsed.header, &self.limits)?.0)
    }

    /// After the rewrap: the file key (from the payload, with the payload
    /// key the rewrap authenticated), the old file's authenticator checked,
    /// the new key envelope in place; and what to check it with.
    fn rewrapped(
        self,
        header: &[u8],
        cipher: &crate::crypto::PayloadCipher,
        verify: Verify,
    ) -> Result<(UnlockedFile, Checks), Error> {
        let (h, payload) = format::parse(&self.file.parsed.header, &self.limits)?;
        let segs = Segments::for_payload(payload.len(), h.segment_size(), h.len())?;
        let mut file_key = Zeroizing::new(Vec::with_capacity(payload.len()));
        crate::engine::open::open_payload(cipher, segs, payload, 1, &mut file_key)?;
        let envelope = [header, payload].concat();
        let mut unlocked = self.file.unlocked(&file_key, self.id)?;
        let checks = Checks::new(&envelope, &unlocked.keys, &self.limits, verify)?;
        unlocked.parsed.header = envelope;
        Ok((unlocked, checks))
    }
}

impl SecretsFile {
    /// Parses a file of `form` (strictly: `SECRETS.md` §2–§3). Nothing is
    /// decrypted or trusted yet.
    pub fn parse(form: Form, bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            parsed: doc::parse(form, bytes)?,
            origin: None,
        })
    }

    /// Reads and parses the file at `path`, of the form its name suggests
    /// ([`Form::for_file_name`]). The file is opened without following a
    /// link and checked on the handle (a regular file of this user or root,
    /// not writable by group or others), at most [`MAX_FILE_LEN`] bytes;
    /// [`UnlockedFile::save`] later writes it back only if it is unchanged.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let form = Form::for_file_name(&path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
        Self::read_form(path, form)
    }

    /// [`read`](Self::read) with an explicit form.
    pub fn read_form(path: impl AsRef<Path>, form: Form) -> Result<Self, Error> {
        let (bytes, origin) = disk::read(path.as_ref())?;
        Ok(Self {
            parsed: doc::parse(form, &bytes)?,
            origin: Some(origin),
        })
    }

    /// The form.
    pub fn form(&self) -> Form {
        self.parsed.form
    }

    /// The names of the values (dotenv names, or JSON Pointers of the
    /// leaves), in file order. Names are not secret.
    pub fn names(&self) -> Vec<String> {
        self.parsed.names()
    }

    /// The key envelope (`FORMAT.md`), for [`inspect`](crate::inspect):
    /// who can open the file (unauthenticated until unlocked).
    pub fn key_envelope(&self) -> &[u8] {
        &self.parsed.header
    }

    /// The file as written (byte for byte what was parsed, up to comments'
    /// line endings).
    pub fn to_bytes(&self) -> Vec<u8> {
        doc::write(&self.parsed)
    }

    /// The context to open with and the file id.
    fn open_context(
        &self,
        caller: &EncryptionContext,
        limits: &Limits,
    ) -> Result<(EncryptionContext, [u8; FILE_ID_LEN]), Error> {
        let id = header_file_id(&self.parsed.header, self.parsed.form, limits)?;
        Ok((full_context(caller, self.parsed.form, &id)?, id))
    }

    /// The unlocked file, from the opened key envelope's payload: the file
    /// key, then the authenticator checked.
    fn unlocked(self, payload: &[u8], file_id: [u8; FILE_ID_LEN]) -> Result<UnlockedFile, Error> {
        let key: &[u8; FILE_KEY_LEN] = payload
            .try_into()
            .map_err(|_| not_secrets(self.parsed.form, "the key envelope does not hold a 32-byte file key"))?;
        let keys = FileKeys::derive(key, file_id);
        self.check_mac(&keys)?;
        Ok(UnlockedFile {
            parsed: self.parsed,
            keys,
            origin: self.origin,
            verification: None,
        })
    }

    fn check_mac(&self, keys: &FileKeys) -> Result<(), Error> {
        let p = &self.parsed;
        if keys.verify_mac(&doc::mac_input(p.form, &p.header, &p.body), &p.mac) {
            Ok(())
        } else {
            Err(Error::Authentication)
        }
    }

    /// Unlocks the file: opens its key envelope with `opener`'s providers
    /// (every `FORMAT.md` §9 rule; `context` holds the caller's entries of
    /// the file's context, usually none) and verifies the authenticator.
    /// Values are decrypted only when read.
    pub fn unlock(self, opener: &Opener<'_>, context: &EncryptionContext) -> Result<UnlockedFile, Error> {
        let (full, id) = self.open_context(context, opener.limits_ref())?;
        let mut buf = key_buffer(&self.parsed.header);
        opener.open_in_place(&mut buf, &full)?;
        self.unlocked(&buf, id)
    }

    /// [`unlock`](Self::unlock) with async providers.
    pub async fn unlock_async(
        self,
        opener: &AsyncOpener<'_>,
        context: &EncryptionContext,
    ) -> Result<UnlockedFile, Error> {
        let (full, id) = self.open_context(context, opener.limits_ref())?;
        let mut buf = key_buffer(&self.parsed.header);
        opener.open_in_place(&mut buf, &full).await?;
        self.unlocked(&buf, id)
    }

    /// A new, empty file of `form` whose data key is wrapped by every
    /// provider of `sealer` (its suite, limits, audit and post-quantum
    /// rule apply), under `context` (the caller's entries; the
    /// `lockbox.secrets.*` ones are added). With [`Verify::EachProvider`]
    /// each provider must open the new file alone.
    pub fn create(
        form: Form,
        sealer: &Sealer<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        let (mut fresh, full) = Fresh::create(form, context)?;
        let header = sealer.seal(fresh.file_key(), &full)?;
        let mut checks = fresh.sealed(header, sealer.limits_ref(), verify)?;
        check_each(&mut checks, sealer.providers(), sealer.limits_ref(), &full)?;
        fresh.finish(checks)
    }

    /// [`create`](Self::create) with async providers.
    pub async fn create_async(
        form: Form,
        sealer: &AsyncSealer<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        let (mut fresh, full) = Fresh::create(form, context)?;
        let header = sealer.seal(fresh.file_key(), &full).await?;
        let mut checks = fresh.sealed(header, sealer.limits_ref(), verify)?;
        check_each_async(&mut checks, sealer.providers(), sealer.limits_ref(), &full).await?;
        fresh.finish(checks)
    }

    /// **Update keys**: rewraps the file's data key with `rewrapper` (its
    /// unwrap providers open the key envelope; its wrap providers, [`Keep`](crate::Keep)
    /// rule and removals make the new one), after checking the file's
    /// authenticator. The data key, and so every value's ciphertext, stays
    /// as it is; only the key envelope and the authenticator change. Use it
    /// to add or remove a provider or recipient; after removing someone who
    /// must lose access, [`rotate`](Self::rotate). With
    /// [`Verify::EachProvider`] each wrap provider must open the new file
    /// alone.
    pub fn update_keys(
        self,
        rewrapper: &Rewrapper<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        let update = Update::new(self, context, rewrapper.limits_ref())?;
        let (header, cipher) = rewrapper.new_header(update.header()?, &update.full)?;
        let full = update.full.clone();
        let (mut file, mut checks) = update.rewrapped(&header, &cipher, verify)?;
        check_each(&mut checks, rewrapper.wrap_providers(), rewrapper.limits_ref(), &full)?;
        file.verification = Some(checks.out);
        Ok(file)
    }

    /// [`update_keys`](Self::update_keys) with async providers.
    pub async fn update_keys_async(
        self,
        rewrapper: &AsyncRewrapper<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        let update = Update::new(self, context, rewrapper.limits_ref())?;
        let (header, cipher) = rewrapper.new_header(update.header()?, &update.full).await?;
        let full = update.full.clone();
        let (mut file, mut checks) = update.rewrapped(&header, &cipher, verify)?;
        check_each_async(&mut checks, rewrapper.wrap_providers(), rewrapper.limits_ref(), &full).await?;
        file.verification = Some(checks.out);
        Ok(file)
    }

    /// **Rotate**: unlocks the file with `opener`, makes a new data key
    /// wrapped by every provider of `sealer`, and re-encrypts every value
    /// under it. Refuses ([`SecretsError::Uncovered`]) before any provider
    /// is called if a wrapped key of the file is matched by no provider of
    /// `sealer`: rotating would lock its holder out. To drop a provider on
    /// purpose while rotating, use [`rotate_removing`](Self::rotate_removing).
    pub fn rotate(
        self,
        opener: &Opener<'_>,
        sealer: &Sealer<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        self.rotate_removing(opener, sealer, &[], context, verify)
    }

    /// [`rotate`](Self::rotate), dropping the wrapped keys that a provider
    /// of `removed` matches (they need not be covered by `sealer`).
    pub fn rotate_removing(
        self,
        opener: &Opener<'_>,
        sealer: &Sealer<'_>,
        removed: &[&dyn ProviderIdentity],
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        check_coverage(&self.parsed.header, opener.limits_ref(), sealer.providers(), removed)?;
        let (mut fresh, full) = Fresh::rotate(self.unlock(opener, context)?, context)?;
        let header = sealer.seal(fresh.file_key(), &full)?;
        let mut checks = fresh.sealed(header, sealer.limits_ref(), verify)?;
        check_each(&mut checks, sealer.providers(), sealer.limits_ref(), &full)?;
        fresh.finish(checks)
    }

    /// [`rotate`](Self::rotate) with async providers.
    pub async fn rotate_async(
        self,
        opener: &AsyncOpener<'_>,
        sealer: &AsyncSealer<'_>,
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        self.rotate_removing_async(opener, sealer, &[], context, verify).await
    }

    /// [`rotate_removing`](Self::rotate_removing) with async providers.
    pub async fn rotate_removing_async(
        self,
        opener: &AsyncOpener<'_>,
        sealer: &AsyncSealer<'_>,
        removed: &[&dyn ProviderIdentity],
        context: &EncryptionContext,
        verify: Verify,
    ) -> Result<UnlockedFile, Error> {
        check_coverage(&self.parsed.header, opener.limits_ref(), sealer.providers(), removed)?;
        let old = self.unlock_async(opener, context).await?;
        let (mut fresh, full) = Fresh::rotate(old, context)?;
        let header = sealer.seal(fresh.file_key(), &full).await?;
        let mut checks = fresh.sealed(header, sealer.limits_ref(), verify)?;
        check_each_async(&mut checks, sealer.providers(), sealer.limits_ref(), &full).await?;
        fresh.finish(checks)
    }
}

impl Parsed {
    /// The names of the values, in file order.
    fn names(&self) -> Vec<String> {
        doc::leaves(&self.body)
            .iter()
            .map(|(p, _)| doc::path_name(self.form, p))
            .collect()
    }
}

impl Body {
    fn empty(form: Form) -> Self {
        match form {
            Form::Dotenv => Self::Dotenv(Vec::new()),
            Form::Json => Self::Json(Vec::new()),
        }
    }
}

impl fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsFile")
            .field("form", &self.parsed.form)
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

impl UnlockedFile {
    fn new(form: Form, body: Body, header: Vec<u8>, keys: Box<FileKeys>, v: Verification) -> Self {
        Self {
            parsed: Parsed {
                form,
                body,
                header,
                mac: [0; keys::MAC_LEN],
            },
            keys,
            origin: None,
            verification: Some(v),
        }
    }

    /// The form.
    pub fn form(&self) -> Form {
        self.parsed.form
    }

    /// The file id (32 lowercase hex digits): what every value is bound to.
    pub fn file_id(&self) -> String {
        hex(self.keys.file_id())
    }

    /// The names of the values, in file order.
    pub fn names(&self) -> Vec<String> {
        self.parsed.names()
    }

    /// The key envelope (`FORMAT.md`): [`inspect`](crate::inspect) it to
    /// list the providers that can open the file.
    pub fn key_envelope(&self) -> &[u8] {
        &self.parsed.header
    }

    /// The verification of the key operation that produced this file
    /// (create, update keys, rotate); `None` for a file only unlocked.
    pub fn verification(&self) -> Option<&Verification> {
        self.verification.as_ref()
    }

    /// Decrypts the value of `name` (a dotenv name or a JSON Pointer): its
    /// text (for JSON, a string's text or the literal of a number, `true`,
    /// `false`, `null`); `None` if there is no value at `name`.
    pub fn get(&self, name: &str) -> Result<Option<SecretString>, Error> {
        let path = edit::resolve(self.parsed.form, &self.parsed.body, name)?;
        match edit::find(&self.parsed.body, &path) {
            Some(edit::Found::Leaf(v)) => {
                let p = edit::open(&self.keys, self.parsed.form, &path, v)?;
                Ok(Some(SecretString::from(p.text())))
            }
            _ => Ok(None),
        }
    }

    /// Sets `name` to the string `value` (in the JSON form, `name` is a JSON
    /// Pointer; missing objects on the way are created, and `-` appends to
    /// an array). If the value is already `value`, nothing changes (its
    /// ciphertext stays byte for byte); a new dotenv name is appended.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let form = self.parsed.form;
        if form == Form::Dotenv && value.contains('\0') {
            return Err(secrets_err(SecretsError::InvalidValue {
                name: name.to_string(),
                why: "a dotenv value cannot hold a NUL byte",
            }));
        }
        let path = edit::resolve(form, &self.parsed.body, name)?;
        if edit::unchanged(
            &self.keys,
            form,
            &self.parsed.body,
            &path,
            edit::KIND_STRING,
            value.as_bytes(),
        )? {
            return Ok(());
        }
        let sealed = edit::seal(&self.keys, form, &path, edit::KIND_STRING, value.as_bytes())?;
        edit::put(&mut self.parsed.body, &path, doc::Node::Leaf(sealed))
    }

    /// JSON form: sets `pointer` to the JSON value `json` (a string,
    /// number, `true`, `false`, `null`, or an object or array whose every
    /// leaf is encrypted at its own path). A scalar equal to the current
    /// value changes nothing.
    pub fn set_json(&mut self, pointer: &str, json: &str) -> Result<(), Error> {
        if self.parsed.form != Form::Json {
            return Err(secrets_err(SecretsError::InvalidValue {
                name: pointer.to_string(),
                why: "JSON values go into the JSON form only",
            }));
        }
        let value = json::parse(json.as_bytes(), json::MAX_DEPTH).map_err(|_| {
            secrets_err(SecretsError::InvalidValue {
                name: pointer.to_string(),
                why: "not strict JSON",
            })
        })?;
        let mut path = edit::resolve(Form::Json, &self.parsed.body, pointer)?;
        let scalar = match &value {
            json::Json::String(s) => Some((edit::KIND_STRING, s.as_bytes())),
            json::Json::Number(n) => Some((edit::KIND_NUMBER, n.as_bytes())),
            json::Json::Bool(true) => Some((edit::KIND_TRUE, &b""[..])),
            json::Json::Bool(false) => Some((edit::KIND_FALSE, &b""[..])),
            json::Json::Null => Some((edit::KIND_NULL, &b""[..])),
            _ => None,
        };
        if let Some((kind, data)) = scalar
            && edit::unchanged(&self.keys, Form::Json, &self.parsed.body, &path, kind, data)?
        {
            return Ok(());
        }
        let node = edit::seal_json(&self.keys, &mut path, &value)?;
        edit::put(&mut self.parsed.body, &path, node)
    }

    /// Removes the value (or, in the JSON form, the subtree) at `name`;
    /// `false` if there was none.
    pub fn remove(&mut self, name: &str) -> Result<bool, Error> {
        let path = edit::resolve(self.parsed.form, &self.parsed.body, name)?;
        edit::remove(&self.keys, &mut self.parsed.body, &path)
    }

    /// Decrypts every value.
    pub fn load(&self) -> Result<Secrets, Error> {
        let form = self.parsed.form;
        let all = edit::open_all(&self.keys, form, &self.parsed.body)?;
        let entries = all
            .iter()
            .map(|(path, p)| (doc::path_name(form, path), SecretString::from(p.text())))
            .collect();
        Ok(Secrets::new(entries, form == Form::Json))
    }

    /// The file's bytes, with a fresh authenticator.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        Ok(doc::write(&self.authenticated()))
    }

    fn authenticated(&self) -> Parsed {
        let mut p = self.parsed.clone();
        p.mac = self.keys.mac(&doc::mac_input(p.form, &p.header, &p.body));
        p
    }

    /// Locks the file again (drops its key).
    pub fn lock(self) -> SecretsFile {
        SecretsFile {
            parsed: self.authenticated(),
            origin: self.origin,
        }
    }

    /// Writes the file back where it was read from, atomically, only if it
    /// did not change on disk since (else [`SecretsError::Changed`]:
    /// nothing is written). The file keeps its permissions.
    pub fn save(&mut self) -> Result<(), Error> {
        let origin = self.origin.clone().ok_or_else(|| {
            secrets_err(SecretsError::Io {
                what: String::from("this file was not read from disk: use save_new or save_replacing"),
                source: None,
            })
        })?;
        let bytes = self.to_bytes()?;
        self.origin = Some(disk::write(&origin.path, &bytes, disk::Mode::IfUnchanged(&origin))?);
        Ok(())
    }

    /// Writes the file to a new file at `path` (owner-only), atomically;
    /// never replaces an existing file.
    pub fn save_new(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let bytes = self.to_bytes()?;
        self.origin = Some(disk::write(path.as_ref(), &bytes, disk::Mode::New)?);
        Ok(())
    }

    /// Writes the file to `path`, atomically replacing whatever is there
    /// (never through a link; its permissions are kept).
    pub fn save_replacing(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let bytes = self.to_bytes()?;
        self.origin = Some(disk::write(path.as_ref(), &bytes, disk::Mode::Replace)?);
        Ok(())
    }
}

impl fmt::Debug for UnlockedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockedFile")
            .field("form", &self.parsed.form)
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}
