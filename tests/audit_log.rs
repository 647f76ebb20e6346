//! The JSON-lines audit log: its chain across sessions, both writing modes,
//! and the verifier catching each kind of tampering (modified, deleted,
//! inserted, reordered, truncated), with and without an HMAC key.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;

use lockbox::access::{Grant, Layered, Operations};
use lockbox::audit::{Audit, AuditKey, ChainHead, JsonLinesSink, LogError, LogReport, LogVerifier, Tamper};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{EncryptionContext, KeyId, LocalKek};

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new().with("tenant", tenant).unwrap()
}

/// Writes a log of a few sealed and opened envelopes (and one refusal)
/// through `sink`, then closes it.
fn fill(sink: JsonLinesSink) -> Option<ChainHead> {
    let sink = Arc::new(sink);
    let kek = Arc::new(LocalKek::generate().unwrap());
    let grant = Grant::builder("acme", Operations::ALL)
        .require("tenant", "acme")
        .build()
        .unwrap();
    let p = Layered::new(Layered::new(kek.clone(), grant), Audit::new(sink.clone()));
    for i in 0..3 {
        let env = lockbox::seal(&p, format!("m{i}").as_bytes(), &ctx("acme")).unwrap();
        lockbox::open(&p, &env, &ctx("acme")).unwrap();
    }
    let other = lockbox::seal(&*kek, b"x", &ctx("globex")).unwrap();
    assert!(lockbox::open(&p, &other, &ctx("globex")).is_err());
    drop(p);
    Arc::into_inner(sink).unwrap().close().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn write(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

fn tampered(r: Result<LogReport, LogError>) -> Tamper {
    match r {
        Err(LogError::Tampered(t)) => t,
        other => panic!("not caught: {other:?}"),
    }
}

#[test]
fn a_log_verifies_and_holds_every_event() {
    for inline in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let b = JsonLinesSink::builder(&path);
        let head = fill(if inline { b.inline() } else { b }.build().unwrap()).unwrap();
        let report = LogVerifier::new()
            .require_closed()
            .expect_head(head)
            .verify_file(&path)
            .unwrap();
        // open + 3 × (wrap, unwrap) + 1 denied unwrap + close.
        assert_eq!((report.records, report.sessions, report.closed), (9, 1, true));
        assert!(!report.authenticated);
        assert_eq!(report.head, Some(head));
        let records: Vec<serde_json::Value> = lines(&path).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records[0]["event"], "open");
        assert_eq!(records[8]["event"], "close");
        let denied = records.iter().find(|r| r["outcome"] == "denied").unwrap();
        assert_eq!(denied["violation"], "context.value");
        assert_eq!(denied["denied_by"], "acme");
        assert_eq!(denied["operation"], "unwrap");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r["seq"], u64::try_from(i).unwrap());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

#[test]
fn sessions_continue_the_chain_and_a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let key = AuditKey::generate().unwrap();
    let sink = JsonLinesSink::builder(&path).hmac_key(key.clone()).build().unwrap();
    // Locked: a second writer on the same file is refused.
    assert!(JsonLinesSink::builder(&path).build().is_err());
    fill(sink);
    // Another session appends and links.
    let head = fill(JsonLinesSink::builder(&path).hmac_key(key.clone()).build().unwrap()).unwrap();
    let report = LogVerifier::new()
        .key(&key)
        .expect_head(head)
        .require_closed()
        .verify_file(&path)
        .unwrap();
    assert_eq!((report.records, report.sessions, report.authenticated), (18, 2, true));
    // A sink with no key (or another key) cannot continue a MAC-ed log.
    assert!(JsonLinesSink::builder(&path).build().is_err());
    assert!(
        JsonLinesSink::builder(&path)
            .hmac_key(AuditKey::generate().unwrap())
            .build()
            .is_err()
    );
    // A torn last line (a crash mid-write) is refused, not chained onto.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"seq\":18,\"prev\":");
    std::fs::write(&path, &bytes).unwrap();
    assert!(JsonLinesSink::builder(&path).hmac_key(key.clone()).build().is_err());
    assert_eq!(
        tampered(LogVerifier::new().key(&key).verify_file(&path)),
        Tamper::Malformed { line: 19 }
    );
}

/// A fresh closed log of 9 records, plain or MAC-ed, and its head.
fn fresh(dir: &Path, key: Option<&AuditKey>) -> (std::path::PathBuf, ChainHead) {
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut b = JsonLinesSink::builder(&path);
    if let Some(k) = key {
        b = b.hmac_key(k.clone());
    }
    let head = fill(b.build().unwrap()).unwrap();
    (path, head)
}

/// Recomputes a plain record's hash the way an attacker with write access
/// would: SHA-256 over the domain label and the bytes before `,"hash"`.
fn rehash(line: &str) -> String {
    use sha2::Digest;
    let at = line.rfind(",\"hash\":\"").unwrap();
    let signed = &line[..at];
    let d = sha2::Sha256::new()
        .chain_update(b"lockbox.audit.v1 chain\0")
        .chain_update(signed.as_bytes())
        .finalize();
    format!("{signed},\"hash\":\"{}\"}}", hex::encode(d))
}

fn set_prev(line: &str, prev_of: &str) -> String {
    let digest = &prev_of[prev_of.len() - 66..prev_of.len() - 2];
    let start = line.find("\"prev\":\"").unwrap() + 8;
    format!("{}{}{}", &line[..start], digest, &line[start + 64..])
}

