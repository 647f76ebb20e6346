//! The frozen secrets-file vectors (`tests/vectors/secrets/`, `SECRETS.md`):
//! every positive one opens to exactly its values, every negative one fails
//! with its outcome. They are also checked by the independent Python
//! decoder (`tests/interop/check_secrets.py`).
#![cfg(feature = "secrets")]
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, clippy::print_stdout)]

use lockbox::secrecy::ExposeSecret;
use lockbox::secrets::{Form, SecretsError, SecretsFile};
use lockbox::{EncryptionContext, Error, Opener, hazmat};
use serde_json::Value;

fn outcome(e: &Error) -> String {
    match e {
        Error::Authentication => "authentication".into(),
        Error::NoProviderCouldUnwrap { .. } => "no-provider-could-unwrap".into(),
        Error::Secrets(s) => match **s {
            SecretsError::Malformed { .. } | SecretsError::MalformedJson { .. } => "malformed".into(),
            SecretsError::UnsupportedVersion(_) => "unsupported-version".into(),
            SecretsError::DuplicateName { .. } => "duplicate-name".into(),
            SecretsError::NotASecretsFile { .. } => "not-a-secrets-file".into(),
            ref other => format!("other: {other}"),
        },
        other => format!("other: {other}"),
    }
}

#[test]
fn every_secrets_vector() {
    let dir = format!("{}/tests/vectors/secrets", env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let (mut positive, mut negative) = (0, 0);
    for path in &paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let form = if v["form"] == "json" { Form::Json } else { Form::Dotenv };
        let kek = hazmat::local_kek_from_base64(v["kek_base64"].as_str().unwrap()).unwrap();
        let mut ctx = EncryptionContext::new();
        for e in v["open_context"].as_array().unwrap() {
            ctx.insert(e["key"].as_str().unwrap(), e["value"].as_str().unwrap())
                .unwrap();
        }
        let file = hex::decode(v["file_hex"].as_str().unwrap()).unwrap();
        if let Some(t) = v["file_text"].as_str() {
            assert_eq!(t.as_bytes(), file, "{}: file_text", path.display());
        }
        let r = SecretsFile::parse(form, &file)
            .and_then(|f| f.unlock(&Opener::new(&kek), &ctx))
            .and_then(|f| f.load());
        match (v["expect"].as_str().unwrap(), r) {
            ("success", Ok(s)) => {
                let want = v["values"].as_array().unwrap();
                assert_eq!(s.len(), want.len(), "{}", path.display());
                for ((name, value), w) in s.iter().zip(want) {
                    assert_eq!(name, w["name"].as_str().unwrap(), "{}", path.display());
                    assert_eq!(
                        value.expose_secret(),
                        w["value"].as_str().unwrap(),
                        "{}",
                        path.display()
                    );
                }
                positive += 1;
            }
            (want, Err(e)) if want == outcome(&e) => negative += 1,
            (want, r) => panic!("{}: expected {want}, got {:?}", path.display(), r.map(|s| s.len())),
        }
    }
    println!("secrets vectors: {positive} positive, {negative} negative");
    assert!(
        positive >= 7 && negative >= 16,
        "vectors missing: {positive} positive, {negative} negative"
    );
}
