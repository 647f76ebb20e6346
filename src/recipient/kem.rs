//! The two KEMs behind recipients, through HPKE (RFC 9180) base mode,
//! single-shot, with HKDF-SHA256 and ChaCha20-Poly1305 (`FORMAT.md` §15.2):
//! keys and cryptography only; the wrapped bytes' layout is
//! [`format::keywrap`](crate::format::keywrap).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::convert::Infallible;

use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::inout::InOutBuf;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::{TryCryptoRng, TryRng};
use zeroize::Zeroize;

use crate::error::Error;
use crate::format::TAG_LEN;
use crate::format::keywrap::{self, SEALED_KEY_LEN};
use crate::keys::{DATA_KEY_LEN, DataKey, os_random, rng_random};

/// Length of an identity's secret: an X25519 private key, or an X-Wing
/// decapsulation key (a seed).
pub(crate) const SECRET_LEN: usize = 32;
/// X25519 public key / encapsulated key length.
pub(crate) const X25519_LEN: usize = 32;
/// X-Wing ciphertext (encapsulated key) length.
pub(crate) const XWING_ENC_LEN: usize = 1120;

/// A fallible generator as the infallible RNG the `hpke` crate takes: a
/// failure is recorded (and the bytes zeroed) instead of panicking, and the
/// caller discards the output and reports [`Error::Random`]. `fill` is the
/// OS generator, or a caller's RNG (known-answer tests).
pub(crate) struct Recording<F> {
    fill: F,
    failed: bool,
}

impl<F: FnMut(&mut [u8]) -> Result<(), Error>> Recording<F> {
    pub(crate) fn new(fill: F) -> Self {
        Self { fill, failed: false }
    }

    /// `value` unless the generator failed while it was produced.
    pub(crate) fn check<T>(self, value: Result<T, Error>) -> Result<T, Error> {
        if self.failed { Err(Error::Random) } else { value }
    }
}

impl<F: FnMut(&mut [u8]) -> Result<(), Error>> TryRng for Recording<F> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if (self.fill)(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
        Ok(())
    }
}

impl<F: FnMut(&mut [u8]) -> Result<(), Error>> TryCryptoRng for Recording<F> {}

/// A KEM's public key (boxed: an X-Wing key with its expanded ML-KEM part is
/// several KiB).
#[derive(Clone)]
pub(crate) enum PublicKey {
    X25519(Box<<X25519HkdfSha256 as Kem>::PublicKey>),
    XWing(Box<<XWing as Kem>::PublicKey>),
}

/// A KEM's private key, on the heap so it is never moved (zeroized on drop
/// by the `hpke`, `x25519-dalek` and `x-wing` crates).
pub(crate) enum SecretKey {
    X25519(Box<<X25519HkdfSha256 as Kem>::PrivateKey>),
    XWing(Box<<XWing as Kem>::PrivateKey>),
}

/// Why a public key's bytes were refused.
pub(crate) enum BadKey {
    Length,
    Invalid,
}

fn to_bad_key(e: hpke::HpkeError) -> BadKey {
    match e {
        hpke::HpkeError::IncorrectInputLength(..) => BadKey::Length,
        _ => BadKey::Invalid,
    }
}

impl PublicKey {
    /// An X25519 public key: 32 bytes whose Diffie-Hellman output is not all
    /// zero (a low-order point would make every wrap fail), checked with one
    /// trial encapsulation.
    pub(crate) fn x25519(bytes: &[u8]) -> Result<Self, BadKey> {
        let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(bytes).map_err(to_bad_key)?;
        let mut rng = Recording::new(os_random);
        X25519HkdfSha256::encap_with_rng(&pk, None, &mut rng).map_err(|_| BadKey::Invalid)?;
        Ok(Self::X25519(Box::new(pk)))
    }

    /// An X-Wing encapsulation key: 1216 bytes whose ML-KEM-768 part passes
    /// FIPS 203's modulus check.
    pub(crate) fn xwing(bytes: &[u8]) -> Result<Self, BadKey> {
        let pk = <XWing as Kem>::PublicKey::from_bytes(bytes).map_err(to_bad_key)?;
        Ok(Self::XWing(Box::new(pk)))
    }

    /// The serialized key.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        match self {
            Self::X25519(pk) => pk.to_bytes().to_vec(),
            Self::XWing(pk) => pk.to_bytes().to_vec(),
        }
    }

    /// Seals `dek` to this key: `enc || ciphertext || tag` in the
    /// recipient-wrap layout, with the OS generator's randomness.
    pub(crate) fn wrap(&self, dek: &DataKey, info: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        self.wrap_with(dek, info, aad, Recording::new(os_random))
    }

    /// As [`wrap`](Self::wrap), drawing the KEM's randomness from `rng`:
    /// for known-answer tests only.
    pub(crate) fn wrap_with_rng<R>(&self, dek: &DataKey, info: &[u8], aad: &[u8], rng: &mut R) -> Result<Vec<u8>, Error>
    where
        R: TryCryptoRng + ?Sized,
    {
        self.wrap_with(dek, info, aad, Recording::new(|b: &mut [u8]| rng_random(rng, b)))
    }

    fn wrap_with<F>(&self, dek: &DataKey, info: &[u8], aad: &[u8], mut rng: Recording<F>) -> Result<Vec<u8>, Error>
    where
        F: FnMut(&mut [u8]) -> Result<(), Error>,
    {
        let out = match self {
            Self::X25519(pk) => seal::<X25519HkdfSha256>(pk, dek, info, aad, &mut rng),
            Self::XWing(pk) => seal::<XWing>(pk, dek, info, aad, &mut rng),
        };
        rng.check(out)
    }
}

