//! The frozen format-v1 test vectors in `tests/vectors/v1/` (schema and freeze
//! policy: `tests/vectors/README.md`; generator: `xtask/src/gen_vectors.rs`,
//! `cargo xtask gen-vectors`).
//!
//! Every positive vector must open to its plaintext, by every open variant,
//! and `inspect` must agree with its informational fields. Every negative
//! vector must be rejected with exactly the expected error kind (and detail,
//! when the vector names one), and release nothing: `open_to` leaves its
//! output untouched and a failed `open_in_place` leaves the envelope bytes as
//! they were. A vector that fails for the wrong reason fails this test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

mod common;

use lockbox::{EncryptionContext, Error, LimitKind, LocalKek, Opener, Suite};
use serde_json::{Map, Value};

/// The v1 set holds at least this many vectors: an empty or half-deleted
/// directory must fail. Raise these when adding vectors; never lower them.
const MIN_VECTORS: usize = 108;
const MIN_POSITIVE: usize = 29;
const MIN_NEGATIVE: usize = 79;

/// The vector that reproduces FORMAT.md §14's worked example.
const WORKED_EXAMPLE: &str = "100-format-md-worked-example";
/// The worked example's inputs with the local KEK's synthetic wrap nonce.
const SYNTHETIC_NONCE: &str = "105-synthetic-wrap-nonce";

/// Every field a v1 vector may have.
const FIELDS: &[&str] = &[
    "format_version",
    "name",
    "description",
    "expect",
    "error_detail",
    "derived_from",
    "kek_base64",
    "open_context",
    "suite",
    "segment_size",
    "sealed_context",
    "plaintext_hex",
    "envelope_hex",
];

/// Every `expect` value but "success".
const ERROR_KINDS: &[&str] = &[
    "authentication",
    "unsupported-version",
    "unsupported-suite",
    "malformed",
    "limit-exceeded",
    "missing-context",
    "context-mismatch",
    "no-provider-could-unwrap",
];

fn error_kind(e: &Error) -> String {
    match e {
        Error::Authentication => "authentication".into(),
        Error::UnsupportedVersion(_) => "unsupported-version".into(),
        Error::UnsupportedSuite(_) => "unsupported-suite".into(),
        Error::Malformed { .. } => "malformed".into(),
        Error::LimitExceeded { .. } => "limit-exceeded".into(),
        Error::MissingContext { .. } => "missing-context".into(),
        Error::ContextMismatch { .. } => "context-mismatch".into(),
        Error::NoProviderCouldUnwrap { .. } => "no-provider-could-unwrap".into(),
        other => format!("unexpected error: {other}"),
    }
}

fn limit_name(limit: LimitKind) -> String {
    match limit {
        LimitKind::HeaderBytes => "header-bytes".into(),
        LimitKind::WrappedKeys => "wrapped-keys".into(),
        LimitKind::ContextEntries => "context-entries".into(),
        LimitKind::ContextBytes => "context-bytes".into(),
        LimitKind::ContextField => "context-field".into(),
        LimitKind::SegmentSize => "segment-size".into(),
        other => format!("{other:?}"),
    }
}

/// The optional, lockbox-specific `error_detail`.
fn error_detail(e: &Error) -> Option<String> {
    match e {
        Error::LimitExceeded { limit, .. } => Some(limit_name(*limit)),
        Error::MissingContext { key, .. } | Error::ContextMismatch { key, .. } => Some(key.clone()),
        Error::NoProviderCouldUnwrap { attempts, .. } => Some(format!("attempts={attempts}")),
        _ => None,
    }
}

struct ContextEntry {
    key: String,
    value: String,
    storage: String,
}

struct Vector {
    name: String,
    expect: String,
    derived_from: Option<String>,
    error_detail: Option<String>,
    kek: LocalKek,
    open_context: EncryptionContext,
    suite: String,
    segment_size: usize,
    sealed_context: Vec<ContextEntry>,
    plaintext: Option<Vec<u8>>,
    envelope: Vec<u8>,
}

