//! `cargo xtask gen-vectors <dir>`: generates lockbox's frozen envelope test
//! vectors (format v1).
//!
//! ```text
//! cargo xtask gen-vectors tests/vectors/v1
//! ```
//!
//! Writes one self-describing JSON file per case, `<nnn>-<slug>.json`, into the
//! given directory (created if missing). The schema, the `expect` values and
//! the freeze policy are documented in `tests/vectors/README.md`;
//! `tests/vectors.rs` checks every file against the library.
//!
//! # The vectors are FROZEN
//!
//! Every v1 vector must open (or be rejected the same way) in every future
//! release. This program exists to produce **new** vectors, never to refresh
//! old ones: data keys, message ids and wrap nonces are random, so running it
//! again produces different bytes for the same case, and a regenerated file
//! would no longer prove that *old* envelopes still open.
//!
//! So the generator never overwrites anything. For each case:
//!
//! - if `<nnn>-<slug>.json` already exists it is refused (left untouched) and
//!   reported as kept; if it is a positive vector that other cases are derived
//!   from, its frozen envelope is read back from the file and used as the base,
//!   so new negative vectors stay consistent with the committed ones;
//! - if its number `nnn` is already taken by a file with another name, the run
//!   fails;
//! - otherwise the case is generated and checked against this build of lockbox
//!   (positive: opens to the plaintext; negative: fails with exactly the
//!   expected error kind and detail). Files are written (create-new, never
//!   truncating) only if every new case passed.
//!
//! To add a vector: add a case below with a new, unused number, run the
//! command above, review the new file, commit it. To change the bytes of the
//! format: new format version, new directory (`tests/vectors/v2`).
//!
//! The program uses only lockbox's public API, plus `lockbox::hazmat` to build
//! KEKs from fixed, obviously-test bytes. Tampered and malformed envelopes are
//! made by editing bytes located with `Layout`, a small header walker written
//! from `FORMAT.md` independently of the library's parser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic,
    clippy::too_many_lines,
    reason = "a developer tool that checks its own output; it panics on a bug in itself"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::{ExposeSecret, SecretBox};
use lockbox::{EncryptionContext, Error, LimitKind, LocalKek, Opener, Sealer, SegmentSize, Storage, Suite};

pub(crate) type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The KEK of almost every vector: bytes `00 01 02 … 1f`.
const MAIN_KEK: [u8; 32] = counting_bytes(0x00);
/// A second, unrelated KEK: bytes `20 21 22 … 3f`.
const OTHER_KEK: [u8; 32] = counting_bytes(0x20);
const fn counting_bytes(start: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = start + i as u8;
        i += 1;
    }
    k
}

/// The deterministic plaintext of the sized vectors: byte `i` is `(i·31 + 7) mod 251`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

const SHORT: &[u8] = b"The quick brown fox jumps over the lazy dog.";

fn kek(bytes: [u8; 32]) -> LocalKek {
    lockbox::hazmat::local_kek_from_bytes(SecretBox::new(Box::new(bytes)))
}

fn kek_base64(bytes: [u8; 32]) -> String {
    lockbox::hazmat::local_kek_to_base64(&kek(bytes))
        .expose_secret()
        .to_owned()
}

fn suite_slug(suite: Suite) -> &'static str {
    match suite {
        Suite::Aes256Gcm => "aes256gcm",
        Suite::ChaCha20Poly1305 => "chacha20poly1305",
        Suite::XChaCha20Poly1305 => "xchacha20poly1305",
        _ => panic!("suite {suite} has no slug yet"),
    }
}

// ---------------------------------------------------------------------------
// Error kinds (the `expect` strings) and details (`error_detail`).

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