#[test]
fn the_verifier_catches_each_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    for keyed in [false, true] {
        let k = keyed.then_some(&key);
        let verifier = || {
            let v = LogVerifier::new();
            if keyed { v.key(&key) } else { v }
        };
        let check = |edit: &dyn Fn(&mut Vec<String>)| {
            let (path, head) = fresh(dir.path(), k);
            let mut l = lines(&path);
            edit(&mut l);
            write(&path, &l);
            (tampered(verifier().verify_file(&path)), path, head)
        };

        // Modified: a byte of the event changed.
        let (t, ..) = check(&|l| l[2] = l[2].replace("\"unwrap\"", "\"wrap\""));
        assert_eq!(t, Tamper::Modified { line: 3 });
        // Deleted: a record from the middle.
        let (t, ..) = check(&|l| {
            l.remove(4);
        });
        assert_eq!(t, Tamper::Deleted { line: 5, missing: 1 });
        // Inserted: a record replayed (copied) further on.
        let (t, ..) = check(&|l| {
            let copy = l[2].clone();
            l.insert(6, copy);
        });
        assert_eq!(t, Tamper::Inserted { line: 7 });
        // Reordered: two records swapped.
        let (t, ..) = check(&|l| l.swap(2, 3));
        assert_eq!(t, Tamper::Reordered { line: 3 });
        // Malformed: a line that is not a record.
        let (t, ..) = check(&|l| l.insert(5, "{\"seq\":5}".into()));
        assert_eq!(t, Tamper::Malformed { line: 6 });

        // Truncated at the end: the chain that is left is valid, so only the
        // close record and the kept head tell.
        let (path, head) = fresh(dir.path(), k);
        let mut l = lines(&path);
        l.truncate(6);
        write(&path, &l);
        let report = verifier().verify_file(&path).unwrap();
        assert!(!report.closed);
        assert_eq!(
            tampered(verifier().require_closed().verify_file(&path)),
            Tamper::NotClosed
        );
        assert_eq!(
            tampered(verifier().expect_head(head).verify_file(&path)),
            Tamper::Truncated {
                expected: 8,
                found: Some(5)
            }
        );
    }

    // Without a key, an attacker can recompute hashes: a modified record
    // with a fresh hash is caught by the next record's link...
    let (path, _) = fresh(dir.path(), None);
    let mut l = lines(&path);
    l[2] = rehash(&l[2].replace("\"unwrap\"", "\"wrap\""));
    write(&path, &l);
    assert_eq!(
        tampered(LogVerifier::new().verify_file(&path)),
        Tamper::Modified { line: 3 }
    );
    // ...and a rewritten tail (every later link recomputed) only by the head
    // kept elsewhere.
    let (path, head) = fresh(dir.path(), None);
    let mut l = lines(&path);
    l[2] = rehash(&l[2].replace("\"unwrap\"", "\"wrap\""));
    for i in 3..l.len() {
        let prev = l[i - 1].clone();
        l[i] = rehash(&set_prev(&l[i], &prev));
    }
    write(&path, &l);
    assert!(LogVerifier::new().require_closed().verify_file(&path).is_ok());
    assert_eq!(
        tampered(LogVerifier::new().expect_head(head).verify_file(&path)),
        Tamper::Modified { line: 9 }
    );
    // With a key the same rewrite is caught outright (the attacker cannot
    // MAC), and a hash-chained forgery of a MAC-ed log is not authenticated.
    let (path, _) = fresh(dir.path(), Some(&key));
    let mut l = lines(&path);
    l[2] = l[2].replace("\"unwrap\"", "\"wrap\"");
    write(&path, &l);
    assert_eq!(
        tampered(LogVerifier::new().key(&key).verify_file(&path)),
        Tamper::Modified { line: 3 }
    );
    let (path, _) = fresh(dir.path(), Some(&key));
    let plain: Vec<String> = lines(&path)
        .iter()
        .map(|l| rehash(&l.replace(",\"mac\":\"", ",\"hash\":\"")))
        .collect();
    write(&path, &plain);
    assert_eq!(
        tampered(LogVerifier::new().key(&key).verify_file(&path)),
        Tamper::NotAuthenticated { line: 1 }
    );
    // The wrong key: every record fails.
    let (path, _) = fresh(dir.path(), Some(&key));
    let other = AuditKey::generate().unwrap();
    assert_eq!(
        tampered(LogVerifier::new().key(&other).verify_file(&path)),
        Tamper::Modified { line: 1 }
    );
    // Without the key a MAC-ed log's links still check, unauthenticated.
    let report = LogVerifier::new().verify_file(&path).unwrap();
    assert!(!report.authenticated && report.closed);
}

#[test]
fn keyring_events_go_to_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = Arc::new(JsonLinesSink::builder(&path).build().unwrap());
    let mut ring =
        Keyring::generate_with_audit(KeyId::new("orders").unwrap(), UnixTime(1_700_000_000), sink.clone()).unwrap();
    let env = lockbox::seal(&ring, b"x", &ctx("acme")).unwrap();
    ring.rotate(UnixTime(1_700_000_100)).unwrap();
    lockbox::open(&ring, &env, &ctx("acme")).unwrap();
    drop(ring);
    let head = Arc::into_inner(sink).unwrap().close().unwrap().unwrap();
    let report = LogVerifier::new()
        .expect_head(head)
        .require_closed()
        .verify_file(&path)
        .unwrap();
    let ops: Vec<String> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "event")
        .map(|r| r["operation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ops,
        [
            "keyring.generate",
            "keyring.add",
            "keyring.wrap",
            "keyring.generate",
            "keyring.add",
            "keyring.promote",
            "keyring.unwrap"
        ]
    );
    assert_eq!(report.records, 9);
}

#[test]
fn a_head_round_trips_as_text() {
    let h = ChainHead {
        seq: 42,
        digest: [7; 32],
    };
    assert_eq!(ChainHead::parse(&h.to_string()), Some(h));
    assert_eq!(ChainHead::parse("42:zz"), None);
    assert_eq!(ChainHead::parse("042:0707"), None);
}
