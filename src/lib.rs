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
//!   another context.
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
//! offer in-place variants that reuse the caller's buffer.
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
//! - `tokio`: `AsyncEncryptor` / `AsyncDecryptor` over tokio's `AsyncWrite` /
//!   `AsyncRead` (the io traits only; lockbox starts no runtime).
//! - `aws-lc`: AES-256-GCM and ChaCha20-Poly1305 on AWS-LC ([`Backend`]),
//!   byte-identical envelopes, several times faster AES-GCM; needs a C
//!   compiler.
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

#[cfg(feature = "std")]
pub mod cache;
mod context;
mod crypto;
mod engine;
mod error;
mod format;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod hazmat;
mod inspect;
#[cfg(feature = "std")]
mod io;
pub mod keygroup;
pub mod keyring;
mod keys;
mod local;
mod open;
mod options;
pub mod provider;
mod rewrap;
#[cfg(feature = "std")]
pub mod rotation;
mod seal;
mod suite;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;

pub use context::{ContextEntry, EncryptionContext, Storage};
pub use error::{BoxError, Error, LimitKind, ProviderError, ProviderErrorKind};
pub use format::binding::{Binding, BindingBuf};
pub use format::{Limits, MESSAGE_ID_LEN, SegmentSize};
pub use inspect::{EnvelopeInfo, ciphertext_range, inspect, inspect_with_limits};
#[cfg(feature = "std")]
pub use io::{Decryptor, Encryptor, RawHeader, UnlockedHeader};
pub use keys::{DATA_KEY_LEN, DataKey, KeyId, KeyVersion, WrappedKey, WrappedKeyRef};
pub use local::{LOCAL_KEK_LEN, LOCAL_PROVIDER_ID, LocalKek};
pub use open::{AsyncOpener, Opener, open};
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