fn error_detail(e: &Error) -> Option<String> {
    match e {
        Error::LimitExceeded { limit, .. } => Some(limit_name(*limit)),
        Error::MissingContext { key, .. } | Error::ContextMismatch { key, .. } => Some(key.clone()),
        Error::NoProviderCouldUnwrap { attempts, .. } => Some(format!("attempts={attempts}")),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// An independent walker over a well-formed v1 envelope (FORMAT.md §2), used to
// find the bytes to tamper with. It trusts its input: only ever given
// envelopes the sealer wrote.

struct CtxPos {
    /// The whole entry, kind byte included.
    entry: Range<usize>,
    /// The key-length field.
    key_len_at: usize,
    /// The value-length field and the value (stored entries only).
    value: Option<(usize, Range<usize>)>,
}

struct WrapPos {
    /// The whole entry, provider-id length byte through wrapped bytes.
    entry: Range<usize>,
    provider_id: Range<usize>,
    key_id: Range<usize>,
    version: Range<usize>,
    len_at: usize,
    bytes: Range<usize>,
}

struct Layout {
    segment_size: usize,
    /// Context count and entries.
    ctx_block: Range<usize>,
    ctx: Vec<CtxPos>,
    commitment: Range<usize>,
    /// The wrapped-key count (first byte of the wrapped-key block), right
    /// after the commitment.
    wcount_at: usize,
    wrapped: Vec<WrapPos>,
    /// The header tag: the last 16 header bytes, right after the wrapped-key
    /// entries, covering every header byte before it (0 .. `tag.start`).
    tag: Range<usize>,
    /// Everything after the header.
    payload: Range<usize>,
}

const MESSAGE_ID: Range<usize> = 8..40;
const CTX_AT: usize = 40;
const TAG_LEN: usize = 16;

impl Layout {
    /// FORMAT.md §2: magic, version, suite, segment exponent, flags, message
    /// id, context block, commitment, wrapped-key count and entries, header
    /// tag; then the payload.
    fn of(env: &[u8]) -> Self {
        assert_eq!(&env[..4], b"LKBX");
        assert_eq!(env[4], 1);
        let u16_at = |at: usize| usize::from(u16::from_be_bytes([env[at], env[at + 1]]));
        let segment_size = 1usize << env[6];
        let mut p = CTX_AT;
        let count = u16_at(p);
        p += 2;
        let mut ctx = Vec::new();
        for _ in 0..count {
            let start = p;
            let kind = env[p];
            let key_len_at = p + 1;
            p = key_len_at + 2 + u16_at(key_len_at);
            let value = (kind == 0).then(|| {
                let at = p;
                p = at + 2 + u16_at(at);
                (at, at + 2..p)
            });
            ctx.push(CtxPos {
                entry: start..p,
                key_len_at,
                value,
            });
        }
        let ctx_block = CTX_AT..p;
        let commitment = p..p + 32;
        let wcount_at = commitment.end;
        p = wcount_at + 1;
        let mut wrapped = Vec::new();
        for _ in 0..env[wcount_at] {
            let start = p;
            let provider_id = p + 1..p + 1 + usize::from(env[p]);
            p = provider_id.end;
            let key_id = p + 1..p + 1 + usize::from(env[p]);
            let version = key_id.end..key_id.end + 4;
            let len_at = version.end;
            let bytes = len_at + 2..len_at + 2 + u16_at(len_at);
            p = bytes.end;
            wrapped.push(WrapPos {
                entry: start..p,
                provider_id,
                key_id,
                version,
                len_at,
                bytes,
            });
        }
        let tag = p..p + TAG_LEN;
        let payload = tag.end..env.len();
        // Cross-check the walker against the library on these well-formed
        // envelopes: a disagreement means one of them misreads FORMAT.md.
        let info = lockbox::inspect(env).expect("Layout::of is only given envelopes the sealer wrote");
        assert_eq!(info.header_len(), payload.start, "header length");
        assert_eq!(info.wrapped_keys().len(), wrapped.len(), "wrapped-key count");
        Self {
            segment_size,
            ctx_block,
            ctx,
            commitment,
            wcount_at,
            wrapped,
            tag,
            payload,
        }
    }

    /// Header length: the payload starts here.
    fn header_len(&self) -> usize {
        self.payload.start
    }

    /// The wrapped-key entries, without the count byte (nor the header tag).
    fn wrapped_entries(&self) -> Range<usize> {
        self.wcount_at + 1..self.tag.start
    }

    /// Each segment's (ciphertext, tag) ranges.
    fn segments(&self) -> Vec<(Range<usize>, Range<usize>)> {
        let stride = self.segment_size + TAG_LEN;
        let mut out = Vec::new();
        let mut p = self.payload.start;
        while p < self.payload.end {
            let end = (p + stride).min(self.payload.end);
            out.push((p..end - TAG_LEN, end - TAG_LEN..end));
            p = end;
        }
        out
    }

    /// Bytes of segment `i`, ciphertext and tag.
    fn segment(&self, i: usize) -> Range<usize> {
        let (ct, tag) = self.segments()[i].clone();
        ct.start..tag.end
    }
}

fn flip(env: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut out = env.to_vec();
    out[at] ^= 1 << bit;
    out
}

fn set(env: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut out = env.to_vec();
    out[at] = value;
    out
}

fn splice(env: &[u8], range: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = env.to_vec();
    out.splice(range, with.iter().copied());
    out
}

fn stored(key: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    out
}

fn context_block(count: u16, entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = count.to_be_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(e);
    }
    out
}

// ---------------------------------------------------------------------------
// Vectors.

enum Expect {
    Success(Vec<u8>),
    Failure { kind: &'static str, detail: Option<String> },
}

struct Vector {
    name: String,
    description: String,
    expect: Expect,
    kek: [u8; 32],
    open_context: Vec<(String, String)>,
    suite: Suite,
    segment_size: SegmentSize,
    sealed_context: EncryptionContext,
    derived_from: Option<String>,
    envelope: Vec<u8>,
}

/// A positive vector's envelope, as a base for negative ones.
#[derive(Clone)]
struct Base {
    name: String,
    envelope: Vec<u8>,
    kek: [u8; 32],
    suite: Suite,
    segment_size: SegmentSize,
    context: EncryptionContext,
    open: Vec<(String, String)>,
}

impl Base {
    fn layout(&self) -> Layout {
        Layout::of(&self.envelope)
    }

    /// A vector derived from this one's envelope, opened like it (same KEK and
    /// opener context).
    fn derived(&self, name: &str, expect: Expect, description: &str, envelope: Vec<u8>) -> Vector {
        Vector {
            name: name.to_owned(),
            description: description.to_owned(),
            expect,
            kek: self.kek,
            open_context: self.open.clone(),
            suite: self.suite,
            segment_size: self.segment_size,
            sealed_context: self.context.clone(),
            derived_from: Some(self.name.clone()),
            envelope,
        }
    }

    /// A negative vector derived from this one's envelope.
    fn negative(
        &self,
        name: &str,
        kind: &'static str,
        detail: Option<&str>,
        description: &str,
        envelope: Vec<u8>,
    ) -> Vector {
        let expect = Expect::Failure {
            kind,
            detail: detail.map(str::to_owned),
        };
        self.derived(name, expect, description, envelope)
    }
}

fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct Gen {
    dir: PathBuf,
    /// Number prefix → file stem of every `*.json` already in `dir`.
    existing: BTreeMap<String, String>,
    seen: BTreeSet<String>,
    new: Vec<Vector>,
    kept: Vec<String>,
}

fn number_of(stem: &str) -> &str {
    stem.split('-').next().unwrap_or(stem)
}

impl Gen {
    fn new(dir: PathBuf) -> BoxResult<Self> {
        fs::create_dir_all(&dir)?;
        let mut existing = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                existing.insert(number_of(stem).to_owned(), stem.to_owned());
            }
        }
        Ok(Self {
            dir,
            existing,
            seen: BTreeSet::new(),
            new: Vec::new(),
            kept: Vec::new(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Registers `name`; returns whether its file already exists (frozen).
    fn claim(&mut self, name: &str) -> BoxResult<bool> {
        let number = number_of(name);
        if !self.seen.insert(number.to_owned()) {
            return Err(format!("vector number {number} is used twice in the generator ({name})").into());
        }
        match self.existing.get(number) {
            Some(stem) if stem == name => {
                self.kept.push(name.to_owned());
                Ok(true)
            }
            Some(stem) => Err(format!("vector number {number} of {name} is already taken by {stem}.json").into()),
            None => Ok(false),
        }
    }

    /// Seals a positive vector under the main KEK (or reads the frozen one
    /// back) and returns it as a base for negative vectors.
    #[allow(clippy::too_many_arguments)]
    fn positive(
        &mut self,
        name: &str,
        description: &str,
        suite: Suite,
        segment_size: SegmentSize,
        context: &EncryptionContext,
        open: &[(&str, &str)],
        plaintext: &[u8],
    ) -> BoxResult<Base> {
        self.positive_wrapped(
            name,
            description,
            &[MAIN_KEK],
            suite,
            segment_size,
            context,
            open,
            plaintext,
        )
    }

    /// Seals a positive vector with `Sealer::new(keks[0])`, adding every
    /// further KEK with `also_wrap_with` (one wrapped-key entry per KEK, in
    /// this order), or reads the frozen one back. The vector, and the returned
    /// base, open with `keks[0]`.
    #[allow(clippy::too_many_arguments)]
    fn positive_wrapped(
        &mut self,
        name: &str,
        description: &str,
        keks: &[[u8; 32]],
        suite: Suite,
        segment_size: SegmentSize,
        context: &EncryptionContext,
        open: &[(&str, &str)],
        plaintext: &[u8],
    ) -> BoxResult<Base> {
        let providers: Vec<LocalKek> = keks.iter().map(|k| kek(*k)).collect();
        let (first, others) = providers.split_first().ok_or("a positive vector needs a KEK")?;
        let envelope = if self.claim(name)? {
            let text = fs::read_to_string(self.path(name))?;
            let json: serde_json::Value = serde_json::from_str(&text)?;
            let hex_text = json["envelope_hex"]
                .as_str()
                .ok_or_else(|| format!("{name}.json has no envelope_hex"))?;
            let envelope = hex::decode(hex_text)?;
            let info = lockbox::inspect(&envelope)?;
            let key_ids: Vec<&str> = info.wrapped_keys().iter().map(|w| w.key_id().as_str()).collect();
            let expected: Vec<&str> = providers.iter().map(|p| p.key_id().as_str()).collect();
            if info.suite() != suite || info.segment_size() != segment_size || key_ids != expected {
                return Err(format!("frozen {name}.json does not match its case in the generator").into());
            }
            envelope
        } else {
            let sealer = others
                .iter()
                .fold(Sealer::new(first), |s, p| s.also_wrap_with(p))
                .suite(suite)
                .segment_size(segment_size);
            let envelope = sealer.seal(plaintext, context)?;
            self.new.push(Vector {
                name: name.to_owned(),
                description: description.to_owned(),
                expect: Expect::Success(plaintext.to_vec()),
                kek: keks[0],
                open_context: pairs(open),
                suite,
                segment_size,
                sealed_context: context.clone(),
                derived_from: None,
                envelope: envelope.clone(),
            });
            envelope
        };
        Ok(Base {
            name: name.to_owned(),
            envelope,
            kek: keks[0],
            suite,
            segment_size,
            context: context.clone(),
            open: pairs(open),
        })
    }

    /// A positive vector whose envelope is given (not sealed here).
    fn positive_fixed(&mut self, v: Vector) -> BoxResult<()> {
        if !self.claim(&v.name)? {
            self.new.push(v);
        }
        Ok(())
    }

    fn negative(&mut self, v: Vector) -> BoxResult<()> {
        if !self.claim(&v.name)? {
            self.new.push(v);
        }
        Ok(())
    }
}

/// Checks a new vector against this build of lockbox.
fn check(v: &Vector) -> Result<(), String> {
    let provider = kek(v.kek);
    let mut ctx = EncryptionContext::new();
    for (k, val) in &v.open_context {
        ctx.insert(k, val)
            .map_err(|e| format!("{}: bad open_context: {e}", v.name))?;
    }
    // The open settings the vectors assume (tests/vectors/README.md): default
    // limits, lenient context (`open_context` may leave out stored entries).
    let got = Opener::new(&provider).lenient_context().open(&v.envelope, &ctx);
    match (&v.expect, got) {
        (Expect::Success(pt), Ok(out)) if out == *pt => Ok(()),
        (Expect::Success(_), Ok(_)) => Err(format!("{}: opened to the wrong plaintext", v.name)),
        (Expect::Success(_), Err(e)) => Err(format!("{}: expected success, got {e:?}", v.name)),
        (Expect::Failure { .. }, Ok(_)) => Err(format!("{}: expected a failure, but it OPENED", v.name)),
        (Expect::Failure { kind, detail }, Err(e)) => {
            if error_kind(&e) == *kind && (detail.is_none() || *detail == error_detail(&e)) {
                Ok(())
            } else {
                Err(format!(
                    "{}: expected {kind} ({detail:?}), got {} ({:?}): {e:?}",
                    v.name,
                    error_kind(&e),
                    error_detail(&e)
                ))
            }
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

fn to_json(v: &Vector) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("format_version", "1".into()),
        ("name", json_str(&v.name)),
        ("description", json_str(&v.description)),
    ];
    match &v.expect {
        Expect::Success(_) => fields.push(("expect", json_str("success"))),
        Expect::Failure { kind, detail } => {
            fields.push(("expect", json_str(kind)));
            if let Some(d) = detail {
                fields.push(("error_detail", json_str(d)));
            }
        }
    }
    if let Some(base) = &v.derived_from {
        fields.push(("derived_from", json_str(base)));
    }
    fields.push(("kek_base64", json_str(&kek_base64(v.kek))));
    let open: Vec<String> = v
        .open_context
        .iter()
        .map(|(k, val)| format!("{{\"key\": {}, \"value\": {}}}", json_str(k), json_str(val)))
        .collect();
    fields.push(("open_context", format!("[{}]", open.join(", "))));
    fields.push(("suite", json_str(v.suite.name())));
    fields.push(("segment_size", v.segment_size.bytes().to_string()));
    let sealed: Vec<String> = v
        .sealed_context
        .iter()
        .map(|e| {
            let storage = match e.storage {
                Storage::Stored => "stored",
                Storage::Required => "required",
                _ => panic!("unknown storage"),
            };
            format!(
                "{{\"key\": {}, \"value\": {}, \"storage\": \"{storage}\"}}",
                json_str(e.key),
                json_str(e.value)
            )
        })
        .collect();
    fields.push(("sealed_context", format!("[{}]", sealed.join(", "))));
    if let Expect::Success(pt) = &v.expect {
        fields.push(("plaintext_hex", json_str(&hex::encode(pt))));
    }
    fields.push(("envelope_hex", json_str(&hex::encode(&v.envelope))));
    let body: Vec<String> = fields.iter().map(|(k, val)| format!("  \"{k}\": {val}")).collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

fn write_new(path: &Path, text: &str) -> BoxResult<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("refusing to overwrite or cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Generates the vectors missing from `dir` (created if missing) and writes
/// them if every new one passes its check against this build of lockbox.
pub(crate) fn run(dir: PathBuf) -> BoxResult<()> {
    let mut g = Gen::new(dir)?;
    cases(&mut g)?;

    let failures: Vec<String> = g.new.iter().filter_map(|v| check(v).err()).collect();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        return Err(format!(
            "{} new vector(s) disagree with this build of lockbox; nothing written",
            failures.len()
        )
        .into());
    }
    for name in &g.kept {
        eprintln!("kept    {name}.json (exists; frozen, not overwritten)");
    }
    for v in &g.new {
        let path = g.path(&v.name);
        write_new(&path, &to_json(v))?;
        println!("wrote   {}", path.display());
    }
    println!("{} new vector(s) written, {} existing kept", g.new.len(), g.kept.len());
    Ok(())
}

// ---------------------------------------------------------------------------
// Editing the wrapped-key block.

/// `env` with its wrapped-key block (count and entries) replaced by
/// `entries`, everything else kept byte for byte: in particular the header
/// tag is NOT recomputed (it cannot be without the data key), so every such
/// envelope must fail the header tag, if it gets that far (FORMAT.md §5).
fn with_wrapped(env: &[u8], entries: &[&[u8]]) -> Vec<u8> {
    let l = Layout::of(env);
    let mut block = vec![entries.len() as u8];
    for e in entries {
        block.extend_from_slice(e);
    }
    splice(env, l.wcount_at..l.tag.start, &block)
}

// ---------------------------------------------------------------------------
// FORMAT.md §14, the worked example.

/// The complete envelope of FORMAT.md §14 ("Worked example"), copied from
/// its "Full envelope" block: AES-256-GCM, 64 KiB segments, KEK = 32 × 0x42,
/// context stored purpose="demo" and required tenant="acme", plaintext
/// "hello, lockbox"; DEK, message id and wrap nonce were fixed to make it
/// reproducible. `worked_example_matches_format_md` checks that this constant
/// is still the one in FORMAT.md (and `tests/vectors.rs` checks the vector
/// against FORMAT.md again), so the document and the vectors cannot drift.
const WORKED_EXAMPLE_HEX: &str = concat!(
    "4c4b425801011000202122232425262728292a2b2c2d2e2f3031323334353637",
    "38393a3b3c3d3e3f0002000007707572706f7365000464656d6f01000674656e",
    "616e74a5280945bcf068970b390d63cf8a656d182620666ff159e3e5eb7399e9",
    "f0fd7d010d6c6f636b626f782e6c6f63616c2062303937386638356161653865",
    "3464303363643632373166376661343033656300000001003d01a0a1a2a3a4a5",
    "a6a7a8a9aaabad326d112030c871bd3c806c4d8ff2786b9cc426ff9770f332bf",
    "b15e60afdc5d653d416d5c28a6b31f1a62ba8aab824acf71acb09c107c208179",
    "6842179a9612b7b49364c94fb6442c8f4c7e1b50cf59be6036b320d4ab7ad6ba",
    "394165a7",
);
/// The worked example's KEK: 32 bytes of 0x42.
const WORKED_EXAMPLE_KEK: [u8; 32] = [0x42; 32];

/// Counts up from its seed, one byte at a time: sealing draws the data key
/// (`00 … 1f` from seed 0) and then the message id (`20 … 3f`) from it.
struct CountingRng(u8);

impl TryRng for CountingRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}
impl TryCryptoRng for CountingRng {}

/// The hex of FORMAT.md §14's "Full envelope" code block, whitespace removed.
fn format_md_worked_example() -> Option<String> {
    let format_md = include_str!("../../FORMAT.md");
    let section = format_md.split_once("## 14. Worked example")?.1;
    let block = section.split_once("Full envelope:")?.1;
    let body = block.split_once("```")?.1.split_once("```")?.0;
    Some(body.chars().filter(|c| !c.is_whitespace()).collect())
}

fn worked_example_matches_format_md() -> BoxResult<()> {
    match format_md_worked_example() {
        Some(hex) if hex == WORKED_EXAMPLE_HEX => Ok(()),
        Some(_) => Err("WORKED_EXAMPLE_HEX differs from the full envelope in FORMAT.md §14".into()),
        None => Err("cannot find the full envelope of FORMAT.md §14".into()),
    }
}

// ---------------------------------------------------------------------------
// The cases. Numbers are permanent: never renumber, reuse or regenerate one.

fn cases(g: &mut Gen) -> BoxResult<()> {
    let min = SegmentSize::MIN;
    let default = SegmentSize::DEFAULT;
    let empty = EncryptionContext::new();
    let purpose = EncryptionContext::new().with("purpose", "test-vector")?;
    let standard = EncryptionContext::new()
        .with("purpose", "test-vector")?
        .with_required("tenant", "acme")?;
    let standard_open: &[(&str, &str)] = &[("tenant", "acme")];

    // 001–018: every suite; empty, short, and multi-segment with 64-byte segments.
    let mut suite_bases = Vec::new();
    for (i, suite) in Suite::ALL.into_iter().enumerate() {
        let n = i * 6;
        let s = suite_slug(suite);
        let sname = suite.name();
        let b_empty = g.positive(
            &format!("{:03}-{s}-empty", n + 1),
            &format!(
                "{sname}, empty plaintext (one final segment holding only its tag), 64 KiB segments, empty context."
            ),
            suite,
            default,
            &empty,
            &[],
            b"",
        )?;
        g.positive(
            &format!("{:03}-{s}-short", n + 2),
            &format!(
                "{sname}, short ASCII plaintext in one final segment, 64 KiB segments, one stored \
                context entry that the opener does not supply."
            ),
            suite,
            default,
            &purpose,
            &[],
            SHORT,
        )?;
        let mut bases = vec![b_empty];
        for (j, len) in [63usize, 64, 65, 200].into_iter().enumerate() {
            let what = match len {
                63 => "one partial final segment (63 of 64 bytes)",
                64 => "exactly one full final segment",
                65 => "a full segment, then a 1-byte final segment",
                _ => "three full segments, then an 8-byte final segment",
            };
            bases.push(g.positive(
                &format!("{:03}-{s}-seg64-{len}", n + 3 + j),
                &format!(
                    "{sname}, 64-byte segments, {len}-byte pattern plaintext: {what}. Context: stored \
                    purpose, required tenant (supplied by the opener)."
                ),
                suite,
                min,
                &standard,
                standard_open,
                &pattern(len),
            )?);
        }
        suite_bases.push(bases);
    }
    let aes_empty = suite_bases[0][0].clone();
    let aes63 = suite_bases[0][1].clone();
    let aes64 = suite_bases[0][2].clone();
    let base = suite_bases[0][4].clone(); // 006: AES-256-GCM, 64-byte segments, 200 bytes.
    let chacha200 = suite_bases[1][4].clone();
    let xchacha200 = suite_bases[2][4].clone();

    g.positive(
        "019-aes256gcm-seg64-128",
        "AES-256-GCM, 64-byte segments, 128-byte pattern plaintext: two full segments, the \
            second one final (no empty segment follows a full one).",
        Suite::Aes256Gcm,
        min,
        &standard,
        standard_open,
        &pattern(128),
    )?;
    g.positive(
        "020-chacha20poly1305-seg1024-2500",
        "ChaCha20-Poly1305, 1 KiB segments (exponent 10), 2500-byte pattern plaintext: two full \
            segments and a 452-byte final one.",
        Suite::ChaCha20Poly1305,
        SegmentSize::new(1024)?,
        &standard,
        standard_open,
        &pattern(2500),
    )?;
    g.positive(
        "021-xchacha20poly1305-seg16m-short",
        "XChaCha20-Poly1305, the largest segment size (16 MiB, exponent 24), short plaintext.",
        Suite::XChaCha20Poly1305,
        SegmentSize::MAX,
        &standard,
        standard_open,
        SHORT,
    )?;

    let rich = EncryptionContext::new()
        .with("classification", "")?
        .with("purpose", "test-vector")?
        .with_required("région", "Île-de-France ✓")?
        .with_required("tenant", "acme-corp")?
        .with("x-control", "tab\tnewline\nnul\u{0}end")?
        .with_required("z-empty", "")?
        .with("ключ", "значение 🔑")?;
    let rich_required: &[(&str, &str)] = &[("région", "Île-de-France ✓"), ("tenant", "acme-corp"), ("z-empty", "")];
    let rich_all: &[(&str, &str)] = &[
        ("classification", ""),
        ("purpose", "test-vector"),
        ("région", "Île-de-France ✓"),
        ("tenant", "acme-corp"),
        ("x-control", "tab\tnewline\nnul\u{0}end"),
        ("z-empty", ""),
        ("ключ", "значение 🔑"),
    ];
    let rich_base = g.positive(
        "022-context-stored-and-required",
        "AES-256-GCM, short plaintext, seven context entries, stored and required: an empty \
            stored and an empty required value, non-ASCII UTF-8 keys and values (compared byte for \
            byte, never normalized), control characters in a stored value, keys sorted bytewise \
            (ASCII before Cyrillic). The opener supplies only the required entries, the empty one \
            included.",
        Suite::Aes256Gcm,
        default,
        &rich,
        rich_required,
        SHORT,
    )?;
    g.positive(
        "023-context-all-supplied",
        "Same context as 022, but the opener supplies every entry: stored entries may be \
            supplied too, and then must match.",
        Suite::Aes256Gcm,
        default,
        &rich,
        rich_all,
        SHORT,
    )?;
    g.positive(
        "024-aes256gcm-default-65536",
        "AES-256-GCM, default 64 KiB segments, 65536-byte pattern plaintext: exactly one full final segment.",
        Suite::Aes256Gcm,
        default,
        &standard,
        standard_open,
        &pattern(65536),
    )?;
    let big = g.positive(
        "025-aes256gcm-default-65537",
        "AES-256-GCM, default 64 KiB segments, 65537-byte pattern plaintext: a full segment, \
            then a 1-byte final segment. The envelope is longer than the default 64 KiB header \
            limit, which bounds only the header.",
        Suite::Aes256Gcm,
        default,
        &standard,
        standard_open,
        &pattern(65537),
    )?;

    let auth = "authentication";
    let malformed = "malformed";
    let nocu = "no-provider-could-unwrap";

    // 026–029: several wrapped keys, sealed through the public API
    // (`Sealer::also_wrap_with`). Any one KEK opens the envelope, and the
    // header tag covers every wrapped key (FORMAT.md §5): entries cannot be
    // replaced, added, removed, reordered or corrupted without the data key,
    // even those the opener does not use. More of these in 101–103.
    let two_pt = pattern(100);
    let two = g.positive_wrapped(
        "026-two-wrapped-keys-first-kek",
        "AES-256-GCM, 64-byte segments, 100-byte pattern plaintext, sealed with \
            Sealer::new(main KEK).also_wrap_with(second KEK): two wrapped-key entries for the \
            same data key, the first under the main KEK (00 … 1f), the second under the second \
            KEK (20 … 3f). Opened with the main KEK: the first entry.",
        &[MAIN_KEK, OTHER_KEK],
        Suite::Aes256Gcm,
        min,
        &standard,
        standard_open,
        &two_pt,
    )?;
    let mut v = two.derived(
        "027-two-wrapped-keys-second-kek",
        Expect::Success(two_pt.clone()),
        "The envelope of 026, unmodified, opened with the second KEK (20 … 3f): the first entry \
            is addressed to another key and skipped (not an attempt), the second unwraps.",
        two.envelope.clone(),
    );
    v.kek = OTHER_KEK;
    g.positive_fixed(v)?;
    let tl = two.layout();
    let (main_w, other_w) = (&tl.wrapped[0], &tl.wrapped[1]);
    let main_entry = two.envelope[main_w.entry.clone()].to_vec();
    let other_entry = two.envelope[other_w.entry.clone()].to_vec();
    let mut v = two.negative(
        "028-rewrapped-without-header-tag",
        auth,
        None,
        &format!(
            "Derived from 026: its wrapped-key block (offsets {}–{}) replaced by the single entry \
            for the second KEK (count 1), as a rewrap that does not recompute the header tag would \
            write it; every other byte unchanged. Opened with the second KEK: the entry unwraps to \
            the right data key, which passes the key commitment, but the header tag covers the \
            wrapped-key block and fails. Rewriting wrapped keys needs the data key (FORMAT.md §5).",
            tl.wcount_at,
            tl.tag.start - 1
        ),
        with_wrapped(&two.envelope, &[&other_entry]),
    );
    v.kek = OTHER_KEK;
    g.negative(v)?;
    let l = base.layout();
    let env = &base.envelope;
    let planted = aes63.envelope[aes63.layout().wrapped_entries()].to_vec();
    let real = env[l.wrapped_entries()].to_vec();
    g.negative(base.negative(
        "029-planted-entry-before-real-one",
        auth,
        None,
        &format!(
            "Derived from 006: the wrapped-key entry of 003 (same KEK, suite and context, so it \
            unwraps, to another data key) inserted before the real one (offset {}), count set to \
            2. The opener finds that the planted entry's key fails the key commitment and goes on \
            to the real entry, whose key passes it; the header tag, which covers the wrapped-key \
            block, then fails: an entry cannot be added without the data key.",
            l.wcount_at + 1
        ),
        with_wrapped(env, &[&planted, &real]),
    ))?;

    // ----- Negative vectors. Unless stated otherwise they are derived from
    // 006 (AES-256-GCM, 64-byte segments, 200 bytes: segments of 64, 64, 64
    // and 8 bytes) and opened with its KEK and context.
    let h = l.header_len();
    let segs = l.segments();
    // The descriptions below count on this framing.
    assert_eq!(
        l.payload.len(),
        3 * 80 + 24,
        "006: three full segments and an 8-byte final one"
    );

    // Fixed header fields.
    g.negative(base.negative(
        "030-magic-bit-flipped",
        malformed,
        None,
        "Bit 0 of byte 0 flipped: magic \"MKBX\" instead of \"LKBX\".",
        flip(env, 0, 0),
    ))?;
    g.negative(base.negative(
        "031-version-2",
        "unsupported-version",
        None,
        "Version byte (offset 4) set to 0x02: reported as an unsupported version, not as \
            malformed, before anything else is examined.",
        set(env, 4, 2),
    ))?;
    g.negative(base.negative(
        "032-version-0",
        "unsupported-version",
        None,
        "Version byte (offset 4) set to 0x00.",
        set(env, 4, 0),
    ))?;
    g.negative(base.negative(
        "033-suite-id-9",
        "unsupported-suite",
        None,
        "Suite id (offset 5) set to 9, which no suite uses.",
        set(env, 5, 9),
    ))?;
    g.negative(base.negative(
        "034-suite-id-0",
        "unsupported-suite",
        None,
        "Suite id (offset 5) set to 0.",
        set(env, 5, 0),
    ))?;
    g.negative(base.negative(
        "035-suite-id-changed",
        nocu,
        Some("attempts=1"),
        "Suite id (offset 5) changed from 1 (AES-256-GCM) to 2 (ChaCha20-Poly1305), a valid \
            suite: the suite is part of the binding, so the wrapped data key no longer unwraps.",
        set(env, 5, 2),
    ))?;
    g.negative(base.negative(
        "036-flags-nonzero",
        malformed,
        None,
        "Reserved flags byte (offset 7) set to 0x01.",
        set(env, 7, 1),
    ))?;
    g.negative(base.negative(
        "037-segment-exponent-5",
        malformed,
        None,
        "Segment-size exponent (offset 6) set to 5 (32 bytes), below the minimum of 6.",
        set(env, 6, 5),
    ))?;
    g.negative(base.negative(
        "038-segment-exponent-25",
        malformed,
        None,
        "Segment-size exponent (offset 6) set to 25 (32 MiB), above the maximum of 24.",
        set(env, 6, 25),
    ))?;
    g.negative(base.negative(
        "039-segment-exponent-changed",
        auth,
        None,
        "Segment-size exponent (offset 6) changed from 6 to 7, a valid size under which the \
            payload length still frames (one full 128-byte segment and a 104-byte final one): the \
            header tag fails.",
        set(env, 6, 7),
    ))?;
    g.negative(base.negative(
        "040-message-id-bit-flipped",
        auth,
        None,
        "Bit 0 of the first message-id byte (offset 8) flipped: the data key unwraps (the \
            message id is not in the binding), but the key commitment derived with the changed \
            message id does not match.",
        flip(env, MESSAGE_ID.start, 0),
    ))?;

    // Context.
    let (vlen_at, purpose_value) = l.ctx[0].value.clone().ok_or("purpose is stored")?;
    g.negative(base.negative(
        "041-stored-context-value-bit-flipped",
        nocu,
        Some("attempts=1"),
        &format!(
            "Bit 0 of the first byte of the stored value of purpose (offset {}) flipped \
            (\"test-vector\" becomes \"uest-vector\"). The opener does not supply purpose, so the \
            tampered value is what gets bound, and the wrapped data key does not unwrap under it.",
            purpose_value.start
        ),
        flip(env, purpose_value.start, 0),
    ))?;
    let mut v = base.negative(
        "042-stored-context-value-mismatch",
        "context-mismatch",
        Some("purpose"),
        "Unmodified envelope; the opener supplies purpose=\"production\", which differs from \
            the stored value \"test-vector\".",
        env.clone(),
    );
    v.open_context = pairs(&[("purpose", "production"), ("tenant", "acme")]);
    g.negative(v)?;
    let p0 = &l.ctx[0];
    let mut relabelled = splice(env, vlen_at..p0.entry.end, b"");
    relabelled[p0.entry.start] = 1;
    let mut v = base.negative(
        "043-stored-entry-relabelled-required",
        nocu,
        Some("attempts=1"),
        "The stored entry purpose=\"test-vector\" rewritten as a required entry (kind 0x01, \
            value and its length removed), and the opener supplies purpose=\"test-vector\": the \
            entry kind is part of the binding, so the wrapped data key does not unwrap.",
        relabelled,
    );
    v.open_context = pairs(&[("purpose", "test-vector"), ("tenant", "acme")]);
    g.negative(v)?;
    let mut v = base.negative(
        "044-missing-required-context",
        "missing-context",
        Some("tenant"),
        "Unmodified envelope; the opener supplies no context, but tenant is required.",
        env.clone(),
    );
    v.open_context = Vec::new();
    g.negative(v)?;
    let mut v = base.negative(
        "045-wrong-required-context-value",
        nocu,
        Some("attempts=1"),
        "Unmodified envelope; the opener supplies tenant=\"evil-corp\" instead of \"acme\": the \
            wrong value is bound, and the wrapped data key does not unwrap.",
        env.clone(),
    );
    v.open_context = pairs(&[("tenant", "evil-corp")]);
    g.negative(v)?;
    let mut v = base.negative(
        "046-extra-context-key",
        "context-mismatch",
        Some("extra"),
        "Unmodified envelope; the opener supplies the right tenant plus a key \"extra\" that \
            the envelope does not have.",
        env.clone(),
    );
    v.open_context = pairs(&[("extra", "1"), ("tenant", "acme")]);
    g.negative(v)?;
    let mut v = rich_base.negative(
        "047-missing-empty-required-context",
        "missing-context",
        Some("z-empty"),
        "Derived from 022, unmodified; the opener omits the required entry z-empty, whose value \
            is the empty string: an empty required value must still be supplied.",
        rich_base.envelope.clone(),
    );
    v.open_context = pairs(&[("région", "Île-de-France ✓"), ("tenant", "acme-corp")]);
    g.negative(v)?;
    let mut v = rich_base.negative(
        "048-required-value-not-normalized",
        nocu,
        Some("attempts=1"),
        "Derived from 022, unmodified; the opener supplies région in NFD form (\"I\" followed \
            by U+0302 COMBINING CIRCUMFLEX ACCENT, then \"le-de-France ✓\") instead of the sealed \
            NFC \"Île-de-France ✓\": context is compared byte for byte, never normalized.",
        rich_base.envelope.clone(),
    );
    v.open_context = pairs(&[
        ("région", "I\u{302}le-de-France ✓"),
        ("tenant", "acme-corp"),
        ("z-empty", ""),
    ]);
    g.negative(v)?;

    // Commitment, header tag and wrapped keys.
    let w = &l.wrapped[0];
    g.negative(base.negative(
        "049-commitment-bit-flipped",
        auth,
        None,
        &format!(
            "Bit 0 of the first commitment byte (offset {}) flipped.",
            l.commitment.start
        ),
        flip(env, l.commitment.start, 0),
    ))?;
    g.negative(base.negative(
        "050-header-tag-bit-flipped",
        auth,
        None,
        &format!("Bit 0 of the first header-tag byte (offset {}) flipped.", l.tag.start),
        flip(env, l.tag.start, 0),
    ))?;
    let mid = w.bytes.start + 20;
    g.negative(base.negative(
        "051-wrapped-key-bytes-bit-flipped",
        nocu,
        Some("attempts=1"),
        &format!(
            "Bit 0 of byte {mid} flipped, inside the 61 wrapped-key bytes (the encrypted data key): \
            the KEK's unwrap fails."
        ),
        flip(env, mid, 0),
    ))?;
    g.negative(base.negative(
        "052-wrapped-key-version-changed",
        nocu,
        Some("attempts=1"),
        &format!(
            "Key version of the wrapped key (offset {}) changed from 1 to 2: the local KEK has only version 1.",
            w.version.start
        ),
        set(env, w.version.end - 1, 2),
    ))?;
    g.negative(base.negative(
        "053-wrapped-key-id-changed",
        nocu,
        Some("attempts=0"),
        &format!(
            "Bit 0 of the first key-id byte (offset {}) flipped: the wrapped key is no longer \
            addressed to the opener's KEK, so nothing is tried.",
            w.key_id.start
        ),
        flip(env, w.key_id.start, 0),
    ))?;
    g.negative(base.negative(
        "054-provider-id-changed",
        nocu,
        Some("attempts=0"),
        &format!(
            "Bit 0 of the last provider-id byte (offset {}) flipped (\"lockbox.locam\"): no wrapped \
            key is addressed to the local provider.",
            w.provider_id.end - 1
        ),
        flip(env, w.provider_id.end - 1, 0),
    ))?;
    let mut v = base.negative(
        "055-wrong-kek",
        nocu,
        Some("attempts=0"),
        "Unmodified envelope opened with another KEK (bytes 20 21 … 3f): its key id differs, so \
            no wrapped key matches.",
        env.clone(),
    );
    v.kek = OTHER_KEK;
    g.negative(v)?;
    g.negative(base.negative(
        "056-wrapped-key-from-other-envelope",
        auth,
        None,
        "The wrapped-key entry replaced by that of 003 (same KEK, suite and context): it \
            unwraps (the binding matches) but to another data key, which the key commitment \
            rejects.",
        with_wrapped(env, &[&planted]),
    ))?;
    let mut grafted = aes63.envelope[..aes63.layout().header_len()].to_vec();
    grafted.extend_from_slice(&env[l.payload.clone()]);
    g.negative(base.negative(
        "057-header-from-other-envelope",
        auth,
        None,
        "The complete, valid header of 003 (same KEK, suite and context) followed by the \
            payload of 006: the header authenticates, and the first segment fails under 003's \
            payload key.",
        grafted,
    ))?;

    // Payload.
    g.negative(base.negative(
        "058-segment-0-ciphertext-bit-flipped",
        auth,
        None,
        &format!(
            "Bit 0 of the first ciphertext byte of segment 0 (offset {}) flipped.",
            segs[0].0.start
        ),
        flip(env, segs[0].0.start, 0),
    ))?;
    g.negative(base.negative(
        "059-segment-2-ciphertext-bit-flipped",
        auth,
        None,
        &format!(
            "Bit 7 of the last ciphertext byte of segment 2 (offset {}) flipped: segments 0 and 1 \
            authenticate first, and still nothing may be released.",
            segs[2].0.end - 1
        ),
        flip(env, segs[2].0.end - 1, 7),
    ))?;
    g.negative(base.negative(
        "060-segment-1-tag-bit-flipped",
        auth,
        None,
        &format!(
            "Bit 0 of the first tag byte of segment 1 (offset {}) flipped.",
            segs[1].1.start
        ),
        flip(env, segs[1].1.start, 0),
    ))?;
    g.negative(base.negative(
        "061-final-segment-tag-bit-flipped",
        auth,
        None,
        &format!(
            "Bit 7 of the last byte of the envelope (the final segment's tag, offset {}) flipped.",
            env.len() - 1
        ),
        flip(env, env.len() - 1, 7),
    ))?;
    let mut swapped = env[..h].to_vec();
    swapped.extend_from_slice(&env[l.segment(1)]);
    swapped.extend_from_slice(&env[l.segment(0)]);
    swapped.extend_from_slice(&env[l.segment(2).start..]);
    g.negative(base.negative(
        "062-segments-swapped",
        auth,
        None,
        "Segments 0 and 1 (ciphertext and tag, 80 bytes each) swapped: the segment counter is in the nonce.",
        swapped,
    ))?;

    // Truncation and extension.
    g.negative(base.negative(
        "063-truncated-to-header",
        malformed,
        None,
        &format!("Truncated after the header (first {h} bytes): no payload, not even the final segment's tag."),
        env[..h].to_vec(),
    ))?;
    for (n, i) in [(64, 0usize), (65, 1), (66, 2)] {
        let end = segs[i].1.end;
        let what = if i == 2 {
            " (the final segment dropped entirely)"
        } else {
            ""
        };
        g.negative(base.negative(
            &format!("{n:03}-truncated-after-segment-{i}"),
            auth,
            None,
            &format!(
                "Truncated at the segment boundary after segment {i} (first {end} bytes){what}: segment \
                {i} was not sealed as the final one."
            ),
            env[..end].to_vec(),
        ))?;
    }
    g.negative(base.negative(
        "067-truncated-last-byte",
        auth,
        None,
        "Last byte removed: the payload still frames (a 7-byte final segment) but its tag fails.",
        env[..env.len() - 1].to_vec(),
    ))?;
    g.negative(base.negative(
        "068-truncated-inside-final-tag",
        malformed,
        None,
        "Truncated 10 bytes into the final segment: 10 payload bytes after three full segments \
            cannot hold a 16-byte tag.",
        env[..segs[2].1.end + 10].to_vec(),
    ))?;
    g.negative(base.negative(
        "069-truncated-to-empty-final-segment",
        malformed,
        None,
        "Truncated 16 bytes into the final segment: it would frame as an empty final segment \
            after full ones, which no sealer writes.",
        env[..segs[2].1.end + 16].to_vec(),
    ))?;
    g.negative(base.negative(
        "070-truncated-before-header-tag",
        malformed,
        None,
        &format!(
            "Truncated after the wrapped-key entries (first {} bytes): the header tag, the last \
            16 header bytes, is missing.",
            l.tag.start
        ),
        env[..l.tag.start].to_vec(),
    ))?;
    assert!(l.commitment.contains(&100), "071 cuts inside the commitment");
    g.negative(base.negative(
        "071-truncated-inside-header",
        malformed,
        None,
        &format!(
            "Only the first 100 bytes: the header ends inside the commitment (offsets {}–{}).",
            l.commitment.start,
            l.commitment.end - 1
        ),
        env[..100].to_vec(),
    ))?;
    g.negative(base.negative("072-empty-input", malformed, None, "Zero bytes.", Vec::new()))?;
    g.negative(base.negative(
        "073-magic-only",
        malformed,
        None,
        "Only the four magic bytes \"LKBX\": no version byte.",
        env[..4].to_vec(),
    ))?;
    let mut appended = env.clone();
    appended.push(0);
    g.negative(base.negative(
        "074-appended-byte",
        auth,
        None,
        "One zero byte appended: envelopes have no trailing data, so it becomes part of the \
            final segment, whose tag fails.",
        appended,
    ))?;
    let mut appended = env.clone();
    appended.extend_from_slice(&env[l.segment(1)]);
    g.negative(base.negative(
        "075-appended-segment-copy",
        auth,
        None,
        "A copy of segment 1 (80 bytes) appended after the final segment.",
        appended,
    ))?;
    let l64 = aes64.layout();
    let mut appended = aes64.envelope.clone();
    appended.extend_from_slice(&aes64.envelope[l64.segments()[0].1.clone()]);
    g.negative(aes64.negative(
        "076-appended-empty-final-segment",
        malformed,
        None,
        "Derived from 004 (one full 64-byte segment): a copy of its 16-byte tag appended, which \
            would frame as an empty final segment after a full one.",
        appended,
    ))?;
    g.negative(base.negative(
        "077-garbage-between-header-and-payload",
        auth,
        None,
        &format!(
            "Four bytes (de ad be ef) inserted at offset {h}, between the header tag and the \
            payload. The header still parses and authenticates, so they become the start of \
            segment 0 (the payload still frames: 268 bytes, three full segments and a 12-byte \
            final one), whose tag fails."
        ),
        splice(env, h..h, &[0xde, 0xad, 0xbe, 0xef]),
    ))?;

    // Structure of the context block (checked while parsing, before any key
    // is used, so the header tag is left as it was).
    let ctx_at = l.ctx_block.clone();
    g.negative(base.negative(
        "078-context-keys-out-of-order",
        malformed,
        None,
        "Context block replaced by two stored entries in descending key order (\"b\"=\"2\", then \"a\"=\"1\").",
        splice(
            env,
            ctx_at.clone(),
            &context_block(2, &[stored("b", "2"), stored("a", "1")]),
        ),
    ))?;
    g.negative(base.negative(
        "079-context-keys-duplicate",
        malformed,
        None,
        "Context block replaced by the stored entry \"a\"=\"1\" twice.",
        splice(
            env,
            ctx_at.clone(),
            &context_block(2, &[stored("a", "1"), stored("a", "1")]),
        ),
    ))?;
    g.negative(base.negative(
        "080-context-prefix-key-after-longer",
        malformed,
        None,
        "Context block replaced by stored entries \"ab\" then \"a\": a proper prefix sorts \
            before the longer key, so this order is wrong.",
        splice(
            env,
            ctx_at.clone(),
            &context_block(2, &[stored("ab", "1"), stored("a", "2")]),
        ),
    ))?;
    g.negative(base.negative(
        "081-context-entry-kind-unknown",
        malformed,
        None,
        &format!(
            "Kind byte of the first context entry (offset {}) set to 0x02.",
            l.ctx[0].entry.start
        ),
        set(env, l.ctx[0].entry.start, 2),
    ))?;
    g.negative(base.negative(
        "082-context-key-empty",
        malformed,
        None,
        "Context block replaced by one stored entry with an empty key.",
        splice(env, ctx_at.clone(), &context_block(1, &[stored("", "v")])),
    ))?;
    let key0 = l.ctx[0].key_len_at + 2;
    g.negative(base.negative(
        "083-context-key-invalid-utf8",
        malformed,
        None,
        &format!("First byte of the first context key (offset {key0}) set to 0xff, which is never valid UTF-8."),
        set(env, key0, 0xff),
    ))?;
    g.negative(base.negative(
        "084-context-key-control-character",
        malformed,
        None,
        &format!(
            "Byte {} of the first context key set to 0x0a (\"pur\\nose\"): context keys may not \
            contain control characters.",
            key0 + 3
        ),
        set(env, key0 + 3, 0x0a),
    ))?;
    g.negative(base.negative(
        "085-context-value-length-overrun",
        malformed,
        None,
        &format!("Value length of the stored entry (offset {vlen_at}) set to 65535, far past the end of the input."),
        splice(env, vlen_at..vlen_at + 2, &[0xff, 0xff]),
    ))?;
    let many: Vec<Vec<u8>> = (0..65).map(|i| stored(&format!("k{i:02}"), "")).collect();
    g.negative(base.negative(
        "086-context-entries-over-limit",
        "limit-exceeded",
        Some("context-entries"),
        "Context block replaced by 65 stored entries (k00 … k64, empty values), above the default limit of 64.",
        splice(env, ctx_at.clone(), &context_block(65, &many)),
    ))?;
    let fat = "x".repeat(8192);
    g.negative(base.negative(
        "087-context-bytes-over-limit",
        "limit-exceeded",
        Some("context-bytes"),
        "Context block replaced by stored entries \"a\" and \"b\" with 8192-byte values: 16386 \
            key and value bytes, above the default limit of 16384.",
        splice(env, ctx_at, &context_block(2, &[stored("a", &fat), stored("b", &fat)])),
    ))?;

    // Structure of the wrapped-key block.
    g.negative(base.negative(
        "088-zero-wrapped-keys",
        malformed,
        None,
        "Wrapped-key count set to 0 and the entry removed.",
        with_wrapped(env, &[]),
    ))?;
    let seventeen = vec![real.as_slice(); 17];
    g.negative(base.negative(
        "089-wrapped-keys-over-limit",
        "limit-exceeded",
        Some("wrapped-keys"),
        "Wrapped-key count set to 17, with 17 copies of the entry, above the default limit of 16.",
        with_wrapped(env, &seventeen),
    ))?;
    let mut empty_wrapped = splice(env, w.bytes.clone(), b"");
    empty_wrapped[w.len_at] = 0;
    empty_wrapped[w.len_at + 1] = 0;
    g.negative(base.negative(
        "090-wrapped-key-empty",
        malformed,
        None,
        "Wrapped length set to 0 and the wrapped bytes removed.",
        empty_wrapped,
    ))?;
    g.negative(base.negative(
        "091-wrapped-key-length-overrun",
        malformed,
        None,
        &format!(
            "Wrapped length (offset {}) set to 65535, past the end of the input.",
            w.len_at
        ),
        splice(env, w.len_at..w.len_at + 2, &[0xff, 0xff]),
    ))?;
    g.negative(base.negative(
        "092-provider-id-invalid",
        malformed,
        None,
        "Provider id rewritten as \"lockbox local\" (a space is not visible ASCII).",
        splice(env, w.provider_id.clone(), b"lockbox local"),
    ))?;
    let key_id_ctl = w.key_id.start + 5;
    g.negative(base.negative(
        "093-key-id-control-character",
        malformed,
        None,
        &format!("Byte {key_id_ctl} of the key id set to 0x0a (newline): key ids may not contain control characters."),
        set(env, key_id_ctl, 0x0a),
    ))?;
    let bl = big.layout();
    let bw = &bl.wrapped[0];
    g.negative(big.negative(
        "094-header-over-limit",
        "limit-exceeded",
        Some("header-bytes"),
        &format!(
            "Derived from 025 (longer than 64 KiB): wrapped length (offset {}) set to 65535, so the \
            header would end past the default 65536-byte header limit; reported as the limit, not \
            as a truncation.",
            bw.len_at
        ),
        splice(&big.envelope, bw.len_at..bw.len_at + 2, &[0xff, 0xff]),
    ))?;

    // Every suite's AEAD checks its tags.
    for (n, b) in [(95, &chacha200), (97, &xchacha200)] {
        let bl = b.layout();
        let s = suite_slug(b.suite);
        let from = number_of(&b.name);
        let seg1 = bl.segments()[1].0.start;
        g.negative(b.negative(
            &format!("{n:03}-{s}-segment-bit-flipped"),
            auth,
            None,
            &format!("Derived from {from}: bit 0 of the first ciphertext byte of segment 1 (offset {seg1}) flipped."),
            flip(&b.envelope, seg1, 0),
        ))?;
        g.negative(b.negative(
            &format!("{:03}-{s}-header-tag-bit-flipped", n + 1),
            auth,
            None,
            &format!(
                "Derived from {from}: bit 0 of the first header-tag byte (offset {}) flipped.",
                bl.tag.start
            ),
            flip(&b.envelope, bl.tag.start, 0),
        ))?;
    }
    g.negative(aes_empty.negative(
        "099-empty-plaintext-tag-bit-flipped",
        auth,
        None,
        "Derived from 001 (empty plaintext): bit 0 of the last byte (the tag of the only, \
            empty, final segment) flipped.",
        flip(&aes_empty.envelope, aes_empty.envelope.len() - 1, 0),
    ))?;

    // 100: FORMAT.md §14's worked example, byte for byte.
    worked_example_matches_format_md()?;
    let worked = hex::decode(WORKED_EXAMPLE_HEX)?;
    let worked_context = EncryptionContext::new()
        .with("purpose", "demo")?
        .with_required("tenant", "acme")?;
    let worked_open = pairs(&[("tenant", "acme")]);
    let worked_pt = b"hello, lockbox".to_vec();
    // Checked here even when the file is kept: the constant must open.
    let mut worked_ctx = EncryptionContext::new();
    for (k, v) in &worked_open {
        worked_ctx.insert(k, v)?;
    }
    if Opener::new(&kek(WORKED_EXAMPLE_KEK))
        .lenient_context()
        .open(&worked, &worked_ctx)?
        != worked_pt
    {
        return Err("the FORMAT.md §14 envelope opens to the wrong plaintext".into());
    }
    g.positive_fixed(Vector {
        name: "100-format-md-worked-example".to_owned(),
        description: "The worked example of FORMAT.md §14, byte for byte (260 bytes: a 230-byte \
            header and a 30-byte payload): AES-256-GCM, 64 KiB segments, context stored \
            purpose=\"demo\" and required tenant=\"acme\", KEK = 32 bytes of 0x42, plaintext \
            \"hello, lockbox\". Its DEK (00 … 1f), message id (20 … 3f) and wrap nonce (a0 … ab) \
            were fixed to make it reproducible; §14 lists its intermediate values and every field \
            with its offset."
            .to_owned(),
        expect: Expect::Success(worked_pt),
        kek: WORKED_EXAMPLE_KEK,
        open_context: worked_open,
        suite: Suite::Aes256Gcm,
        segment_size: default,
        sealed_context: worked_context.clone(),
        derived_from: None,
        envelope: worked,
    })?;

    // 101–103: the header tag covers every wrapped key, also those the opener
    // does not use (FORMAT.md §5). Derived from 026, opened with the main KEK,
    // whose entry (the first) unwraps to the right data key every time.
    let other_mid = other_w.bytes.start + 20;
    g.negative(two.negative(
        "101-unused-wrapped-key-bit-flipped",
        auth,
        None,
        &format!(
            "Derived from 026: bit 0 of byte {other_mid} flipped, inside the wrapped bytes (the \
            encrypted data key) of the second entry, the one for the second KEK. Opened with the \
            main KEK, which never tries that entry: the first entry unwraps and passes the key \
            commitment, and the header tag, which covers every wrapped key, fails. This is why the \
            tag covers them: otherwise a corrupted disaster-recovery entry would go unnoticed \
            until the day it is needed."
        ),
        flip(&two.envelope, other_mid, 0),
    ))?;
    g.negative(two.negative(
        "102-unused-wrapped-key-removed",
        auth,
        None,
        &format!(
            "Derived from 026: the second entry (offsets {}–{}) removed and the count set to 1. \
            Opened with the main KEK: its entry unwraps and passes the key commitment, and the \
            header tag fails.",
            other_w.entry.start,
            other_w.entry.end - 1
        ),
        with_wrapped(&two.envelope, &[&main_entry]),
    ))?;
    g.negative(two.negative(
        "103-wrapped-keys-reordered",
        auth,
        None,
        "Derived from 026: its two wrapped-key entries swapped (the second KEK's first). Opened \
            with the main KEK: the first entry is addressed to another key and skipped, the second \
            unwraps and passes the key commitment, and the header tag fails.",
        with_wrapped(&two.envelope, &[&other_entry, &main_entry]),
    ))?;
    g.negative(base.negative(
        "104-garbage-before-header-tag",
        auth,
        None,
        &format!(
            "Four bytes (de ad be ef) inserted at offset {}, between the wrapped-key entries and \
            the header tag. The header still parses: its last 16 bytes, taken as the header tag, \
            are the four inserted bytes and the first 12 of the real tag, and the payload (the \
            real tag's last 4 bytes, then the real payload) still frames. The data key unwraps \
            and passes the key commitment; the header tag fails.",
            l.tag.start
        ),
        splice(env, l.tag.start..l.tag.start, &[0xde, 0xad, 0xbe, 0xef]),
    ))?;

    // 105: the worked example's inputs sealed by the real local KEK, whose wrap
    // nonce is synthetic (FORMAT.md §10, worked value in §14): the wrapped key
    // and everything after it depend on it. Sealing is deterministic here (a
    // counting RNG supplies the DEK and message id; the nonce is derived), so
    // `tests/vectors.rs` seals it again and compares byte for byte.
    let synthetic = Sealer::new(&kek(WORKED_EXAMPLE_KEK))
        .segment_size(default)
        .seal_with_rng(&mut CountingRng(0), b"hello, lockbox", &worked_context)?;
    g.positive_fixed(Vector {
        name: "105-synthetic-wrap-nonce".to_owned(),
        description: "FORMAT.md §14's inputs (AES-256-GCM, 64 KiB segments, KEK = 32 bytes of 0x42, \
            DEK 00 … 1f, message id 20 … 3f, stored purpose=\"demo\", required tenant=\"acme\", \
            plaintext \"hello, lockbox\") sealed by the local KEK as specified, with the synthetic \
            wrap nonce of FORMAT.md §10 instead of 100's fixed one: nonce = the first 12 bytes of \
            HMAC-SHA-256(K_n, DEK || binding), K_n = HKDF-SHA-256(IKM = KEK, no salt, info = \
            \"lockbox v1 local wrap nonce key\"); §14 lists K_n and the nonce. Bytes 0–153 equal \
            100's; the wrap nonce, the wrapped DEK and tag, and the header tag differ. Sealing \
            these inputs again gives these bytes exactly."
            .to_owned(),
        expect: Expect::Success(b"hello, lockbox".to_vec()),
        kek: WORKED_EXAMPLE_KEK,
        open_context: pairs(&[("tenant", "acme")]),
        suite: Suite::Aes256Gcm,
        segment_size: default,
        sealed_context: worked_context.clone(),
        derived_from: None,
        envelope: synthetic,
    })?;

    // 106–107: format characters (Unicode Cf) in a context key (FORMAT.md §1,
    // §2.2): the last three bytes of "purpose" become one 3-byte format
    // character, so the key keeps its length and still sorts first.
    let key0 = &l.ctx[0];
    let key_start = key0.key_len_at + 2;
    assert_eq!(&env[key_start..key_start + 7], b"purpose");
    for (n, bytes, name, what) in [
        (
            106,
            [0xe2, 0x80, 0x8b],
            "zero-width-space",
            "U+200B ZERO WIDTH SPACE, invisible",
        ),
        (
            107,
            [0xe2, 0x80, 0xae],
            "right-to-left-override",
            "U+202E RIGHT-TO-LEFT OVERRIDE, a bidirectional control",
        ),
    ] {
        g.negative(base.negative(
            &format!("{n:03}-context-key-format-character-{name}"),
            malformed,
            None,
            &format!(
                "Bytes {}–{} of the first context key (\"purpose\", the \"ose\") replaced with {:02x} {:02x} \
                {:02x}: {what}. The key (\"purp\" and that character) keeps its length and order, but \
                context keys may not contain format characters (Unicode Cf), so that no two keys look \
                alike: malformed, before anything is unwrapped.",
                key_start + 4,
                key_start + 6,
                bytes[0],
                bytes[1],
                bytes[2]
            ),
            splice(env, key_start + 4..key_start + 7, &bytes),
        ))?;
    }

    // 108: a header that needs more bytes than the limit, in an input exactly as
    // long as the limit: the input ended inside the header (malformed,
    // truncated), unlike 094, whose input goes on past the limit.
    let at_limit = splice(&big.envelope, bw.len_at..bw.len_at + 2, &[0xff, 0xff]);
    let limit = lockbox::Limits::default().max_header_len();
    assert!(at_limit.len() > limit);
    g.negative(big.negative(
        "108-header-needs-more-than-an-input-at-the-limit",
        malformed,
        None,
        &format!(
            "Derived from 025 like 094 (wrapped length at offset {} set to 65535, so the header \
            would end past the default {limit}-byte header limit), then cut to exactly {limit} \
            bytes: the input ends inside the header, at the limit and not past it, so it is a \
            truncation (malformed), not the header-bytes limit (FORMAT.md §9.1 step 2).",
            bw.len_at
        ),
        at_limit[..limit].to_vec(),
    ))?;
    Ok(())
}
