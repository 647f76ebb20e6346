//! Known-answer tests of the KEMs behind recipients, from their specs
//! (`tests/vectors/recipients/kats/`, each file naming its source):
//!
//! - RFC 9180 A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!   ChaCha20Poly1305, base mode): the `hpke` crate reproduces the key pair,
//!   `enc`, and every ciphertext; lockbox's X25519 identity built from `skRm`
//!   has the public key `pkRm`, and its wrap drawing `ikmE` as randomness
//!   produces exactly `enc`.
//! - draft-connolly-cfrg-xwing-kem's vectors: seed to key pair, encapsulation
//!   and decapsulation through the `x-wing` crate; lockbox's X-Wing identity
//!   from each seed has the draft's public key, and its wrap with `eseed`
//!   produces the draft's ciphertext as `enc`.
//! - HPKE with X-Wing (KEM 0x647a), HKDF-SHA256, ChaCha20Poly1305: the
//!   `hpke` crate opens the vector's ciphertexts; lockbox's identity from
//!   `skRm` has `pkRm`, and its wrap with `ikmE` produces `enc`.
#![cfg(feature = "recipients")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::convert::Infallible;
use std::path::Path;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::recipient::RecipientKind;
use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::{BindingBuf, EncryptionContext, Suite, hazmat};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/recipients/kats")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// Serves the given bytes, then fails (a test that draws more than the spec
/// says fails loudly).
struct Fixed(Vec<u8>);

impl TryRng for Fixed {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "drew more randomness than the vector has");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl TryCryptoRng for Fixed {}

fn identity(kind: RecipientKind, sk: &[u8]) -> lockbox::recipient::Identity {
    let bytes: [u8; 32] = sk.try_into().unwrap();
    hazmat::identity_from_bytes(kind, SecretBox::new(Box::new(bytes))).unwrap()
}

/// lockbox's wrap to `identity` drawing `randomness`: returns the `enc` part.
fn lockbox_enc(identity: &lockbox::recipient::Identity, randomness: &[u8], enc_len: usize) -> Vec<u8> {
    let dek = hazmat::data_key_from_bytes([0x42; 32]);
    let b = BindingBuf::new(Suite::Aes256Gcm, &EncryptionContext::new());
    let mut rng = Fixed(randomness.to_vec());
    let w = hazmat::wrap_to_recipient_with_rng(identity.recipient(), &dek, b.as_binding(), &mut rng).unwrap();
    assert!(rng.0.is_empty(), "drew less randomness than the vector has");
    // And it opens with the identity, of course.
    let r = w.as_ref();
    let out = lockbox::KeyEncryptionProvider::unwrap(identity, r, b.as_binding()).unwrap();
    assert_eq!(ExposeSecret::expose_secret(&out), &[0x42; 32]);
    w.bytes()[1..1 + enc_len].to_vec()
}

#[test]
fn rfc9180_x25519_hkdf_sha256_chacha20poly1305_base() {
    let v = load("rfc9180-a2-x25519-hkdfsha256-chacha20poly1305-base.json");
    assert_eq!((v["mode"].as_u64(), v["kem_id"].as_u64()), (Some(0), Some(0x20)));
    assert_eq!((v["kdf_id"].as_u64(), v["aead_id"].as_u64()), (Some(1), Some(3)));
    // Key derivation (RFC 9180 §7.1.3).
    let (sk, pk) = X25519HkdfSha256::derive_keypair(&hex(&v["ikmR"]));
    // hpke serializes X25519 private keys clamped (RFC 7748 §5).
    let mut clamped = hex(&v["skRm"]);
    clamped[0] &= 248;
    clamped[31] = (clamped[31] & 127) | 64;
    assert_eq!(sk.to_bytes().to_vec(), clamped);
    assert_eq!(pk.to_bytes().to_vec(), hex(&v["pkRm"]));
    // Encryption at sequence number 0 (single-shot, as lockbox uses it).
    let (info, enc0) = (hex(&v["info"]), &v["encryptions"][0]);
    assert_eq!(enc0["sequence_number"].as_u64(), Some(0));
    let mut buf = hex(&enc0["pt"]);
    let (enc, tag) = hpke::single_shot_seal_inout_detached_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        &info,
        hpke::inout::InOutBuf::from(&mut buf[..]),
        &hex(&enc0["aad"]),
        &mut Fixed(hex(&v["ikmE"])),
    )
    .unwrap();
    assert_eq!(enc.to_bytes().to_vec(), hex(&v["enc"]));
    buf.extend_from_slice(&tag.to_bytes());
    assert_eq!(buf, hex(&enc0["ct"]));
    // Every listed encryption opens, in sequence (gaps filled by opening
    // our own seals of the same plaintext, so the counter advances).
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&hex(&v["enc"])).unwrap();
    let mut rx =
        hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(&OpModeR::Base, &sk, &enc, &info)
            .unwrap();
    let mut tx = hpke::setup_sender_with_rng::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        &info,
        &mut Fixed(hex(&v["ikmE"])),
    )
    .unwrap()
    .1;
    let mut seq = 0u64;
    for e in v["encryptions"].as_array().unwrap() {
        let want = e["sequence_number"].as_u64().unwrap();
        while seq < want {
            let ct = tx.seal(b"filler", b"").unwrap();
            rx.open(&ct, b"").unwrap();
            seq += 1;
        }
        assert_eq!(
            tx.seal(&hex(&e["pt"]), &hex(&e["aad"])).unwrap(),
            hex(&e["ct"]),
            "seq {want}"
        );
        assert_eq!(
            rx.open(&hex(&e["ct"]), &hex(&e["aad"])).unwrap(),
            hex(&e["pt"]),
            "seq {want}"
        );
        seq += 1;
    }
    // lockbox's X25519 identity and wrap, on the same keys.
    let id = identity(RecipientKind::X25519, &hex(&v["skRm"]));
    assert_eq!(id.recipient().as_bytes(), &hex(&v["pkRm"])[..]);
    assert_eq!(lockbox_enc(&id, &hex(&v["ikmE"]), 32), hex(&v["enc"]));
}

