//! Algorithm suites.

use core::fmt;

/// The AEAD that protects an envelope's payload and header.
///
/// Every suite uses a 256-bit key derived per message (see `FORMAT.md`), so
/// nonces never repeat under a key; the choice is about platform speed and
/// policy, not safety margins. Suites are `#[non_exhaustive]`: new ones may be
/// added without a new format version, because each envelope records its suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Suite {
    /// AES-256-GCM. Fastest on CPUs with AES and carry-less multiply
    /// instructions (x86-64 with AES-NI, ARMv8 with the crypto extensions).
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439). Fast and constant-time everywhere,
    /// including CPUs without AES instructions.
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305 (24-byte nonces), for policies that mandate it.
    XChaCha20Poly1305,
}

impl Suite {
    /// Every suite this release implements, in id order.
    pub const ALL: [Suite; 3] = [Self::Aes256Gcm, Self::ChaCha20Poly1305, Self::XChaCha20Poly1305];

    /// The suite's id byte in the envelope header.
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
            Self::XChaCha20Poly1305 => 3,
        }
    }

    /// The suite with header id `id`, if this release implements it.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::ChaCha20Poly1305),
            3 => Some(Self::XChaCha20Poly1305),
            _ => None,
        }
    }

    /// The suite's name, as used in `FORMAT.md` and test vectors.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "AES-256-GCM",
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Self::XChaCha20Poly1305 => "XChaCha20-Poly1305",
        }
    }

    /// The suite with name `name` (as printed by [`Suite::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which implementation runs the payload AEAD. Envelopes are byte-identical
/// whichever backend sealed or opens them; the choice is speed and platform.
/// `AwsLc` is not a FIPS mode: lockbox links the non-FIPS AWS-LC build and
/// uses `aws-lc-rs` calls its FIPS mode does not allow.
///
/// The default is [`AwsLc`](Self::AwsLc) when the `aws-lc` feature is on,
/// [`RustCrypto`](Self::RustCrypto) otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The RustCrypto crates (`aes-gcm`, `chacha20poly1305`): pure Rust,
    /// `no_std`, every suite. Always available.
    RustCrypto,
    /// AWS-LC through `aws-lc-rs` for AES-256-GCM and ChaCha20-Poly1305
    /// (XChaCha20-Poly1305 stays on RustCrypto, which AWS-LC does not
    /// implement). `Opener::open_in_place` also runs on RustCrypto, because it
    /// promises to leave a failed envelope byte for byte as it was, and AWS-LC
    /// overwrites a buffer that fails to open.
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Default for Backend {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Self::AwsLc;
        #[cfg(not(feature = "aws-lc"))]
        return Self::RustCrypto;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_id(s.id()), Some(s));
            assert_eq!(Suite::from_name(s.name()), Some(s));
        }
        assert_eq!(Suite::from_id(0), None);
        assert_eq!(Suite::from_id(4), None);
        assert_eq!(Suite::from_name("AES-128-GCM"), None);
    }
}
