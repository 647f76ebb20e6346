//! A key-encryption key held in a PKCS#11 token: a hardware security module,
//! a smart card, or SoftHSM2 for tests, as a [`lockbox`] provider
//! ([`Pkcs11Kek`]).
//!
//! This crate is built on lockbox's public provider API only
//! ([`lockbox::provider`]); it passes the conformance suite of the
//! `lockbox-testing` crate.
//!
//! The KEK is an AES-256 secret key object in the token, found by label or by
//! `CKA_ID`. It never leaves the token: wrap and unwrap are `C_Encrypt` and
//! `C_Decrypt` with `CKM_AES_GCM` run inside it. lockbox refuses keys the
//! token would let out: the key must be `CKA_SENSITIVE` and not
//! `CKA_EXTRACTABLE` (keys generated in the token with
//! `pkcs11-tool --keygen --key-type AES:32 --sensitive` are).
//!
//! # Wrapped key layout
//!
//! ```text
//! version (1 byte, 0x01) | IV (12 bytes) | AES-256-GCM(DEK) (32 bytes) | tag (16 bytes)
//! ```
//!
//! 61 bytes. The IV is 96 bits from the OS CSPRNG, fresh for every wrap (if a
//! token generates the IV itself, as some do in FIPS mode, the IV it wrote
//! back is stored); the associated data is the envelope's
//! [`Binding::as_bytes`], so a wrapped key opens only under the suite and
//! context it was sealed with. As with any random-IV GCM key, keep the number
//! of wraps under one KEK below 2^32. The key id recorded in the envelope is
//! the key's `CKA_LABEL` (or `id:` and the hex `CKA_ID` for an unlabelled
//! key) and the key version is 1: rotate by creating a key with a new label.
//!
//! # Sessions and login
//!
//! A PKCS#11 session must not be used by two threads at once, so the
//! provider keeps a pool of idle read-only sessions behind a mutex: a call
//! takes one (or opens one), uses it without holding the lock, and puts it
//! back. Threads never wait for each other's token operations, and a
//! network HSM is not asked to open a session per call. At most
//! [`max_idle_sessions`](Pkcs11KekBuilder::max_idle_sessions) are kept; a
//! session that saw an unexpected error is closed, not reused.
//!
//! PKCS#11 login state belongs to the process (per token), not to a session:
//! the provider logs in once, keeps one extra session open so the login
//! lasts, and, if the token forgot the login (it restarted, or other code
//! logged out), logs in again, finds the key again and retries once. It never
//! logs out (that would log out every other user of the token in the
//! process). A consequence of the standard: if the process is already logged
//! in to the token (another provider, other code), the token accepts the
//! login without checking the PIN.
//!
//! The provider is synchronous: a call blocks its thread for one token
//! operation (about 40 µs with SoftHSM2; a network round trip with a network
//! HSM). Through the blanket implementation it is also an
//! [`AsyncKeyEncryptionProvider`](lockbox::AsyncKeyEncryptionProvider), whose
//! futures make that call when polled; with a network HSM, seal and open on a
//! blocking pool (`tokio::task::spawn_blocking`) instead.
//!
//! The PIN is a [`SecretString`], kept for the provider's lifetime (to log
//! in again), zeroized on drop and never printed (`Debug` shows the module,
//! token and key only). The module is loaded and
//! `C_Initialize`d once per process and never finalized.
//!
//! ```no_run
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox_pkcs11::Pkcs11Kek;
//! use lockbox::secrecy::SecretString;
//!
//! let kek = Pkcs11Kek::builder("/usr/lib/softhsm/libsofthsm2.so")
//!     .token_label("lockbox")
//!     .pin(SecretString::from(std::env::var("HSM_PIN").unwrap_or_default()))
//!     .key_label("lockbox-kek")
//!     .open()?;
//! let ctx = lockbox::EncryptionContext::new().with_required("tenant", "acme")?;
//! let envelope = lockbox::seal(&kek, b"in the HSM's care", &ctx)?;
//! assert_eq!(lockbox::open(&kek, &envelope, &ctx)?, b"in the HSM's care");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::Ulong;
use lockbox::secrecy::{ExposeSecret, SecretString};
use lockbox::{
    Binding, DATA_KEY_LEN, DataKey, Error, KeyEncryptionProvider, KeyId, KeyVersion, ProviderError, ProviderErrorKind,
    ProviderIdentity, WrappedKey, WrappedKeyRef,
};
use zeroize::Zeroizing;

