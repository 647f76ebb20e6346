//! `cargo xtask gen-secrets-vectors <dir>`: generates the frozen vectors of
//! secrets files (`SECRETS.md`) missing from `<dir>` (`tests/vectors/secrets`).
//!
//! Like the v1 envelope vectors they are randomized (file key, nonces, key
//! envelope), so the generator **never overwrites** a file: it writes the
//! cases whose file is missing, after checking each against this build of
//! lockbox (positive: opens to exactly the listed values; negative: fails
//! with the expected outcome). Negative cases that need a valid
//! authenticator over a forged value (a value moved to another path, a bad
//! padding, a type the form does not allow) are made here from `SECRETS.md`
//! alone: the file key is read by opening the key envelope, and values and
//! the authenticator are recomputed with the primitives. So the library is
//! checked against a second writer too.
//!
//! `tests/secrets_vectors.rs` checks the files with the library and
//! `tests/interop/check_secrets.py` with an independent Python decoder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a developer tool that checks its own output; it panics on a bug in itself"
)]

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::array::Array;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::secrets::{Form, SecretsFile, Verify};
use lockbox::{EncryptionContext, Error, LocalKek, Opener, Sealer, Suite, hazmat};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::gen_vectors::BoxResult;

/// The KEK of every vector: 32 bytes `0x5a`. A second one: `0xa5`.
fn kek() -> LocalKek {
    hazmat::local_kek_from_bytes(SecretBox::new(Box::new([0x5a; 32])))
}
fn kek2() -> LocalKek {
    hazmat::local_kek_from_bytes(SecretBox::new(Box::new([0xa5; 32])))
}