#[test]
fn xwing_draft_kem_vectors() {
    use x_wing::{Decapsulate, Decapsulator, KeyExport, TryKeyInit};
    let v = load("xwing-draft-kem.json");
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for t in vectors {
        let seed: [u8; 32] = hex(&t["seed"]).try_into().unwrap();
        assert_eq!(hex(&t["sk"]), seed, "the decapsulation key is the seed");
        let dk = x_wing::DecapsulationKey::from(seed);
        let pk = dk.encapsulation_key().to_bytes();
        assert_eq!(pk.to_vec(), hex(&t["pk"]));
        let ek = x_wing::EncapsulationKey::new(&pk).unwrap();
        let eseed: [u8; 64] = hex(&t["eseed"]).try_into().unwrap();
        let (ct, ss) = ek.encapsulate_deterministic(&eseed.into());
        assert_eq!(ct.to_vec(), hex(&t["ct"]));
        assert_eq!(ss.to_vec(), hex(&t["ss"]));
        let ct_arr: x_wing::Ciphertext = hex(&t["ct"]).as_slice().try_into().unwrap();
        assert_eq!(dk.decapsulate(&ct_arr).to_vec(), hex(&t["ss"]));
        // lockbox's X-Wing identity: same public key; its wrap's enc is the
        // draft's ciphertext for the same randomness.
        let id = identity(RecipientKind::XWing, &seed);
        assert_eq!(id.recipient().as_bytes(), &hex(&t["pk"])[..]);
        assert_eq!(lockbox_enc(&id, &eseed, 1120), hex(&t["ct"]));
    }
}

#[test]
fn hpke_xwing_hkdf_sha256_chacha20poly1305_base() {
    let v = load("hpke-xwing-hkdfsha256-chacha20poly1305-base.json");
    assert_eq!((v["mode"].as_u64(), v["kem_id"].as_u64()), (Some(0), Some(0x647a)));
    assert_eq!((v["kdf_id"].as_u64(), v["aead_id"].as_u64()), (Some(1), Some(3)));
    let sk = <XWing as Kem>::PrivateKey::from_bytes(&hex(&v["skRm"])).unwrap();
    assert_eq!(XWing::sk_to_pk(&sk).to_bytes().to_vec(), hex(&v["pkRm"]));
    let info = hex(&v["info"]);
    let enc = <XWing as Kem>::EncappedKey::from_bytes(&hex(&v["enc"])).unwrap();
    let mut rx = hpke::setup_receiver::<ChaCha20Poly1305, HkdfSha256, XWing>(&OpModeR::Base, &sk, &enc, &info).unwrap();
    let encryptions = v["encryptions"].as_array().unwrap();
    assert!(!encryptions.is_empty());
    for e in encryptions {
        assert_eq!(rx.open(&hex(&e["ct"]), &hex(&e["aad"])).unwrap(), hex(&e["pt"]));
    }
    // Sealing with ikmE reproduces enc and the first ciphertext.
    let pk = XWing::sk_to_pk(&sk);
    let (enc2, mut tx) = hpke::setup_sender_with_rng::<ChaCha20Poly1305, HkdfSha256, XWing>(
        &OpModeS::Base,
        &pk,
        &info,
        &mut Fixed(hex(&v["ikmE"])),
    )
    .unwrap();
    assert_eq!(enc2.to_bytes().to_vec(), hex(&v["enc"]));
    let e0 = &encryptions[0];
    assert_eq!(tx.seal(&hex(&e0["pt"]), &hex(&e0["aad"])).unwrap(), hex(&e0["ct"]));
    let id = identity(RecipientKind::XWing, &hex(&v["skRm"]));
    assert_eq!(id.recipient().as_bytes(), &hex(&v["pkRm"])[..]);
    assert_eq!(lockbox_enc(&id, &hex(&v["ikmE"]), 1120), hex(&v["enc"]));
}
