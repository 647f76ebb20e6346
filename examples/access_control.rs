//! Access control and audit end to end.
//!
//! - An **ingest service** holds a seal-only handle: it encrypts events for
//!   every tenant and has no way to decrypt (a `SealOnly` is not a
//!   provider, and nothing it returns unwraps).
//! - A **reporting service** holds an open-only handle on a grant limited to
//!   `tenant = acme`: it reads acme's data, and its attempt to open
//!   globex's is refused and recorded.
//! - Every key use goes to one tamper-evident audit log (JSON lines,
//!   hash-chained and HMAC-ed under a key of its own). The log is verified,
//!   then an insider deletes the record of the refused open, and the
//!   verifier catches it.
//!
//! Run with `cargo run --example access_control`.
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

use std::sync::Arc;

use lockbox::access::{AccessDenied, Grant, Layered, OpenOnly, Operations, SealOnly};
use lockbox::audit::{Audit, AuditKey, ContextValues, JsonLinesSink, LogError, LogVerifier};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{EncryptionContext, KeyId};

fn ctx(tenant: &str, record: &str) -> Result<EncryptionContext, lockbox::Error> {
    EncryptionContext::new()
        .with("tenant", tenant)?
        .with_required("record", record)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("audit.jsonl");

    // The key-encryption key: a keyring here; an HSM or a KMS in production.
    let kek = Arc::new(Keyring::generate(KeyId::new("events")?, UnixTime::now())?);

    // One audit log for everything, authenticated under a key of its own.
    let log_key = AuditKey::generate()?;
    let log = Arc::new(JsonLinesSink::builder(&log_path).hmac_key(log_key.clone()).build()?);
    let audit_as = |principal: &str| {
        Audit::builder(log.clone())
            .principal(principal)
            // Tenant ids may appear in the log; record ids (required
            // context, never stored in headers) may not.
            .context_values(ContextValues::only(["tenant"]))
            .build()
    };

    // Ingest: seal only.
    let ingest = SealOnly::new(Layered::new(kek.clone(), audit_as("ingest-service")));
    let acme_report = ingest.sealer().seal(b"acme: Q3 revenue 1.2M", &ctx("acme", "r-1")?)?;
    let globex_report = ingest
        .sealer()
        .seal(b"globex: Q3 revenue 3.4M", &ctx("globex", "r-2")?)?;
    println!(
        "ingest sealed 2 reports ({} and {} bytes)",
        acme_report.len(),
        globex_report.len()
    );
    // `Opener::new(&ingest)` would not compile: the handle cannot unwrap.

    // Reporting: open only, and only tenant acme. The grant sits inside the
    // audit, so its refusals are recorded.
    let acme_only = Grant::builder("reporting-acme", Operations::OPEN)
        .require("tenant", "acme")
        .build()?;
    let reporting = OpenOnly::new(Layered::new(
        Layered::new(kek.clone(), acme_only),
        audit_as("reporting-service"),
    ));
    let plaintext = reporting.opener().open(&acme_report, &ctx("acme", "r-1")?)?;
    println!(
        "reporting read acme's report: {:?}",
        String::from_utf8_lossy(&plaintext)
    );

    let Err(err) = reporting.opener().open(&globex_report, &ctx("globex", "r-2")?) else {
        return Err("a cross-tenant open must be refused".into());
    };
    let denied = AccessDenied::in_error(&err).ok_or("the refusal is a grant's")?;
    println!("reporting tried globex's report: {denied}");

    // Close the log (writes its close record) and keep its head elsewhere.
    drop((ingest, reporting));
    let log = Arc::into_inner(log).ok_or("the log is still shared")?;
    let head = log.close()?.ok_or("the log is empty")?;
    println!("audit log closed at {head}");

    // Verify it, and find the refused open in it.
    let report = LogVerifier::new()
        .key(&log_key)
        .expect_head(head)
        .require_closed()
        .verify_file(&log_path)?;
    println!(
        "audit log verified: {} records, authenticated: {}, closed: {}",
        report.records, report.authenticated, report.closed
    );
    let text = std::fs::read_to_string(&log_path)?;
    let lines: Vec<&str> = text.lines().collect();
    let denied_at = lines
        .iter()
        .position(|l| l.contains("\"outcome\":\"denied\""))
        .ok_or("the refused open is in the log")?;
    let record: serde_json::Value = serde_json::from_str(lines[denied_at])?;
    println!(
        "line {}: {} {} by {} on tenant {}: {} ({})",
        denied_at.saturating_add(1),
        record["operation"],
        record["outcome"],
        record["principal"],
        record["context"]["tenant"],
        record["violation"],
        record["denied_by"],
    );
    assert_eq!(
        record["context"]["record"],
        serde_json::Value::Null,
        "record ids never reach the log"
    );

    // An insider deletes that record...
    let mut tampered: Vec<&str> = lines.clone();
    tampered.remove(denied_at);
    std::fs::write(&log_path, tampered.join("\n") + "\n")?;
    // ...and the verifier catches it.
    match LogVerifier::new().key(&log_key).verify_file(&log_path) {
        Err(LogError::Tampered(t)) => println!("tampered log rejected: {t}"),
        other => return Err(format!("tampering not caught: {other:?}").into()),
    }
    // Editing the record instead (say, "denied" to "success") is caught too.
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[denied_at] = edited[denied_at].replace("\"outcome\":\"denied\"", "\"outcome\":\"success\"");
    std::fs::write(&log_path, edited.join("\n") + "\n")?;
    match LogVerifier::new().key(&log_key).verify_file(&log_path) {
        Err(LogError::Tampered(t)) => println!("edited log rejected: {t}"),
        other => return Err(format!("tampering not caught: {other:?}").into()),
    }
    Ok(())
}