struct Case {
    name: &'static str,
    description: &'static str,
    form: Form,
    expect: &'static str,
    open_context: Vec<(&'static str, &'static str)>,
    /// The KEK the reader opens with (0x5a or 0xa5).
    open_with: u8,
    file: Vec<u8>,
    /// Positive cases: (name, type, value).
    values: Vec<(String, &'static str, String)>,
}

fn dotenv_base() -> (Vec<u8>, Vec<(String, &'static str, String)>) {
    let k = kek();
    let mut f = SecretsFile::create(
        Form::Dotenv,
        &Sealer::new(&k),
        &EncryptionContext::new(),
        Verify::EachProvider,
    )
    .unwrap();
    let vals = [
        ("DATABASE_URL", "postgres://app:hunter2@db.internal:5432/app"),
        ("API_TOKEN", "tok_live_0123456789"),
        ("EMPTY", ""),
        (
            "TLS_KEY",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        ),
        ("GREETING", "grüß dich – 秘密 🔑 \"quoted\" = sign"),
        ("EXACTLY_30_BYTES", "abcdefghijklmnopqrstuvwxyz0123"),
    ];
    for (n, v) in vals {
        f.set(n, v).unwrap();
    }
    let text = String::from_utf8(f.to_bytes().unwrap()).unwrap();
    let text = format!("# Application secrets: values are encrypted (SECRETS.md).\n\n{text}");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(4, "   # an indented comment");
    lines.insert(5, "\t");
    let text = lines.join("\n") + "\n";
    (
        text.into_bytes(),
        vals.iter()
            .map(|(n, v)| ((*n).to_string(), "string", (*v).to_string()))
            .collect(),
    )
}

fn json_base() -> (Vec<u8>, Vec<(String, &'static str, String)>) {
    let k = kek();
    let mut f = SecretsFile::create(
        Form::Json,
        &Sealer::new(&k),
        &EncryptionContext::new(),
        Verify::EachProvider,
    )
    .unwrap();
    f.set_json(
        "/database",
        r#"{"user": "app", "password": "hunter2", "port": 5432, "ratio": -1.5e-3}"#,
    )
    .unwrap();
    f.set_json("/flags", r#"{"debug": false, "beta": true, "nothing": null}"#)
        .unwrap();
    f.set_json("/hosts", r#"["a.example", "b.example"]"#).unwrap();
    f.set_json("/empty", "{}").unwrap();
    f.set_json("/none", "[]").unwrap();
    f.set("/odd keys/a~0b", "tilde").unwrap();
    f.set("/odd keys/c\"d\\e", "quote and backslash").unwrap();
    f.set("/odd keys/é", "unicode key").unwrap();
    let values = vec![
        ("/database/user", "string", "app"),
        ("/database/password", "string", "hunter2"),
        ("/database/port", "number", "5432"),
        ("/database/ratio", "number", "-1.5e-3"),
        ("/flags/debug", "false", "false"),
        ("/flags/beta", "true", "true"),
        ("/flags/nothing", "null", "null"),
        ("/hosts/0", "string", "a.example"),
        ("/hosts/1", "string", "b.example"),
        ("/odd keys/a~0b", "string", "tilde"),
        ("/odd keys/c\"d\\e", "string", "quote and backslash"),
        ("/odd keys/é", "string", "unicode key"),
    ];
    (
        f.to_bytes().unwrap(),
        values
            .into_iter()
            .map(|(n, t, v)| (n.to_string(), t, v.to_string()))
            .collect(),
    )
}

/// The parts of a file needed to forge with its key (`SECRETS.md` §4–§6).
struct Forge {
    form: Form,
    file_id: [u8; 16],
    value_key: [u8; 32],
    mac_key: [u8; 32],
}

impl Forge {
    fn new(form: Form, header: &[u8]) -> Self {
        let info = lockbox::inspect(header).unwrap();
        let stored: Vec<(String, String)> = info
            .stored_context()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut ctx = EncryptionContext::new();
        for (k, v) in &stored {
            ctx.insert(k, v).unwrap();
        }
        let file_key = Opener::new(&kek()).open(header, &ctx).unwrap();
        let id_hex = &stored.iter().find(|(k, _)| k == "lockbox.secrets.file").unwrap().1;
        let file_id: [u8; 16] = hex::decode(id_hex).unwrap().try_into().unwrap();
        let hk = Hkdf::<Sha256>::new(Some(&file_id), &file_key);
        let (mut value_key, mut mac_key) = ([0u8; 32], [0u8; 32]);
        hk.expand(b"lockbox secrets v1 value key", &mut value_key).unwrap();
        hk.expand(b"lockbox secrets v1 mac key", &mut mac_key).unwrap();
        Self {
            form,
            file_id,
            value_key,
            mac_key,
        }
    }

    fn form_byte(&self) -> u8 {
        if self.form == Form::Dotenv { 1 } else { 2 }
    }

    /// `V` for raw padded plaintext at a one-key path.
    fn seal_raw(&self, path: &[&str], padded: &[u8]) -> String {
        let mut aad = b"lockbox secrets v1 value".to_vec();
        aad.extend_from_slice(&self.file_id);
        aad.push(self.form_byte());
        aad.extend_from_slice(&(path.len() as u32).to_be_bytes());
        for k in path {
            aad.push(b'k');
            aad.extend_from_slice(&(k.len() as u32).to_be_bytes());
            aad.extend_from_slice(k.as_bytes());
        }
        let nonce = [0x42u8; 24];
        let mut buf = padded.to_vec();
        let tag = XChaCha20Poly1305::new(&Array::from(self.value_key))
            .encrypt_inout_detached(&Array::from(nonce), &aad, buf.as_mut_slice().into())
            .unwrap();
        let mut v = nonce.to_vec();
        v.extend_from_slice(&buf);
        v.extend_from_slice(&tag);
        format!("lockbox:{}", Base64UrlUnpadded::encode_string(&v))
    }

    /// The authenticator of a dotenv file with these (name, `V` text) lines.
    fn dotenv_mac(&self, header: &[u8], entries: &[(String, String)]) -> String {
        let mut input = b"lockbox secrets v1 file".to_vec();
        input.push(1);
        input.extend_from_slice(&(header.len() as u32).to_be_bytes());
        input.extend_from_slice(header);
        input.push(b'o');
        input.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (n, v) in entries {
            let bytes = Base64UrlUnpadded::decode_vec(v.strip_prefix("lockbox:").unwrap()).unwrap();
            input.extend_from_slice(&(n.len() as u32).to_be_bytes());
            input.extend_from_slice(n.as_bytes());
            input.push(b'v');
            input.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            input.extend_from_slice(&bytes);
        }
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.mac_key).unwrap();
        m.update(&input);
        Base64UrlUnpadded::encode_string(&m.finalize().into_bytes())
    }
}

/// A dotenv text's value lines and trailer.
fn dotenv_parts(text: &str) -> (Vec<String>, Vec<u8>) {
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let header = lines
        .iter()
        .find_map(|l| l.strip_prefix("#lockbox:v1:header:"))
        .map(|h| Base64UrlUnpadded::decode_vec(h).unwrap())
        .unwrap();
    (lines, header)
}

/// Rewrites a dotenv text with `edit` applied to its value entries (name,
/// `V`), and a valid authenticator recomputed with the file key.
fn forged_dotenv(text: &str, edit: impl FnOnce(&Forge, &mut Vec<(String, String)>)) -> Vec<u8> {
    let (lines, header) = dotenv_parts(text);
    let forge = Forge::new(Form::Dotenv, &header);
    let mut entries: Vec<(String, String)> = lines
        .iter()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (n, v) = l.split_once('=').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    edit(&forge, &mut entries);
    let mac = forge.dotenv_mac(&header, &entries);
    let mut out = String::new();
    for (n, v) in &entries {
        out.push_str(&format!("{n}={v}\n"));
    }
    out.push_str(&format!(
        "#lockbox:v1:header:{}\n",
        Base64UrlUnpadded::encode_string(&header)
    ));
    out.push_str(&format!("#lockbox:v1:mac:{mac}\n"));
    out.into_bytes()
}

/// `type || data || 0x80 || 0…` to a multiple of 32 (or `len` bytes).
fn padded(kind: u8, data: &[u8], len: Option<usize>) -> Vec<u8> {
    let mut p = vec![kind];
    p.extend_from_slice(data);
    p.push(0x80);
    let want = len.unwrap_or_else(|| p.len().div_ceil(32) * 32);
    p.resize(want, 0);
    p
}

fn replace_line(text: &str, prefix: &str, with: &str) -> Vec<u8> {
    text.lines()
        .map(|l| {
            if l.starts_with(prefix) {
                with.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
        .into_iter()
        .chain(*b"\n")
        .collect()
}

fn cases() -> Vec<Case> {
    let (dot, dot_values) = dotenv_base();
    let (js, js_values) = json_base();
    let dot_text = String::from_utf8(dot.clone()).unwrap();
    let js_text = String::from_utf8(js.clone()).unwrap();
    let other = String::from_utf8(dotenv_base().0).unwrap();
    let line_starting = |t: &str, p: &str| t.lines().find(|l| l.starts_with(p)).unwrap().to_string();
    let pos = |name, description, form, file, values| Case {
        name,
        description,
        form,
        expect: "success",
        open_context: Vec::new(),
        open_with: 0x5a,
        file,
        values,
    };
    let neg = |name, description, form, expect, file| Case {
        name,
        description,
        form,
        expect,
        open_context: Vec::new(),
        open_with: 0x5a,
        file,
        values: Vec::new(),
    };
    let mut out = vec![
        pos(
            "001-dotenv-basic",
            "dotenv form: comments (one indented), a blank line and a line of a tab, six values (an empty one, a multi-line one, UTF-8 with quotes and '=', one of exactly 30 bytes: one padded block)",
            Form::Dotenv,
            dot.clone(),
            dot_values.clone(),
        ),
        pos(
            "002-json-nested",
            "JSON form: nested objects, an array, every leaf type (string, number, true, false, null), empty object and array, keys with '~', '\"', '\\\\' and non-ASCII",
            Form::Json,
            js.clone(),
            js_values.clone(),
        ),
    ];
    // 003: required application context.
    {
        let k = kek();
        let ctx = EncryptionContext::new()
            .with("app", "billing")
            .unwrap()
            .with_required("tenant", "acme")
            .unwrap();
        let mut f = SecretsFile::create(Form::Dotenv, &Sealer::new(&k), &ctx, Verify::EachProvider).unwrap();
        f.set("SECRET", "bound to the tenant").unwrap();
        out.push(Case {
            open_context: vec![("app", "billing"), ("tenant", "acme")],
            ..pos("003-dotenv-application-context", "dotenv form whose key envelope has the application's stored entry app=billing and required entry tenant=acme, which the reader supplies", Form::Dotenv, f.to_bytes().unwrap(), vec![("SECRET".into(), "string", "bound to the tenant".into())])
        });
    }
    // 004: two wrapped keys, opened by the second; XChaCha20 key envelope.
    {
        let (a, b) = (kek(), kek2());
        let sealer = Sealer::new(&a).also_wrap_with(&b).suite(Suite::XChaCha20Poly1305);
        let mut f = SecretsFile::create(Form::Json, &sealer, &EncryptionContext::new(), Verify::EachProvider).unwrap();
        f.set("/k", "v").unwrap();
        out.push(Case {
            open_with: 0xa5,
            ..pos("004-json-two-keks-xchacha-envelope", "JSON form whose key envelope (suite XChaCha20-Poly1305) wraps the file key under two local KEKs; opened with the second (0xa5)", Form::Json, f.to_bytes().unwrap(), vec![("/k".into(), "string", "v".into())])
        });
    }
    out.push(pos(
        "005-dotenv-crlf",
        "001 with CR LF line endings and no final line ending",
        Form::Dotenv,
        dot_text.replace('\n', "\r\n").trim_end().as_bytes().to_vec(),
        dot_values.clone(),
    ));
    let compact: String = js_text.lines().map(str::trim).collect::<Vec<_>>().join("");
    out.push(pos(
        "006-json-compact",
        "002 without any whitespace between tokens (whitespace is not authenticated)",
        Form::Json,
        compact.into_bytes(),
        js_values.clone(),
    ));
    // Negative: tampering.
    let lines: Vec<&str> = dot_text.lines().collect();
    let db = lines.iter().position(|l| l.starts_with("DATABASE_URL=")).unwrap();
    let api = lines.iter().position(|l| l.starts_with("API_TOKEN=")).unwrap();
    let joined = |ls: Vec<String>| (ls.join("\n") + "\n").into_bytes();
    let owned: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    let mut swapped = owned.clone();
    swapped[db] = format!("DATABASE_URL={}", owned[api].split_once('=').unwrap().1);
    swapped[api] = format!("API_TOKEN={}", owned[db].split_once('=').unwrap().1);
    out.push(neg(
        "010-dotenv-values-swapped",
        "001 with the encrypted values of DATABASE_URL and API_TOKEN swapped (the authenticator unchanged)",
        Form::Dotenv,
        "authentication",
        joined(swapped),
    ));
    let mut removed = owned.clone();
    removed.remove(api);
    out.push(neg(
        "011-dotenv-value-removed",
        "001 with the API_TOKEN line removed",
        Form::Dotenv,
        "authentication",
        joined(removed),
    ));
    let mut added = owned.clone();
    added.insert(
        api,
        line_starting(&other, "API_TOKEN=").replace("API_TOKEN", "EXTRA_TOKEN"),
    );
    out.push(neg(
        "012-dotenv-value-added",
        "001 with a value line from another file (same KEK) added as EXTRA_TOKEN",
        Form::Dotenv,
        "authentication",
        joined(added),
    ));
    let mut reordered = owned.clone();
    reordered.swap(db, api);
    out.push(neg(
        "013-dotenv-lines-reordered",
        "001 with the DATABASE_URL and API_TOKEN lines swapped (each value under its own name)",
        Form::Dotenv,
        "authentication",
        joined(reordered),
    ));
    out.push(neg(
        "014-dotenv-header-from-another-file",
        "001 with the key envelope line of another file under the same KEK",
        Form::Dotenv,
        "authentication",
        replace_line(
            &dot_text,
            "#lockbox:v1:header:",
            &line_starting(&other, "#lockbox:v1:header:"),
        ),
    ));
    let mac_line = line_starting(&dot_text, "#lockbox:v1:mac:");
    let mut mac = Base64UrlUnpadded::decode_vec(mac_line.strip_prefix("#lockbox:v1:mac:").unwrap()).unwrap();
    mac[0] ^= 1;
    out.push(neg(
        "015-dotenv-mac-bit-flipped",
        "001 with bit 0 of the authenticator's first byte flipped",
        Form::Dotenv,
        "authentication",
        replace_line(
            &dot_text,
            "#lockbox:v1:mac:",
            &format!("#lockbox:v1:mac:{}", Base64UrlUnpadded::encode_string(&mac)),
        ),
    ));
    let mut dup = owned.clone();
    dup.insert(api, owned[db].clone());
    out.push(neg(
        "016-dotenv-duplicate-name",
        "001 with the DATABASE_URL line repeated",
        Form::Dotenv,
        "duplicate-name",
        joined(dup),
    ));
    out.push(neg(
        "017-dotenv-unsupported-version",
        "001 with the authenticator line's version v1 changed to v2",
        Form::Dotenv,
        "unsupported-version",
        dot_text.replace("#lockbox:v1:mac:", "#lockbox:v2:mac:").into_bytes(),
    ));
    out.push(neg(
        "018-json-plaintext-leaf",
        "002 with a plain (unencrypted) string inserted as the first element of /hosts",
        Form::Json,
        "malformed",
        js_text
            .replacen("\"hosts\": [\n", "\"hosts\": [\n    \"plain text\",\n", 1)
            .into_bytes(),
    ));
    out.push(neg(
        "019-json-duplicate-key",
        "002 with a second top-level member \"flags\" (an empty object)",
        Form::Json,
        "malformed",
        js_text.replacen("{\n", "{\n  \"flags\": {},\n", 1).into_bytes(),
    ));
    let dot_header = line_starting(&dot_text, "#lockbox:v1:header:")
        .strip_prefix("#lockbox:v1:header:")
        .unwrap()
        .to_string();
    let js_header = js_text
        .lines()
        .find(|l| l.contains("\"header\""))
        .unwrap()
        .split('"')
        .nth(3)
        .unwrap()
        .to_string();
    out.push(neg(
        "020-json-with-dotenv-key-envelope",
        "002 with the key envelope of 001 (its context says lockbox.secrets.form = dotenv)",
        Form::Json,
        "not-a-secrets-file",
        js_text.replace(&js_header, &dot_header).into_bytes(),
    ));
    out.push(Case {
        open_with: 0xa5,
        ..neg(
            "021-dotenv-wrong-kek",
            "001 opened with the KEK 0xa5, which holds none of its wrapped keys",
            Form::Dotenv,
            "no-provider-could-unwrap",
            dot.clone(),
        )
    });
    // Forged with the file key: valid authenticators over bad values.
    out.push(neg("030-dotenv-value-moved-mac-recomputed", "001 with API_TOKEN's encrypted value put under DATABASE_URL, and the authenticator recomputed with the file key: the value's associated data (its path) fails", Form::Dotenv, "authentication", forged_dotenv(&dot_text, |_, e| {
        let v = e.iter().find(|(n, _)| n == "API_TOKEN").unwrap().1.clone();
        e.iter_mut().find(|(n, _)| n == "DATABASE_URL").unwrap().1 = v;
    })));
    out.push(neg("031-dotenv-padding-not-shortest", "001 with a value EXTRA whose plaintext (type 0x01, \"x\", 0x80) is zero-padded to 64 bytes instead of 32, authenticator recomputed", Form::Dotenv, "authentication", forged_dotenv(&dot_text, |f, e| {
        e.push(("EXTRA".into(), f.seal_raw(&["EXTRA"], &padded(1, b"x", Some(64)))));
    })));
    out.push(neg(
        "032-dotenv-number-type",
        "001 with a value EXTRA of type 0x02 (number; JSON only), authenticator recomputed",
        Form::Dotenv,
        "authentication",
        forged_dotenv(&dot_text, |f, e| {
            e.push(("EXTRA".into(), f.seal_raw(&["EXTRA"], &padded(2, b"42", None))));
        }),
    ));
    out.push(neg("033-dotenv-no-padding-marker", "001 with a value EXTRA whose plaintext is 32 bytes of type 0x01 and 'x' with no 0x80 marker, authenticator recomputed", Form::Dotenv, "authentication", forged_dotenv(&dot_text, |f, e| {
        let mut p = vec![1u8];
        p.resize(32, b'x');
        e.push(("EXTRA".into(), f.seal_raw(&["EXTRA"], &p)));
    })));
    out.push(pos("034-dotenv-forged-by-spec", "001's first two values and a value NEW (\"made from SECRETS.md\") written by the generator's own encoder from SECRETS.md (fixed nonce 0x42…), authenticator recomputed: a second writer's file opens", Form::Dotenv, forged_dotenv(&dot_text, |f, e| {
        e.truncate(2);
        e.push(("NEW".into(), f.seal_raw(&["NEW"], &padded(1, b"made from SECRETS.md", None))));
    }), vec![dot_values[0].clone(), dot_values[1].clone(), ("NEW".into(), "string", "made from SECRETS.md".into())]));
    out
}

fn to_json(c: &Case) -> Value {
    let mut v = json!({
        "format": "lockbox secrets v1",
        "name": c.name,
        "description": c.description,
        "form": if c.form == Form::Dotenv { "dotenv" } else { "json" },
        "expect": c.expect,
        "kek_base64": Base64::encode_string(&[c.open_with; 32]),
        "open_context": c.open_context.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "file_hex": hex::encode(&c.file),
    });
    if let Ok(t) = std::str::from_utf8(&c.file) {
        v["file_text"] = json!(t);
    }
    if c.expect == "success" {
        v["values"] = c
            .values
            .iter()
            .map(|(n, t, val)| json!({"name": n, "type": t, "value": val}))
            .collect();
    }
    v
}

/// The outcome name of an error, as the vectors spell it.
fn outcome(e: &Error) -> String {
    match e {
        Error::Authentication => "authentication".into(),
        Error::NoProviderCouldUnwrap { .. } => "no-provider-could-unwrap".into(),
        Error::Secrets(s) => match **s {
            lockbox::secrets::SecretsError::Malformed { .. } | lockbox::secrets::SecretsError::MalformedJson { .. } => {
                "malformed".into()
            }
            lockbox::secrets::SecretsError::UnsupportedVersion(_) => "unsupported-version".into(),
            lockbox::secrets::SecretsError::DuplicateName { .. } => "duplicate-name".into(),
            lockbox::secrets::SecretsError::NotASecretsFile { .. } => "not-a-secrets-file".into(),
            ref other => format!("other: {other}"),
        },
        other => format!("other: {other}"),
    }
}

/// Opens the vector with this build; `Ok(values)` or the outcome's name.
pub(crate) fn open_vector(v: &Value) -> Result<Vec<(String, String)>, String> {
    let form = if v["form"] == "json" { Form::Json } else { Form::Dotenv };
    let kek = hazmat::local_kek_from_base64(v["kek_base64"].as_str().unwrap()).unwrap();
    let mut ctx = EncryptionContext::new();
    for e in v["open_context"].as_array().unwrap() {
        ctx.insert(e["key"].as_str().unwrap(), e["value"].as_str().unwrap())
            .unwrap();
    }
    let file = hex::decode(v["file_hex"].as_str().unwrap()).unwrap();
    let r = SecretsFile::parse(form, &file)
        .and_then(|f| f.unlock(&Opener::new(&kek), &ctx))
        .and_then(|f| f.load());
    match r {
        Ok(s) => Ok(s
            .iter()
            .map(|(n, v)| (n.to_string(), v.expose_secret().to_string()))
            .collect()),
        Err(e) => Err(outcome(&e)),
    }
}

fn check(v: &Value) -> Result<(), String> {
    match (v["expect"].as_str().unwrap(), open_vector(v)) {
        ("success", Ok(got)) => {
            let want: Vec<(String, String)> = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("values differ: {got:?}"))
            }
        }
        ("success", Err(e)) => Err(format!("expected success, got {e}")),
        (want, Err(got)) if got == want => Ok(()),
        (want, r) => Err(format!("expected {want}, got {r:?}")),
    }
}

fn write_new(path: &Path, text: &str) -> BoxResult<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub(crate) fn run(dir: PathBuf) -> BoxResult<()> {
    fs::create_dir_all(&dir)?;
    let (mut written, mut kept) = (0, 0);
    let cases = cases();
    let mut new = Vec::new();
    for c in &cases {
        let path = dir.join(format!("{}.json", c.name));
        if path.exists() {
            kept += 1;
            continue;
        }
        let v = to_json(c);
        check(&v).map_err(|e| format!("{}: {e}", c.name))?;
        new.push((path, serde_json::to_string_pretty(&v)? + "\n"));
    }
    for (path, text) in new {
        write_new(&path, &text)?;
        written += 1;
    }
    // Every file in the directory still passes.
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&fs::read_to_string(&path)?)?;
            check(&v).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    println!("secrets vectors: {written} written, {kept} kept");
    Ok(())
}
