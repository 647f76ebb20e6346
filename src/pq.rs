//! No silent downgrade: which wraps are post-quantum secure, and the rule that
//! an envelope does not mix classical public-key wraps with post-quantum ones
//! unless the caller opts in.
//!
//! An envelope opens with *any one* of its wrapped keys, so it is only as
//! strong as its weakest wrap. A wrap under a symmetric key (a local KEK, a
//! keyring, an HSM or KMS key) or a post-quantum KEM (X-Wing) resists an
//! attacker with a quantum computer; a wrap to an X25519 public key does not
//! (Shor's algorithm recovers the secret key from the public one, and with
//! it the data key from any envelope that was ever recorded). Adding one
//! X25519 recipient to an otherwise post-quantum envelope quietly makes the
//! whole envelope classical. Sealers ([`Sealer`](crate::Sealer),
//! [`AsyncSealer`](crate::AsyncSealer)) and rewrappers
//! ([`Rewrapper`](crate::Rewrapper), [`AsyncRewrapper`](crate::AsyncRewrapper))
//! therefore refuse to produce such an envelope with
//! [`Error::QuantumDowngrade`] unless the caller calls
//! `allow_classical_with_post_quantum()`.

use alloc::string::ToString;
use core::fmt;

use crate::error::Error;
use crate::keys::WrappedKeyRef;

/// Whether a wrap (or a whole envelope) resists an attacker with a
/// cryptographically relevant quantum computer.
///
/// Reported by providers ([`ProviderIdentity::post_quantum`](crate::ProviderIdentity::post_quantum))
/// and by [`EnvelopeInfo::post_quantum`](crate::EnvelopeInfo::post_quantum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PostQuantum {
    /// Post-quantum secure: a symmetric key-encryption key (AES-256, a KMS or
    /// HSM key, a passphrase through Argon2id) or a post-quantum or hybrid
    /// KEM (X-Wing).
    Yes,
    /// Classical public-key cryptography (X25519): a quantum computer that
    /// breaks the public key recovers every data key ever wrapped to it.
    No,
    /// Not stated: a provider that does not say (the trait's default), or a
    /// wrapped key whose provider id lockbox does not know.
    Unknown,
}

impl PostQuantum {
    /// The weaker of two statements about wraps that sit in one envelope:
    /// `No` if either is `No`, else `Unknown` if either is `Unknown`, else `Yes`.
    #[must_use]
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::No, _) | (_, Self::No) => Self::No,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            (Self::Yes, Self::Yes) => Self::Yes,
        }
    }
}

impl fmt::Display for PostQuantum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yes => "post-quantum",
            Self::No => "classical",
            Self::Unknown => "unknown",
        })
    }
}

/// What lockbox knows of the wrapped keys of a provider id it has never met
/// as a provider object: the ids of the providers it ships (in this crate and
/// in the `lockbox-*` provider crates). Every other id is `Unknown`.
pub(crate) fn of_provider_id(provider_id: &str) -> PostQuantum {
    match provider_id {
        // Symmetric key-encryption keys: AES-256-GCM locally, in a keyring
        // or a PKCS#11 token; a symmetric KMS key; a Transit AEAD key.
        "lockbox.local" | "lockbox.keyring" | "lockbox.pkcs11" | "aws-kms" | "vault-transit" => PostQuantum::Yes,
        // Argon2id and ChaCha20-Poly1305: symmetric (see the provider).
        "lockbox.passphrase" => PostQuantum::Yes,
        // HPKE with X-Wing (ML-KEM-768 + X25519).
        "lockbox.xwing" => PostQuantum::Yes,
        // HPKE with DHKEM(X25519).
        "lockbox.x25519" => PostQuantum::No,
        _ => PostQuantum::Unknown,
    }
}

