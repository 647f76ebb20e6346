//! AWS KMS as the key-encryption provider: connect (resolving an alias to the
//! key's ARN), seal with a data key from `GenerateDataKey`, inspect, open,
//! see a wrong context refused, and rewrap a stored wrapped key with
//! `ReEncrypt`.
//!
//! Reads the variables `scripts/services.sh start kms` exports (a local
//! moto_server), or the same names pointed at real KMS:
//!
//! - `LOCKBOX_TEST_KMS_REGION`, `LOCKBOX_TEST_KMS_ACCESS_KEY_ID`,
//!   `LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY`: region and static credentials;
//! - `LOCKBOX_TEST_KMS_KEY_ARN`: the key (an ARN, key id or `alias/...`);
//! - `LOCKBOX_TEST_KMS_ENDPOINT` (optional): a custom endpoint;
//! - `LOCKBOX_TEST_KMS_CA_CERT` (optional): a PEM file of the CA to trust
//!   instead of the platform's roots.
//!
//! ```text
//! bash scripts/services.sh start kms && source target/services/env.sh
//! cargo run -p lockbox-aws-kms --example aws_kms
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use lockbox::secrecy::SecretString;
use lockbox::{AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, EncryptionContext, Suite};
use lockbox_aws_kms::{AwsKms, AwsKmsConfig};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (Some(region), Some(id), Some(secret), Some(key)) = (
        var("LOCKBOX_TEST_KMS_REGION"),
        var("LOCKBOX_TEST_KMS_ACCESS_KEY_ID"),
        var("LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY"),
        var("LOCKBOX_TEST_KMS_KEY_ARN"),
    ) else {
        eprintln!(
            "This example needs LOCKBOX_TEST_KMS_REGION, LOCKBOX_TEST_KMS_ACCESS_KEY_ID, \
             LOCKBOX_TEST_KMS_SECRET_ACCESS_KEY and LOCKBOX_TEST_KMS_KEY_ARN (and optionally \
             LOCKBOX_TEST_KMS_ENDPOINT).\nFor a local KMS: `bash scripts/services.sh start kms && \
             source target/services/env.sh`."
        );
        std::process::exit(2);
    };
    let mut config = AwsKmsConfig::new(region, id, SecretString::from(secret));
    if let Some(endpoint) = var("LOCKBOX_TEST_KMS_ENDPOINT") {
        config = config.endpoint_url(endpoint);
    }
    if let Some(ca) = var("LOCKBOX_TEST_KMS_CA_CERT") {
        config = config.ca_certificate_pem(std::fs::read(ca)?);
    }
    println!("config     {config:?}");

    // DescribeKey: resolves the key to its ARN and checks it is enabled.
    let kms = AwsKms::connect(&config, &key).await?;
    println!("provider   {kms:?}");

    let context = EncryptionContext::new()
        .with("purpose", "aws-kms example")?
        .with_required("tenant", "acme-corp")?;

    // The first provider's GenerateDataKey supplies the data key.
    let envelope = AsyncSealer::new(&kms)
        .seal(b"The eagle lands at midnight.", &context)
        .await?;
    for w in lockbox::inspect(&envelope)?.wrapped_keys() {
        println!(
            "wrapped    by {} key {} ({} bytes)",
            w.provider_id(),
            w.key_id(),
            w.bytes().len()
        );
    }
    let opened = AsyncOpener::new(&kms).open(&envelope, &context).await?;
    println!("opened     {:?}", String::from_utf8_lossy(&opened));

    // The whole context (opening is exact), with another tenant.
    let wrong = EncryptionContext::new()
        .with("purpose", "aws-kms example")?
        .with_required("tenant", "evil-corp")?;
    match AsyncOpener::new(&kms).open(&envelope, &wrong).await {
        Ok(_) => return Err("a wrong context opened the envelope".into()),
        Err(e) => println!("refused    wrong tenant: {e} ({})", source_kind(&e)),
    }

    // A wrapped data key kept outside an envelope (a data-key cache, say):
    // ReEncrypt refreshes it without the data key leaving KMS.
    let binding = BindingBuf::new(Suite::Aes256Gcm, &context);
    let (dek, wrapped) = kms
        .generate_data_key_async(lockbox::DataKeyRequest::new(binding.as_binding()))
        .await?
        .ok_or("GenerateDataKey is offered")?;
    let rewrapped = kms
        .rewrap_async(wrapped.as_ref(), binding.as_binding())
        .await?
        .ok_or("ReEncrypt is offered")?;
    let again = kms.unwrap_async(rewrapped.as_ref(), binding.as_binding()).await?;
    use lockbox::secrecy::ExposeSecret;
    assert_eq!(again.expose_secret(), dek.expose_secret());
    println!(
        "rewrapped  {} bytes -> {} bytes, same data key",
        wrapped.bytes().len(),
        rewrapped.bytes().len()
    );
    Ok(())
}

fn source_kind(e: &lockbox::Error) -> String {
    match e {
        lockbox::Error::NoProviderCouldUnwrap { source: Some(p), .. } => format!("provider said: {}", p.kind()),
        _ => String::from("no provider error"),
    }
}