impl Vector {
    fn is_positive(&self) -> bool {
        self.expect == "success"
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/v1")
}

/// The number before the first `-` of a vector name.
fn number(name: &str) -> Option<u32> {
    name.split('-').next()?.parse().ok()
}

fn str_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    obj.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or non-string field {field:?}"))
}

fn parse_vector(stem: &str, text: &str) -> Result<Vector, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = json.as_object().ok_or("not a JSON object")?;
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {unknown:?} (documented fields: tests/vectors/README.md)"
        ));
    }
    if obj.get("format_version").and_then(Value::as_u64) != Some(1) {
        return Err("format_version is not 1".into());
    }
    let name = str_field(obj, "name")?;
    if name != stem {
        return Err(format!("name {name:?} differs from the file name"));
    }
    let slug_ok = name.split_once('-').is_some_and(|(n, slug)| {
        n.len() >= 2
            && n.bytes().all(|b| b.is_ascii_digit())
            && !slug.is_empty()
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !slug_ok {
        return Err("name is not <number>-<lowercase-slug>".into());
    }
    if str_field(obj, "description")?.trim().is_empty() {
        return Err("empty description".into());
    }
    let expect = str_field(obj, "expect")?.to_owned();
    let positive = expect == "success";
    if !positive && !ERROR_KINDS.contains(&expect.as_str()) {
        return Err(format!("unknown expect value {expect:?}"));
    }
    let error_detail = match obj.get("error_detail") {
        None => None,
        Some(_) if positive => return Err("error_detail on a positive vector".into()),
        Some(_) => Some(str_field(obj, "error_detail")?.to_owned()),
    };
    let derived_from = match obj.get("derived_from") {
        None => None,
        Some(_) => Some(str_field(obj, "derived_from")?.to_owned()),
    };
    let kek = lockbox::hazmat::local_kek_from_base64(str_field(obj, "kek_base64")?)
        .map_err(|e| format!("kek_base64: {e}"))?;
    let mut open_context = EncryptionContext::new();
    for entry in obj
        .get("open_context")
        .and_then(Value::as_array)
        .ok_or("missing or non-array open_context")?
    {
        let e = entry.as_object().ok_or("open_context entry is not an object")?;
        let key = str_field(e, "key")?;
        if open_context.get(key).is_some() {
            return Err(format!("open_context has key {key:?} twice"));
        }
        open_context
            .insert(key, str_field(e, "value")?)
            .map_err(|err| format!("open_context entry {key:?}: {err}"))?;
    }
    let suite = str_field(obj, "suite")?.to_owned();
    let segment_size = obj
        .get("segment_size")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or("missing or non-integer segment_size")?;
    let mut sealed_context = Vec::new();
    for entry in obj
        .get("sealed_context")
        .and_then(Value::as_array)
        .ok_or("missing or non-array sealed_context")?
    {
        let e = entry.as_object().ok_or("sealed_context entry is not an object")?;
        let storage = str_field(e, "storage")?;
        if storage != "stored" && storage != "required" {
            return Err(format!("sealed_context storage {storage:?}"));
        }
        sealed_context.push(ContextEntry {
            key: str_field(e, "key")?.to_owned(),
            value: str_field(e, "value")?.to_owned(),
            storage: storage.to_owned(),
        });
    }
    let plaintext = match (positive, obj.get("plaintext_hex")) {
        (true, Some(_)) => {
            Some(hex::decode(str_field(obj, "plaintext_hex")?).map_err(|e| format!("plaintext_hex: {e}"))?)
        }
        (true, None) => return Err("positive vector without plaintext_hex".into()),
        (false, Some(_)) => return Err("negative vector with plaintext_hex".into()),
        (false, None) => None,
    };
    let envelope = hex::decode(str_field(obj, "envelope_hex")?).map_err(|e| format!("envelope_hex: {e}"))?;
    Ok(Vector {
        name: name.to_owned(),
        expect,
        derived_from,
        error_detail,
        kek,
        open_context,
        suite,
        segment_size,
        sealed_context,
        plaintext,
        envelope,
    })
}

/// Every `*.json` in the v1 directory, in vector-number order.
fn load() -> Vec<Vector> {
    let dir = dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort_by_key(|p| {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        (number(&stem), stem)
    });
    let mut errors = Vec::new();
    let mut vectors = Vec::new();
    for path in &files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        match parse_vector(&stem, &text) {
            Ok(v) => vectors.push(v),
            Err(e) => errors.push(format!("{stem}: {e}")),
        }
    }
    assert!(errors.is_empty(), "invalid vector files:\n{}", errors.join("\n"));
    vectors
}

fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn v1_set_is_complete() {
    let vectors = load();
    let positive = vectors.iter().filter(|v| v.is_positive()).count();
    let negative = vectors.len() - positive;
    assert!(
        vectors.len() >= MIN_VECTORS && positive >= MIN_POSITIVE && negative >= MIN_NEGATIVE,
        "{} has {} vectors ({positive} positive, {negative} negative); expected at least {MIN_VECTORS} \
         ({MIN_POSITIVE} positive, {MIN_NEGATIVE} negative). Frozen vectors are never deleted.",
        dir().display(),
        vectors.len()
    );
    let mut numbers = BTreeSet::new();
    for v in &vectors {
        assert!(
            numbers.insert(number(&v.name)),
            "vector number of {} used twice",
            v.name
        );
    }
    for v in &vectors {
        if let Some(from) = &v.derived_from {
            assert!(
                vectors.iter().any(|b| b.name == *from && b.is_positive()),
                "{}: derived_from {from:?} is not a positive vector of the set",
                v.name
            );
        }
    }
    for suite in Suite::ALL {
        assert!(
            vectors.iter().any(|v| v.is_positive() && v.suite == suite.name()),
            "no positive vector for {suite}"
        );
    }
    for kind in ERROR_KINDS {
        assert!(
            vectors.iter().any(|v| v.expect == *kind),
            "no negative vector expecting {kind}"
        );
    }
}

/// The opener the vectors assume (`tests/vectors/README.md`): default
/// limits, and a lenient context (a vector's `open_context` may leave out
/// stored entries; exact opening, the default, is checked separately).
fn vector_opener(v: &Vector) -> Opener<'_> {
    Opener::new(&v.kek).lenient_context()
}