/// Provider id of [`Pkcs11Kek`] wrapped keys.
pub const PKCS11_PROVIDER_ID: &str = "lockbox.pkcs11";

/// Version byte that starts every PKCS#11 wrapped key.
const WRAP_V1: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const TAG_BITS: usize = 128;
/// version, IV, encrypted data key, tag.
const WRAPPED_LEN: usize = 1 + IV_LEN + DATA_KEY_LEN + TAG_LEN;
/// Length of an AES-256 key, as `CKA_VALUE_LEN` reports it.
const AES_256_LEN: usize = 32;
const DEFAULT_MAX_IDLE_SESSIONS: usize = 8;

/// Modules loaded and initialized in this process, by path. Never finalized:
/// other code in the process may share the module's (process-wide) state.
static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values (session lists, module lists) stay valid if a
    // holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn perr(kind: ProviderErrorKind) -> ProviderError {
    ProviderError::new(kind, PKCS11_PROVIDER_ID)
}

/// The lockbox error kind for a cryptoki error.
fn kind_of(e: &CkError) -> ProviderErrorKind {
    use ProviderErrorKind as K;
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => K::Authentication,
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::UserNotLoggedIn
            | RvError::UserPinNotInitialized => K::PermissionDenied,
            RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => K::KeyNotFound,
            RvError::KeyFunctionNotPermitted | RvError::KeyTypeInconsistent | RvError::KeySizeRange => K::KeyDisabled,
            RvError::MechanismInvalid | RvError::MechanismParamInvalid | RvError::FunctionNotSupported => {
                K::Unsupported
            }
            RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionClosed
            | RvError::SessionCount
            | RvError::SessionHandleInvalid
            | RvError::CryptokiNotInitialized
            | RvError::FunctionFailed => K::Unavailable,
            _ => K::Other,
        },
        CkError::LibraryLoading(_) => K::Unavailable,
        _ => K::Other,
    }
}

fn ck_err(e: CkError) -> ProviderError {
    perr(kind_of(&e)).with_source(e)
}

/// Maps an unwrap's cryptoki error. A `C_Decrypt` failing on the data is
/// an authentication failure. The standard's code for a bad tag is
/// `CKR_ENCRYPTED_DATA_INVALID`, but tokens differ: SoftHSM2 returns
/// `CKR_GENERAL_ERROR` and others `CKR_FUNCTION_FAILED`. Those two from
/// `C_Decrypt` itself (not from `C_DecryptInit`, which checks the key and
/// mechanism) count as authentication failures too: failing closed, with the
/// token's code kept as the source.
fn decrypt_error(e: CkError) -> ProviderError {
    if matches!(
        e,
        CkError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, Function::Decrypt)
    ) {
        perr(ProviderErrorKind::Authentication).with_source(e)
    } else {
        ck_err(e)
    }
}

/// Whether `e` comes from the token having forgotten the login: the error a
/// token gives for it, on a session that is now public.
fn login_lost(session: &Session, e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::UserNotLoggedIn | RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
            _
        )
    ) && session
        .get_session_info()
        .is_ok_and(|i| matches!(i.session_state(), SessionState::RoPublic | SessionState::RwPublic))
}

/// Whether a session can be reused after `e`: only the data errors after
/// which `C_Decrypt` has ended its operation.
fn session_survives(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange, _)
    )
}

/// How the KEK is found in the token.
#[derive(Clone, PartialEq, Eq)]
enum KeySelector {
    Label(String),
    Id(Vec<u8>),
}

impl fmt::Debug for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Label(l) => write!(f, "label {l:?}"),
            Self::Id(id) => write!(f, "id {}", hex(id)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        s.extend(char::from_digit(u32::from(b >> 4), 16));
        s.extend(char::from_digit(u32::from(b & 0x0f), 16));
    }
    s
}

/// Configures and opens a [`Pkcs11Kek`].
pub struct Pkcs11KekBuilder {
    module: PathBuf,
    token_label: Option<String>,
    slot: Option<u64>,
    pin: Option<SecretString>,
    key: Option<KeySelector>,
    max_idle_sessions: usize,
}

impl fmt::Debug for Pkcs11KekBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KekBuilder")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("slot", &self.slot)
            .field("pin", &self.pin.as_ref().map(|_| "[REDACTED]"))
            .field("key", &self.key)
            .finish()
    }
}

impl Pkcs11KekBuilder {
    /// Selects the token by its label (the usual choice: slot numbers can
    /// change between runs).
    #[must_use]
    pub fn token_label(mut self, label: impl Into<String>) -> Self {
        self.token_label = Some(label.into());
        self
    }

