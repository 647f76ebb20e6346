//! Envelope encryption with the KEK inside a PKCS#11 token (an HSM, or
//! SoftHSM2 here): the data key is wrapped and unwrapped by the token, and
//! the KEK never leaves it.
//!
//! Create a SoftHSM2 token and run:
//!
//! ```text
//! bash scripts/services.sh start softhsm
//! source "$(bash scripts/services.sh env)"
//! cargo run -p lockbox-pkcs11 --example pkcs11
//! ```
//!
//! It reads LOCKBOX_TEST_PKCS11_MODULE, LOCKBOX_TEST_PKCS11_TOKEN_LABEL,
//! LOCKBOX_TEST_PKCS11_PIN and LOCKBOX_TEST_PKCS11_KEY_LABEL.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use lockbox::secrecy::SecretString;
use lockbox::{EncryptionContext, LocalKek, Opener, Sealer};
use lockbox_pkcs11::Pkcs11Kek;

const VARS: [&str; 4] = [
    "LOCKBOX_TEST_PKCS11_MODULE",
    "LOCKBOX_TEST_PKCS11_TOKEN_LABEL",
    "LOCKBOX_TEST_PKCS11_PIN",
    "LOCKBOX_TEST_PKCS11_KEY_LABEL",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let values: Option<Vec<String>> = VARS.iter().map(|v| std::env::var(v).ok()).collect();
    let Some([module, token, pin, key]) = values.and_then(|v| <[String; 4]>::try_from(v).ok()) else {
        eprintln!("This example needs a PKCS#11 token. Set {} or run:", VARS.join(", "));
        eprintln!("  bash scripts/services.sh start softhsm");
        eprintln!("  source \"$(bash scripts/services.sh env)\"");
        eprintln!("  cargo run -p lockbox-pkcs11 --example pkcs11");
        std::process::exit(2);
    };

    // The PIN goes straight into a SecretString: zeroized on drop, never printed.
    let kek = Pkcs11Kek::builder(&module)
        .token_label(&token)
        .pin(SecretString::from(pin))
        .key_label(&key)
        .open()?;
    println!("KEK        {kek:?}");

    // An offline recovery key also wraps every data key, so the data
    // survives the loss of the token.
    let recovery = LocalKek::generate()?;
    let ctx = EncryptionContext::new()
        .with("purpose", "pkcs11-example")?
        .with_required("tenant", "acme-corp")?;
    let envelope = Sealer::new(&kek)
        .also_wrap_with(&recovery)
        .seal(b"sealed under a key that never leaves the token", &ctx)?;
    for w in lockbox::inspect(&envelope)?.wrapped_keys() {
        println!(
            "wrapped    {} key {} ({} bytes)",
            w.provider_id(),
            w.key_id(),
            w.bytes().len()
        );
    }

    let plaintext = Opener::new(&kek).open(&envelope, &ctx)?;
    println!("opened     {:?}", String::from_utf8_lossy(&plaintext));

    // The whole context (opening is exact), with another tenant.
    let wrong = EncryptionContext::new()
        .with("purpose", "pkcs11-example")?
        .with_required("tenant", "evil-corp")?;
    match Opener::new(&kek).open(&envelope, &wrong) {
        Ok(_) => return Err("the wrong context opened the envelope".into()),
        Err(e) => println!(
            "wrong ctx  {e}: {}",
            std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
        ),
    }
    Ok(())
}