fn check_positive(v: &Vector) -> Result<(), String> {
    let plaintext = v.plaintext.as_deref().ok_or("no plaintext")?;
    let opener = vector_opener(v);
    let opened = opener
        .open(&v.envelope, &v.open_context)
        .map_err(|e| format!("open failed: {e:?}"))?;
    if opened != plaintext {
        return Err("open returned the wrong plaintext".into());
    }
    let mut out = b"prefix".to_vec();
    opener
        .open_to(&v.envelope, &v.open_context, &mut out)
        .map_err(|e| format!("open_to failed: {e:?}"))?;
    if out.get(..6) != Some(b"prefix".as_slice()) || out.get(6..) != Some(plaintext) {
        return Err("open_to wrote the wrong bytes".into());
    }
    let mut buf = v.envelope.clone();
    opener
        .open_in_place(&mut buf, &v.open_context)
        .map_err(|e| format!("open_in_place failed: {e:?}"))?;
    if buf != plaintext {
        return Err("open_in_place left the wrong plaintext".into());
    }

    // The whole sealed context, stored entries included, opens it too.
    let mut full = EncryptionContext::new();
    for e in &v.sealed_context {
        full.insert(&e.key, &e.value)
            .map_err(|err| format!("sealed_context: {err}"))?;
    }
    match lockbox::open(&v.kek, &v.envelope, &full) {
        Ok(pt) if pt == plaintext => {}
        other => return Err(format!("opening with the full sealed_context: {other:?}")),
    }
    // The default (exact) opener takes `open_context` only if it names every
    // sealed entry; else the first entry left out (in key order) is missing.
    let left_out = v
        .sealed_context
        .iter()
        .find(|e| v.open_context.get(&e.key).is_none())
        .map(|e| e.key.clone());
    match (lockbox::open(&v.kek, &v.envelope, &v.open_context), left_out) {
        (Ok(pt), None) if pt == plaintext => {}
        (Err(Error::MissingContext { key, .. }), Some(k)) if key == k => {}
        (other, _) => return Err(format!("exact opening with open_context: {other:?}")),
    }

    // inspect agrees with the informational fields.
    let info = lockbox::inspect(&v.envelope).map_err(|e| format!("inspect failed: {e:?}"))?;
    let suite = Suite::from_name(&v.suite).ok_or_else(|| format!("unknown suite {:?}", v.suite))?;
    let stored: Vec<(&str, &str)> = v
        .sealed_context
        .iter()
        .filter(|e| e.storage == "stored")
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let required: Vec<&str> = v
        .sealed_context
        .iter()
        .filter(|e| e.storage == "required")
        .map(|e| e.key.as_str())
        .collect();
    let checks = [
        ("version", info.version() == 1),
        ("suite", info.suite() == suite),
        ("segment_size", info.segment_size().bytes() == v.segment_size),
        ("plaintext length", info.plaintext_len() == plaintext.len()),
        ("stored context", info.stored_context().collect::<Vec<_>>() == stored),
        (
            "required context keys",
            info.required_context_keys().collect::<Vec<_>>() == required,
        ),
        (
            "envelope length",
            info.header_len() + info.payload_len() == v.envelope.len(),
        ),
        (
            "a wrapped key addressed to the KEK",
            info.wrapped_keys()
                .iter()
                .any(|w| w.provider_id() == lockbox::LOCAL_PROVIDER_ID && w.key_id() == v.kek.key_id()),
        ),
    ];
    for (what, ok) in checks {
        if !ok {
            return Err(format!("inspect disagrees with the vector: {what}"));
        }
    }
    Ok(())
}

fn check_negative(v: &Vector) -> Result<(), String> {
    let expected = |e: &Error| {
        let kind = error_kind(e);
        let detail = error_detail(e);
        if kind == v.expect && (v.error_detail.is_none() || v.error_detail == detail) {
            Ok(())
        } else {
            Err(format!(
                "expected {} ({:?}), got {kind} ({detail:?}): {e:?}",
                v.expect, v.error_detail
            ))
        }
    };
    let opener = vector_opener(v);
    match opener.open(&v.envelope, &v.open_context) {
        Ok(_) => return Err("OPENED, but must be rejected".into()),
        Err(e) => expected(&e)?,
    }
    // Nothing is released: open_to leaves its output as it was...
    let mut out = b"untouched".to_vec();
    match opener.open_to(&v.envelope, &v.open_context, &mut out) {
        Ok(()) => return Err("open_to OPENED it".into()),
        Err(e) => expected(&e).map_err(|m| format!("open_to: {m}"))?,
    }
    if out != b"untouched" {
        return Err("a failed open_to changed its output".into());
    }
    // ...and a failed in-place open restores the envelope byte for byte.
    let mut buf = v.envelope.clone();
    match opener.open_in_place(&mut buf, &v.open_context) {
        Ok(()) => return Err("open_in_place OPENED it".into()),
        Err(e) => expected(&e).map_err(|m| format!("open_in_place: {m}"))?,
    }
    if buf != v.envelope {
        return Err("a failed open_in_place did not restore the envelope bytes".into());
    }
    Ok(())
}

#[test]
fn positive_vectors_open() {
    let failures: Vec<String> = load()
        .iter()
        .filter(|v| v.is_positive())
        .filter_map(|v| check_positive(v).err().map(|e| format!("{}: {e}", v.name)))
        .collect();
    report("positive vector(s) failed", &failures);
}