    /// Selects the token by slot id instead of label.
    #[must_use]
    pub fn slot(mut self, slot_id: u64) -> Self {
        self.slot = Some(slot_id);
        self
    }

    /// The user PIN. Held as a secret, zeroized when the provider drops.
    #[must_use]
    pub fn pin(mut self, pin: SecretString) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Finds the KEK by its `CKA_LABEL`.
    #[must_use]
    pub fn key_label(mut self, label: impl Into<String>) -> Self {
        self.key = Some(KeySelector::Label(label.into()));
        self
    }

    /// Finds the KEK by its `CKA_ID`.
    #[must_use]
    pub fn key_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.key = Some(KeySelector::Id(id.into()));
        self
    }

    /// How many idle sessions to keep for reuse (default 8; at least 1).
    /// More concurrent callers than this still work: extra sessions are
    /// opened and closed as needed.
    #[must_use]
    pub fn max_idle_sessions(mut self, n: usize) -> Self {
        self.max_idle_sessions = n.max(1);
        self
    }

    /// Loads the module, finds the token, logs in, finds the key and checks
    /// its attributes.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`]: no token, PIN or key was configured.
    /// - [`Error::KeyLoad`]: the module does not load, no token (or more than
    ///   one) has the label, more than one key matches, or the key is not a
    ///   private, sensitive, non-extractable AES-256 key usable for encrypt
    ///   and decrypt.
    /// - [`Error::Provider`] of kind [`PermissionDenied`](ProviderErrorKind::PermissionDenied)
    ///   for a wrong or locked PIN, [`KeyNotFound`](ProviderErrorKind::KeyNotFound)
    ///   if no key matches, [`Unavailable`](ProviderErrorKind::Unavailable) if
    ///   the token fails; the cryptoki error is the source.
    pub fn open(self) -> Result<Pkcs11Kek, Error> {
        let pin = self.pin.ok_or(Error::invalid_argument("a PKCS#11 PIN is required"))?;
        let selector = self
            .key
            .ok_or(Error::invalid_argument("a PKCS#11 key label or id is required"))?;
        let ctx = load_module(&self.module)?;
        let slot = find_slot(&ctx, self.token_label.as_deref(), self.slot)?;
        let token_label = ctx
            .get_token_info(slot)
            .map(|t| t.label().trim_end().to_string())
            .map_err(|e| Error::Provider(ck_err(e)))?;
        let anchor = ctx.open_ro_session(slot).map_err(|e| Error::Provider(ck_err(e)))?;
        login(&anchor, &pin).map_err(Error::Provider)?;
        let (key, key_id) = find_key(&anchor, &selector)?;
        Ok(Pkcs11Kek {
            ctx,
            slot,
            module: self.module,
            token_label,
            selector,
            key: Mutex::new(key),
            key_id,
            pin,
            _anchor: Mutex::new(anchor),
            idle: Mutex::new(Vec::new()),
            max_idle: self.max_idle_sessions,
        })
    }
}

fn load_module(path: &Path) -> Result<Pkcs11, Error> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut modules = lock(&MODULES);
    if let Some((_, ctx)) = modules.iter().find(|(p, _)| *p == canonical) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&canonical).map_err(|e| {
        Error::key_load(
            format!("cannot load the PKCS#11 module {}", path.display()),
            Some(Box::new(e)),
        )
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Error::Provider(ck_err(e))),
    }
    modules.push((canonical, ctx.clone()));
    Ok(ctx)
}

fn find_slot(ctx: &Pkcs11, label: Option<&str>, slot_id: Option<u64>) -> Result<Slot, Error> {
    let slots = ctx.get_slots_with_token().map_err(|e| Error::Provider(ck_err(e)))?;
    let mut found = Vec::new();
    for slot in slots {
        if let Some(id) = slot_id
            && slot.id() != id
        {
            continue;
        }
        if let Some(want) = label {
            let info = ctx.get_token_info(slot).map_err(|e| Error::Provider(ck_err(e)))?;
            if info.label().trim_end() != want {
                continue;
            }
        }
        found.push(slot);
    }
    let what = match (label, slot_id) {
        (None, None) => {
            return Err(Error::invalid_argument("a PKCS#11 token label or slot is required"));
        }
        (Some(l), _) => format!("token labelled {l:?}"),
        (None, Some(s)) => format!("token in slot {s}"),
    };
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Error::key_load(format!("no PKCS#11 {what}"), None)),
        _ => Err(Error::key_load(
            format!("more than one PKCS#11 {what}: select it by slot"),
            None,
        )),
    }
}