/// HPKE base-mode single-shot seal of the data key: the key is copied into
/// a stack buffer and encrypted there in place (so what is left is
/// ciphertext); on failure the buffer is zeroized.
fn seal<K: Kem>(
    pk: &K::PublicKey,
    dek: &DataKey,
    info: &[u8],
    aad: &[u8],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<Vec<u8>, Error> {
    use secrecy::ExposeSecret;
    let mut sealed = [0u8; SEALED_KEY_LEN];
    let (key, tag_out) = sealed.split_at_mut(DATA_KEY_LEN);
    key.copy_from_slice(dek.expose_secret());
    let r = hpke::single_shot_seal_inout_detached_with_rng::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeS::Base,
        pk,
        info,
        InOutBuf::from(&mut *key),
        aad,
        rng,
    );
    let (enc, tag) = match r {
        Ok(v) => v,
        Err(_) => {
            sealed.zeroize();
            return Err(Error::InvalidArgument {
                what: "HPKE encapsulation failed (invalid recipient key)",
            });
        }
    };
    if tag_out.len() != TAG_LEN {
        sealed.zeroize();
        return Err(Error::InvalidArgument {
            what: "AEAD tag length",
        });
    }
    tag.write_exact(tag_out);
    let mut enc_bytes = alloc::vec![0u8; <K::EncappedKey as Serializable>::size()];
    enc.write_exact(&mut enc_bytes);
    Ok(keywrap::encode_recipient_wrap(&enc_bytes, &sealed))
}

/// HPKE base-mode single-shot open of `sealed` (ciphertext and tag) into a
/// new data key, decrypted in place where the key lives. `Err(())` for every
/// failure (wrong key, wrong binding, tampered bytes): deliberately uniform.
fn open<K: Kem>(
    sk: &K::PrivateKey,
    enc: &[u8],
    sealed: &[u8; SEALED_KEY_LEN],
    info: &[u8],
    aad: &[u8],
) -> Result<DataKey, ()> {
    let enc = K::EncappedKey::from_bytes(enc).map_err(|_| ())?;
    let (ct, tag) = sealed.split_at(DATA_KEY_LEN);
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(tag).map_err(|_| ())?;
    DataKey::try_init_with(|key| {
        key.copy_from_slice(ct);
        hpke::single_shot_open_inout_detached::<ChaCha20Poly1305, HkdfSha256, K>(
            &OpModeR::Base,
            sk,
            &enc,
            info,
            InOutBuf::from(&mut key[..]),
            aad,
            &tag,
        )
        .map_err(|_| ())
    })
}

impl SecretKey {
    /// The private key of `kind` (as `xwing`) from its 32 secret bytes, and
    /// its public key.
    pub(crate) fn new(xwing: bool, secret: &[u8; SECRET_LEN]) -> Result<(Self, PublicKey), BadKey> {
        if xwing {
            let sk = Box::new(<XWing as Kem>::PrivateKey::from_bytes(secret).map_err(to_bad_key)?);
            let pk = XWing::sk_to_pk(&sk);
            Ok((Self::XWing(sk), PublicKey::XWing(Box::new(pk))))
        } else {
            let sk = Box::new(<X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(secret).map_err(to_bad_key)?);
            let pk = X25519HkdfSha256::sk_to_pk(&sk);
            Ok((Self::X25519(sk), PublicKey::X25519(Box::new(pk))))
        }
    }

    /// Opens a recipient wrap addressed to this key.
    pub(crate) fn unwrap(&self, wrapped: &[u8], info: &[u8], aad: &[u8]) -> Result<DataKey, UnwrapFailure> {
        match self {
            Self::X25519(sk) => {
                let w = keywrap::parse_recipient_wrap(wrapped, X25519_LEN).map_err(UnwrapFailure::Malformed)?;
                open::<X25519HkdfSha256>(sk, w.enc, w.sealed, info, aad).map_err(|()| UnwrapFailure::Authentication)
            }
            Self::XWing(sk) => {
                let w = keywrap::parse_recipient_wrap(wrapped, XWING_ENC_LEN).map_err(UnwrapFailure::Malformed)?;
                open::<XWing>(sk, w.enc, w.sealed, info, aad).map_err(|()| UnwrapFailure::Authentication)
            }
        }
    }
}

/// Why an unwrap failed: the bytes' structure, or authentication.
pub(crate) enum UnwrapFailure {
    Malformed(keywrap::MalformedWrap),
    Authentication,
}