#[test]
fn negative_vectors_are_rejected_and_release_nothing() {
    let failures: Vec<String> = load()
        .iter()
        .filter(|v| !v.is_positive())
        .filter_map(|v| check_negative(v).err().map(|e| format!("{}: {e}", v.name)))
        .collect();
    report("negative vector(s) failed", &failures);
}

/// FORMAT.md §14's "Full envelope" hex, whitespace removed.
fn format_md_worked_example() -> Option<String> {
    let format_md = include_str!("../FORMAT.md");
    let section = format_md.split_once("## 14. Worked example")?.1;
    let block = section.split_once("Full envelope:")?.1;
    let body = block.split_once("```")?.1.split_once("```")?.0;
    Some(body.chars().filter(|c| !c.is_whitespace()).collect())
}

#[test]
fn worked_example_of_format_md_is_a_vector() {
    let from_doc = format_md_worked_example().expect("FORMAT.md §14 has a full-envelope block");
    let vectors = load();
    let v = vectors
        .iter()
        .find(|v| v.name == WORKED_EXAMPLE)
        .unwrap_or_else(|| panic!("no vector {WORKED_EXAMPLE}"));
    assert!(v.is_positive(), "{WORKED_EXAMPLE} must be a positive vector");
    assert_eq!(
        hex::encode(&v.envelope),
        from_doc,
        "{WORKED_EXAMPLE} differs from the full envelope of FORMAT.md §14"
    );
    assert_eq!(v.plaintext.as_deref(), Some(b"hello, lockbox".as_slice()));
    assert_eq!(v.kek.key_id().as_str(), "b0978f85aae8e4d03cd6271f7fa403ec");
}

/// The value FORMAT.md §14 gives on the line starting with `label`.
fn format_md_value(label: &str) -> Option<String> {
    let format_md = include_str!("../FORMAT.md");
    let section = format_md.split_once("## 14. Worked example")?.1;
    let line = section.lines().find(|l| l.starts_with(label))?;
    Some(line[label.len()..].split_whitespace().next()?.to_owned())
}

#[test]
fn the_synthetic_wrap_nonce_vector_is_what_sealing_gives() {
    let vectors = load();
    let v = vectors
        .iter()
        .find(|v| v.name == SYNTHETIC_NONCE)
        .unwrap_or_else(|| panic!("no vector {SYNTHETIC_NONCE}"));
    // The worked example's inputs, sealed by the local KEK (its nonce is
    // derived, FORMAT.md §10): DEK 00 … 1f and message id 20 … 3f from a
    // counting RNG. Same bytes as the frozen vector.
    let ctx = EncryptionContext::new()
        .with("purpose", "demo")
        .unwrap()
        .with_required("tenant", "acme")
        .unwrap();
    let again = lockbox::Sealer::new(&v.kek)
        .segment_size(lockbox::SegmentSize::DEFAULT)
        .seal_with_rng(&mut common::SeqRng(0), b"hello, lockbox", &ctx)
        .unwrap();
    assert_eq!(hex::encode(&again), hex::encode(&v.envelope));
    // It shares everything before the wrap nonce with FORMAT.md §14's
    // envelope (100); the nonce, the wrapped key and the header tag are the
    // worked values §14 lists.
    let worked = vectors.iter().find(|v| v.name == WORKED_EXAMPLE).unwrap();
    assert_eq!(v.envelope[..154], worked.envelope[..154]);
    for (label, range) in [
        ("wrap nonce (§10)", 154..166),
        ("wrapped DEK", 166..198),
        ("wrap tag", 198..214),
        ("header tag", 214..230),
    ] {
        let doc = format_md_value(label).unwrap_or_else(|| panic!("FORMAT.md §14 has no {label:?} line"));
        assert_eq!(hex::encode(&v.envelope[range]), doc, "{label}");
    }
}