fn login(session: &Session, pin: &SecretString) -> Result<(), ProviderError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(ck_err(e)),
    }
}

fn find_key(session: &Session, selector: &KeySelector) -> Result<(ObjectHandle, KeyId), Error> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
    ];
    template.push(match selector {
        KeySelector::Label(l) => Attribute::Label(l.as_bytes().to_vec()),
        KeySelector::Id(id) => Attribute::Id(id.clone()),
    });
    let handles = session
        .find_objects(&template)
        .map_err(|e| Error::Provider(ck_err(e)))?;
    let key = match handles.as_slice() {
        [h] => *h,
        [] => return Err(Error::Provider(perr(ProviderErrorKind::KeyNotFound))),
        _ => {
            return Err(Error::key_load(
                format!("more than one AES key in the token has the {selector:?}"),
                None,
            ));
        }
    };
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| Error::Provider(ck_err(e)))?;
    let mut label = None;
    let mut id = None;
    let (mut private, mut sensitive, mut extractable) = (false, false, true);
    let (mut len, mut encrypt, mut decrypt) = (0usize, false, false);
    for a in attrs {
        match a {
            Attribute::Label(l) => label = Some(l),
            Attribute::Id(i) => id = Some(i),
            Attribute::Private(b) => private = b,
            Attribute::Sensitive(b) => sensitive = b,
            Attribute::Extractable(b) => extractable = b,
            Attribute::ValueLen(n) => len = usize::from(n),
            Attribute::Encrypt(b) => encrypt = b,
            Attribute::Decrypt(b) => decrypt = b,
            _ => {}
        }
    }
    let refuse = |why: &str| Error::key_load(format!("PKCS#11 key with {selector:?} refused: {why}"), None);
    if extractable {
        return Err(refuse(
            "it is extractable (CKA_EXTRACTABLE true); lockbox requires a key that cannot leave the token",
        ));
    }
    if !sensitive {
        return Err(refuse(
            "it is not sensitive (CKA_SENSITIVE false); lockbox requires a key whose value the token never reveals",
        ));
    }
    if !private {
        return Err(refuse(
            "it is a public object (CKA_PRIVATE false): anyone who can open a session on the token could use it \
             without the PIN",
        ));
    }
    if len != AES_256_LEN {
        return Err(refuse("it is not an AES-256 key (CKA_VALUE_LEN is not 32)"));
    }
    if !(encrypt && decrypt) {
        return Err(refuse("it does not allow both encrypt and decrypt"));
    }
    let label = label.and_then(|l| String::from_utf8(l).ok()).filter(|l| !l.is_empty());
    let key_id = match (label, id) {
        (Some(l), _) => KeyId::new(l),
        (None, Some(i)) if !i.is_empty() => KeyId::new(format!("id:{}", hex(&i))),
        _ => return Err(refuse("it has neither a label nor an id to name it by")),
    }
    .map_err(|_| refuse("its label is not a valid key id (1 to 255 bytes, no control characters)"))?;
    Ok((key, key_id))
}

/// A key-encryption key in a PKCS#11 token. See the [module docs](self).
pub struct Pkcs11Kek {
    ctx: Pkcs11,
    slot: Slot,
    module: PathBuf,
    token_label: String,
    selector: KeySelector,
    /// Replaced when a new login finds the key again.
    key: Mutex<ObjectHandle>,
    key_id: KeyId,
    pin: SecretString,
    /// Keeps the login alive while no operation runs. Never used for one.
    _anchor: Mutex<Session>,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
}

