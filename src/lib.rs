//! # lockbox: envelope encryption and key management
//!
//! (The package is `lockbox-envelope`; the library is imported as `lockbox`.)
//!
//! lockbox seals data into self-describing, versioned envelopes: every message
//! gets a fresh data key (DEK) from the OS CSPRNG, the payload is encrypted
//! with a key derived from it, and the DEK is wrapped by a key-encryption key
//! (KEK) held by a [`KeyEncryptionProvider`]: a local key, a keyring, an HSM or
//! a cloud KMS. The plaintext DEK is zeroized as soon as it has been used.
//!
//! Safe by default:
//!
//! - **Authenticated encryption only**, and no plaintext is released before it
//!   authenticated: a failed open returns an error and nothing else.
//! - **Key commitment**: an envelope opens under exactly one data key.
//! - **Context binding**: the [`EncryptionContext`] is authenticated by the
//!   envelope *and* bound into every wrapped data key, so neither opens under
//!   another context. Opening is **exact** by default: the caller names the
//!   envelope's whole context ([`Opener::lenient_context`] opts out and
//!   returns the context to check).
//! - **Every byte that routes decryption is authenticated**: version, suite,
//!   segment size, message id, context and wrapped keys (the header tag).
//! - **Strict, bounded parsing** with configurable [`Limits`]; bad input is a
//!   typed [`Error`], never a panic.
//! - **Secrets are opaque**: zeroized on drop, redacted in `Debug`, reachable
//!   only through explicitly named accessors; raw import lives in [`hazmat`].
//! - `#![forbid(unsafe_code)]`; the core builds with `no_std` + `alloc`.
//!
//! The envelope format is specified byte by byte in `FORMAT.md`, with frozen
//! test vectors that every release must open.
//!
//! ## Quick start
//!
//! ```
//! # fn main() -> Result<(), lockbox::Error> {
//! use lockbox::{EncryptionContext, LocalKek};
//!
//! // A local KEK. In production load it (`LocalKek::from_file`,
//! // `LocalKek::from_env`) or use an HSM / KMS provider.
//! let kek = LocalKek::generate()?;
//!
//! // Context: stored entries are readable in the header; required ones are
//! // authenticated but must be supplied again to open.
//! let ctx = EncryptionContext::new()
//!     .with("purpose", "invoice")?
//!     .with_required("tenant", "acme-corp")?;
//!
//! let envelope = lockbox::seal(&kek, b"the quarterly numbers", &ctx)?;
//!
//! // Anyone can see how the envelope is routed; nothing here is trusted yet.
//! let info = lockbox::inspect(&envelope)?;
//! assert_eq!(info.wrapped_keys()[0].key_id(), kek.key_id());
//!
//! let plaintext = lockbox::open(&kek, &envelope, &ctx)?;
//! assert_eq!(plaintext, b"the quarterly numbers");
//!
//! // The wrong tenant cannot open it.
//! let other = EncryptionContext::new().with_required("tenant", "evil-corp")?;
//! assert!(lockbox::open(&kek, &envelope, &other).is_err());
//! # Ok(()) }
//! ```
//!
//! [`Sealer`] and [`Opener`] choose the suite, segment size and limits, and
//! offer forms that write into a slice the caller owns and reuses
//! ([`Sealer::seal_into`], [`Opener::open_into`]: no allocation, no
//! zero-filling) and in-place forms.
//!
//! ## What an envelope proves, and what it does not
//!
//! An envelope that opens has not changed since it was sealed with its data
//! key, and one of your providers unwrapped that key under your context
//! (`FORMAT.md` §13.1). It does **not** authenticate the sender:
//!
//! - any holder of one KEK of a multi-key envelope (a recovery key, another
//!   region) can create envelopes that the other key holders accept; there is
//!   no signature (the AWS Encryption SDK adds one in its signing suites, and
//!   age documents the same property). Sign outside lockbox, or give each
//!   sender its own KEK, when readers must know who sealed;
//! - a leaked data key plus its wrapped key lets anyone seal new envelopes
//!   under that context: re-encrypt after a data-key leak;
//! - the values of [required](Storage::Required) context entries are
//!   authenticated only through the wrapped keys, so a sealer with wrap access
//!   can make one envelope open under two different required values (stored
//!   values have one); a future format version may authenticate them in the
//!   header;
//! - the errors tell "no wrapped key unwrapped under your context and
//!   providers" ([`Error::NoProviderCouldUnwrap`], also for a wrong required
//!   value) from "a key unwrapped, but the envelope is not what it claims"
//!   ([`Error::Authentication`]).
//!
//! ## Keyrings, rotation and the key lifecycle
//!
//! A [`keyring::Keyring`] is a provider holding versioned KEKs, stored
//! encrypted under a master provider (`KEYRING.md`): staged or one-call
//! rotation, a rotation policy, disable / destroy with tombstones, compromise
//! handling with a migration provider for rewrap and re-encrypt, atomic
//! saves safe against concurrent writers, and an audit hook. See the
//! [`keyring`] module and `examples/rotation.rs`.
//!
//! [`Rewrapper`] moves envelopes to new KEKs without touching their payload
//! (rewrap); [`Reencryptor`] gives them a new data key and payload
//! (re-encrypt); both also work on streams and batches.
//!
//! At scale, [`rotation`] takes a census of a store's envelopes (no key
//! needed) and runs resumable bulk migrations over a directory or object
//! storage, with lazy upgrade on read. [`Sealer::quorum`] seals when `k` of
//! several providers wrap, and [`keygroup`] needs `k` of `n` members to open.
//!
//! ## Features
//!
//! - `std` (default): loading local KEKs from files and environment variables,
//!   streaming [`Encryptor`] / [`Decryptor`], parallel segments, keyring files,
//!   and the data-key cache ([`cache::CachingProvider`]). Without it the crate
//!   is `no_std` + `alloc`; on targets without an OS, configure getrandom's
//!   custom backend to supply randomness.
//! - `tokio`: [`tokio::Encryptor`] / [`tokio::Decryptor`] over tokio's
//!   `AsyncWrite` / `AsyncRead` / `AsyncSeek` (the io traits only; lockbox
//!   starts no runtime).
//! - `tracing`: [`audit::TracingSink`], audit events as `tracing` events.
//! - `aws-lc`: AES-256-GCM and ChaCha20-Poly1305 on AWS-LC ([`Backend`]),
//!   byte-identical envelopes, several times faster AES-GCM; needs a C
//!   compiler.
//! - `recipients`: public-key recipients and identities (`recipient`):
//!   X-Wing (post-quantum, the default) and X25519 over HPKE; anyone holding
//!   a recipient can seal to it (no sender authentication).
//! - `passphrase`: passphrase wraps with Argon2id (`passphrase`).
//! - `secrets`: encrypted secrets files, dotenv and JSON (`secrets`,
//!   `SECRETS.md`): values bound to their names and file, a whole-file
//!   authenticator, update keys vs rotate, three-way merge, loading into
//!   `SecretString`s.
//! - `fernet`: open Fernet tokens (and MultiFernet key lists) and migrate
//!   them to envelopes (`fernet`).
//!
//! [`token`] (always built) makes hex, URL-safe base64 and raw tokens, and
//! Fernet keys, from the OS CSPRNG.
//!
//! Sealers refuse to mix classical public-key wraps with post-quantum ones
//! unless told to: see [`PostQuantum`].
//!
//! ## Providers in their own crates
//!
//! Key stores that need an SDK or a system library are separate crates,
//! built on the public provider API ([`provider`]) alone, exactly as a
//! third-party provider would be:
//!
//! - `lockbox-pkcs11`: `Pkcs11Kek`, a KEK that never leaves a PKCS#11 token
//!   (an HSM; SoftHSM2 for tests), through `cryptoki`.
//! - `lockbox-aws-kms`: `AwsKms`, AWS KMS as an async provider (`Encrypt` /
//!   `Decrypt` / `GenerateDataKey` / `ReEncrypt`).
//! - `lockbox-vault`: `VaultTransit`, Vault / OpenBao Transit as an async
//!   provider, with server-side rewrap.
//! - `lockbox-testing`: the conformance suite every provider should pass (a
//!   dev-dependency).
//!
//! ## Blocking and async providers
//!
//! [`AsyncSealer`], [`AsyncOpener`], [`AsyncRewrapper`] and
//! [`AsyncReencryptor`] take [`AsyncKeyEncryptionProvider`]s (network key
//! stores; every blocking provider is one too) and produce and accept the same
//! envelopes as [`Sealer`], [`Opener`], [`Rewrapper`] and [`Reencryptor`]:
//! both are thin drivers over one engine, so they cannot drift. lockbox never
//! calls `block_on`. Streams separate the key phase from the I/O
//! ([`SealedHeader`], [`RawHeader`], [`UnlockedHeader`]), so either kind of
//! provider streams to `std::io` or tokio. The composites work with both:
//! [`cache::CachingProvider`] / [`cache::AsyncCachingProvider`], and keyrings
//! under a blocking or an async master (`save` / `save_async`, ...).
//!
//! ## Access control and audit
//!
//! [`access`] gives out less than a whole provider: capability handles that
//! can only seal, only open or only rewrap ([`access::SealOnly`], ...), and
//! grants constrained by encryption context, operation, validity window and
//! number of uses ([`access::Grant`]). [`audit`] records every provider call
//! and every seal and open, failures and refusals included, to a sink: in
//! memory, `tracing`, or a hash-chained JSON-lines file with a verifier.
//! [`revocation::report`] lists the envelopes a key version still protects.
//! See `examples/access_control.rs`.
//!
//! [`AsyncSealer`] and [`AsyncOpener`] take
//! [`AsyncKeyEncryptionProvider`]s (network key stores) and produce the same
//! envelopes as [`Sealer`] and [`Opener`]; lockbox never calls `block_on`.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
#[macro_use]
extern crate std;