/// The statement for an envelope whose wrapped keys are `wrapped`.
pub(crate) fn of_envelope<'a>(wrapped: impl Iterator<Item = WrappedKeyRef<'a>>) -> PostQuantum {
    wrapped.fold(PostQuantum::Yes, |acc, w| acc.and(of_provider_id(w.provider_id())))
}

/// Tracks the wraps that go into one envelope and refuses the first mix of a
/// classical wrap with a post-quantum one (unless allowed). Borrows the
/// provider ids: the seal hot path allocates nothing here; only a refusal
/// copies them into its error.
pub(crate) struct MixCheck<'a> {
    allow: bool,
    classical: Option<&'a str>,
    post_quantum: Option<&'a str>,
}

impl<'a> MixCheck<'a> {
    /// A check that refuses mixes unless `allow` (the caller's opt-in).
    pub(crate) fn new(allow: bool) -> Self {
        Self {
            allow,
            classical: None,
            post_quantum: None,
        }
    }

    /// Adds one wrap, made by `provider_id`, whose status is `pq`. `Unknown`
    /// wraps are neither: they cannot be told apart, and refusing them would
    /// refuse every provider that predates the statement.
    pub(crate) fn add(&mut self, provider_id: &'a str, pq: PostQuantum) -> Result<(), Error> {
        let slot = match pq {
            PostQuantum::Yes => &mut self.post_quantum,
            PostQuantum::No => &mut self.classical,
            PostQuantum::Unknown => return Ok(()),
        };
        slot.get_or_insert(provider_id);
        match (self.classical, self.post_quantum) {
            (Some(c), Some(p)) if !self.allow => Err(Error::QuantumDowngrade {
                classical: c.to_string(),
                post_quantum: p.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Adds the `allow_classical_with_post_quantum` opt-in to `$ty`, whose flag
/// is `self.$($field).+` (written once for sealers and rewrappers).
macro_rules! mix_option {
    ($ty:ident, $($field:ident).+) => {
        impl $ty<'_> {
            /// Allows an envelope to mix classical public-key wraps (X25519
            /// recipients) with post-quantum ones (symmetric keys, X-Wing
            /// recipients, passphrases), which is otherwise refused with
            /// [`Error::QuantumDowngrade`](crate::Error::QuantumDowngrade).
            ///
            /// An envelope opens with any one of its wrapped keys: with a
            /// classical wrap in it, an attacker who records the envelope
            /// today and has a quantum computer later recovers the data key
            /// from that wrap, whatever the other wraps are. Opt in only when
            /// that is acceptable (a migration period, say). See
            /// [`PostQuantum`](crate::PostQuantum).
            #[must_use]
            pub fn allow_classical_with_post_quantum(mut self) -> Self {
                self.$($field).+ = true;
                self
            }
        }
    };
}

pub(crate) use mix_option;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_is_the_weakest() {
        use PostQuantum::*;
        assert_eq!(Yes.and(Yes), Yes);
        assert_eq!(Yes.and(Unknown), Unknown);
        assert_eq!(Unknown.and(No), No);
        assert_eq!(No.and(Yes), No);
    }

    #[test]
    fn mixes_are_refused_unless_allowed() {
        let mut m = MixCheck::new(false);
        m.add("a", PostQuantum::Yes).unwrap();
        m.add("u", PostQuantum::Unknown).unwrap();
        m.add("b", PostQuantum::Yes).unwrap();
        let e = m.add("c", PostQuantum::No).unwrap_err();
        assert!(matches!(e, Error::QuantumDowngrade { ref classical, ref post_quantum }
            if classical == "c" && post_quantum == "a"));
        let mut m = MixCheck::new(true);
        m.add("a", PostQuantum::No).unwrap();
        m.add("b", PostQuantum::Yes).unwrap();
        let mut m = MixCheck::new(false);
        m.add("a", PostQuantum::No).unwrap();
        m.add("b", PostQuantum::No).unwrap();
        m.add("u", PostQuantum::Unknown).unwrap();
    }
}