impl fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Kek")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("slot", &self.slot.id())
            .field("key", &self.selector)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Kek {
    /// Starts configuring a provider backed by the PKCS#11 module (shared
    /// library) at `module`.
    pub fn builder(module: impl AsRef<Path>) -> Pkcs11KekBuilder {
        Pkcs11KekBuilder {
            module: module.as_ref().to_path_buf(),
            token_label: None,
            slot: None,
            pin: None,
            key: None,
            max_idle_sessions: DEFAULT_MAX_IDLE_SESSIONS,
        }
    }

    /// The key id recorded in wrapped keys: the key's label, or `id:` and
    /// its hex `CKA_ID` if it has no label.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The key version: always 1 (PKCS#11 keys have no versions).
    pub fn key_version(&self) -> KeyVersion {
        KeyVersion(1)
    }

    /// The label of the token holding the key.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The id of the slot holding the token (for
    /// [`Pkcs11KekBuilder::slot`]; slot ids can change between runs).
    pub fn slot_id(&self) -> u64 {
        self.slot.id()
    }

    /// Runs `op` on an idle session (or a new one), logging in again once if
    /// the token says the process is not logged in. The pool's lock is held
    /// only to take and return a session.
    /// `map` turns the operation's cryptoki error into a provider error.
    fn with_session<T>(
        &self,
        mut op: impl FnMut(&Session, ObjectHandle) -> Result<T, CkError>,
        map: fn(CkError) -> ProviderError,
    ) -> Result<T, ProviderError> {
        let pooled = lock(&self.idle).pop();
        let session = match pooled {
            Some(s) => s,
            None => self.ctx.open_ro_session(self.slot).map_err(ck_err)?,
        };
        let key = *lock(&self.key);
        let mut r = op(&session, key);
        if let Err(e) = &r
            && login_lost(&session, e)
        {
            // The token forgot the login (restarted, logged out by other
            // code): log in again, find the key again (private objects'
            // handles lapse with the login), and try once more.
            login(&session, &self.pin)?;
            let key = self.refind_key(&session)?;
            r = op(&session, key);
        }
        let keep = match &r {
            Ok(_) => true,
            Err(e) => session_survives(e),
        };
        if keep {
            let mut idle = lock(&self.idle);
            if idle.len() < self.max_idle {
                idle.push(session);
            }
        }
        r.map_err(map)
    }

    /// Finds the key again after a new login; it must still have the same
    /// name and pass the same checks.
    fn refind_key(&self, session: &Session) -> Result<ObjectHandle, ProviderError> {
        let (key, key_id) = find_key(session, &self.selector).map_err(|e| match e {
            Error::Provider(p) => p,
            other => perr(ProviderErrorKind::KeyDisabled).with_source(other),
        })?;
        if key_id != self.key_id {
            return Err(perr(ProviderErrorKind::KeyNotFound));
        }
        *lock(&self.key) = key;
        Ok(key)
    }

    /// How many idle sessions the pool holds now (for monitoring).
    pub fn idle_sessions(&self) -> usize {
        lock(&self.idle).len()
    }
}

impl ProviderIdentity for Pkcs11Kek {
    fn provider_id(&self) -> &str {
        PKCS11_PROVIDER_ID
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        wrapped.is_for(PKCS11_PROVIDER_ID, self.key_id.as_str())
    }

    /// AES-256-GCM inside the token: symmetric.
    fn post_quantum(&self) -> lockbox::PostQuantum {
        lockbox::PostQuantum::Yes
    }
}

impl KeyEncryptionProvider for Pkcs11Kek {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        let mut iv = [0u8; IV_LEN];
        lockbox::provider::fill_random(&mut iv).map_err(|e| perr(ProviderErrorKind::Unavailable).with_source(e))?;
        let ct = self.with_session(
            |s, key| {
                let params = GcmParams::new(&mut iv, binding.as_bytes(), Ulong::try_from(TAG_BITS)?)?;
                s.encrypt(&Mechanism::AesGcm(params), key, dek.expose_secret())
            },
            ck_err,
        )?;
        if ct.len() != DATA_KEY_LEN.saturating_add(TAG_LEN) {
            return Err(perr(ProviderErrorKind::Other));
        }
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.push(WRAP_V1);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        WrappedKey::new(PKCS11_PROVIDER_ID, self.key_id.clone(), self.key_version(), out)
            .map_err(|e| perr(ProviderErrorKind::Other).with_source(e))
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        if !self.matches(wrapped) || wrapped.key_version() != self.key_version() {
            return Err(perr(ProviderErrorKind::KeyNotFound));
        }
        let auth = || perr(ProviderErrorKind::Authentication);
        let bytes: &[u8; WRAPPED_LEN] = wrapped.bytes().try_into().map_err(|_| auth())?;
        let (version, rest) = bytes.split_first().ok_or_else(auth)?;
        if *version != WRAP_V1 {
            return Err(auth());
        }
        let (iv, ct) = rest.split_at_checked(IV_LEN).ok_or_else(auth)?;
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| auth())?;
        let plain = self.with_session(
            |s, key| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, binding.as_bytes(), Ulong::try_from(TAG_BITS)?)?;
                s.decrypt(&Mechanism::AesGcm(params), key, ct).map(Zeroizing::new)
            },
            decrypt_error,
        )?;
        lockbox::hazmat::data_key_with(|dek| {
            dek.copy_from_slice(plain.get(..).filter(|p| p.len() == DATA_KEY_LEN).ok_or_else(auth)?);
            Ok(())
        })
    }
}