pub mod access;
pub mod audit;
#[cfg(feature = "std")]
pub mod cache;
mod context;
mod crypto;
mod engine;
mod error;
#[cfg(feature = "fernet")]
#[cfg_attr(docsrs, doc(cfg(feature = "fernet")))]
pub mod fernet;
#[cfg(feature = "std")]
pub(crate) mod files;
mod format;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod hazmat;
mod inspect;
#[cfg(feature = "std")]
mod io;
mod json;
pub mod keygroup;
pub mod keyring;
mod keys;
mod local;
mod open;
mod options;
#[cfg(feature = "passphrase")]
#[cfg_attr(docsrs, doc(cfg(feature = "passphrase")))]
pub mod passphrase;
mod pq;
pub mod provider;
#[cfg(feature = "recipients")]
#[cfg_attr(docsrs, doc(cfg(feature = "recipients")))]
pub mod recipient;
pub mod revocation;
mod rewrap;
#[cfg(feature = "std")]
pub mod rotation;
mod seal;
#[cfg(feature = "std")]
mod secret_file;
#[cfg(feature = "secrets")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets")))]
pub mod secrets;
mod suite;
pub mod token;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

pub use context::{ContextEntry, EncryptionContext, Storage};
pub use error::{BoxError, Error, FileProblem, KeyStringError, LimitKind, ProviderError, ProviderErrorKind};
pub use format::binding::{Binding, BindingBuf};
pub use format::{Limits, MESSAGE_ID_LEN, SegmentSize};
pub use inspect::{EnvelopeInfo, ciphertext_range, inspect};
#[cfg(feature = "std")]
pub use io::{Decryptor, Encryptor, RawHeader, UnlockedHeader};
pub use keys::{DATA_KEY_LEN, DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef};
pub use local::{LOCAL_KEK_LEN, LOCAL_PROVIDER_ID, LocalKek};
pub use open::{AsyncOpener, Opener, open};
pub use pq::PostQuantum;
pub use provider::{AsyncKeyEncryptionProvider, BoxFuture, DataKeyRequest, KeyEncryptionProvider, ProviderIdentity};
pub use rewrap::{AsyncReencryptor, AsyncRewrapper, Keep, NewHeader, Reencryptor, Rewrapper};
#[cfg(feature = "std")]
pub use seal::SealedHeader;
pub use seal::{AsyncSealer, Sealer, WrapFailure, seal};
pub use suite::{Backend, Suite};
/// Re-exported so callers can name [`ExposeSecret`](secrecy::ExposeSecret) and
/// pass their own RNGs without adding these crates themselves.
pub use {rand_core, secrecy};

/// The README's code, compiled as a doctest so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
