//! Vault / OpenBao Transit as the key-encryption provider: connect (checking
//! the key's type and derivation), seal, inspect the key name and version,
//! open, see a wrong context refused, and rewrap a stored wrapped key after
//! the key was rotated.
//!
//! Reads the variables `scripts/services.sh start openbao` exports (a local
//! OpenBao dev server), or the same names pointed at a real server:
//!
//! - `LOCKBOX_TEST_VAULT_ADDR`: the server (`https://...`, or `http://` on loopback);
//! - `LOCKBOX_TEST_VAULT_TOKEN`: a token allowed to use the key;
//! - `LOCKBOX_TEST_VAULT_KEY`: a Transit key created with `type=aes256-gcm96 derived=true`;
//! - `LOCKBOX_TEST_VAULT_CA_CERT` (optional): a PEM file of the CA to trust
//!   instead of the platform's roots.
//!
//! ```text
//! bash scripts/services.sh start openbao && source target/services/env.sh
//! cargo run -p lockbox-vault --example vault
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use lockbox::secrecy::SecretString;
use lockbox::{AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, EncryptionContext, Suite};
use lockbox_vault::{VaultConfig, VaultTransit};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (Some(addr), Some(token), Some(key)) = (
        var("LOCKBOX_TEST_VAULT_ADDR"),
        var("LOCKBOX_TEST_VAULT_TOKEN"),
        var("LOCKBOX_TEST_VAULT_KEY"),
    ) else {
        eprintln!(
            "This example needs LOCKBOX_TEST_VAULT_ADDR, LOCKBOX_TEST_VAULT_TOKEN and LOCKBOX_TEST_VAULT_KEY.\n\
             For a local OpenBao: `bash scripts/services.sh start openbao && source target/services/env.sh`."
        );
        std::process::exit(2);
    };
    let mut config = VaultConfig::new(addr, SecretString::from(token), key);
    if let Some(ca) = var("LOCKBOX_TEST_VAULT_CA_CERT") {
        config = config.ca_certificate_pem(std::fs::read(ca)?);
    }
    println!("config     {config:?}");
    let transit = VaultTransit::connect(config).await?;

    let context = EncryptionContext::new()
        .with("purpose", "vault example")?
        .with_required("tenant", "acme-corp")?;
    let envelope = AsyncSealer::new(&transit)
        .seal(b"The eagle lands at midnight.", &context)
        .await?;
    for w in lockbox::inspect(&envelope)?.wrapped_keys() {
        println!(
            "wrapped    by {} key {} {} ({} bytes)",
            w.provider_id(),
            w.key_id(),
            w.key_version(),
            w.bytes().len()
        );
    }
    let opened = AsyncOpener::new(&transit).open(&envelope, &context).await?;
    println!("opened     {:?}", String::from_utf8_lossy(&opened));

    // The whole context (opening is exact), with another tenant.
    let wrong = EncryptionContext::new()
        .with("purpose", "vault example")?
        .with_required("tenant", "evil-corp")?;
    match AsyncOpener::new(&transit).open(&envelope, &wrong).await {
        Ok(_) => return Err("a wrong context opened the envelope".into()),
        Err(e) => println!("refused    wrong tenant: {e}"),
    }

    // A wrapped data key kept outside an envelope: after an operator rotates
    // the key (`bao write -f transit/keys/<key>/rotate`), rewrap moves it to
    // the latest version without the data key leaving the server.
    let binding = BindingBuf::new(Suite::Aes256Gcm, &context);
    let dek = lockbox::DataKey::generate()?;
    let wrapped = transit.wrap_async(&dek, binding.as_binding()).await?;
    if let Some(rewrapped) = transit.rewrap_async(wrapped.as_ref(), binding.as_binding()).await? {
        println!(
            "rewrapped  {} {} -> {} {}",
            wrapped.key_id(),
            wrapped.key_version(),
            rewrapped.key_id(),
            rewrapped.key_version()
        );
    }
    Ok(())
}
