//! The provider conformance suite for [`lockbox`]: checks that a
//! [`KeyEncryptionProvider`] or [`AsyncKeyEncryptionProvider`], lockbox's own
//! or a third party's, keeps the contract lockbox relies on.
//!
//! **This crate is for tests.** Add it to `[dev-dependencies]` and call
//! [`check_provider`] (blocking providers) or [`check_async_provider`]
//! (network providers; any provider) from a test. It uses lockbox's public
//! API only, so it holds a provider outside lockbox to exactly the standard
//! of the ones lockbox ships.
//!
//! # The checks
//!
//! Each entry point is given the provider under test and `other_key`: the
//! same kind of provider, configured with a *different* key. The suite runs
//! these checks ([`CHECKS`]), in order:
//!
//! | check | what must hold |
//! |---|---|
//! | `round_trip` | a wrapped data key unwraps to the same bytes, names the provider and a key it [`matches`](ProviderIdentity::matches); envelopes sealed with every suite open again; optional abilities (`generate_data_key`, asked with a [`DataKeyRequest`] carrying a plaintext length as sealers send it, and `rewrap`), if offered, give keys that unwrap to the right data key |
//! | `no_clear_key` | the wrapped bytes do not contain the data key |
//! | `matches` | the provider matches its own wrapped keys and not `other_key`'s, nor ones naming another provider id or key id (`other_key` likewise) |
//! | `wrong_context` | an unwrap under any other binding (another value, another storage kind, an extra entry, another suite) fails with [`ProviderErrorKind::Authentication`]; an envelope opened with a wrong required context value fails with [`Error::NoProviderCouldUnwrap`] whose source is that error |
//! | `tampered` | flipping bit 0 or bit 7 of any byte of the wrapped key (every byte up to 512 bytes, else the first and last 256), truncating it or extending it, fails with [`ProviderErrorKind::Authentication`] (or [`ProviderErrorKind::LimitExceeded`], for bytes that name a resource cost, as a passphrase wrap's Argon2id parameters do); a changed key version fails |
//! | `wrong_key` | `other_key` cannot unwrap the provider's wrapped keys nor the reverse (kind `Authentication` or `KeyNotFound`), and an envelope sealed by one does not open with the other |
//! | `concurrency` | 8 users ([`CONCURRENT_USERS`]) seal, open, wrap and unwrap at once, each under its own context, and every result is right |
//! | `errors` | every error names the provider's id; lockbox errors carry the provider error as `source()`, and the source chain ends |
//! | `debug_redacts` | the `Debug` of the provider (before and after it wrapped and unwrapped the key), its wrapped keys, and the `Debug` and `Display` of every error (with its whole source chain) contain the data key neither in hex, nor in base64, nor as a byte list |
//!
//! A failure is a [`ConformanceFailure`] naming the check and saying what
//! went wrong; success is a [`ConformanceReport`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kek = lockbox::LocalKek::generate()?;
//! let other = lockbox::LocalKek::generate()?;
//! let report = lockbox_testing::check_provider(&kek, &other)?;
//! assert_eq!(report.checks(), lockbox_testing::CHECKS);
//! # Ok(()) }
//! ```
//!
//! # Access control
//!
//! [`check_access`] (blocking providers, sync drivers) and
//! [`check_access_async`] (any provider, async drivers) put the provider
//! behind a [`Grant`](lockbox::access::Grant) and an
//! [`Audit`](lockbox::audit::Audit) layer and behind capability handles, and
//! check refusals, use counts, the audit records of successes, refusals and
//! the provider's own failures, and handle round trips.
//!
//! # One suite, two entry points
//!
//! The suite is written once, as an async driver over
//! [`AsyncKeyEncryptionProvider`]: every [`KeyEncryptionProvider`] is one
//! through lockbox's blanket implementation, whose futures finish on their
//! first poll.
//!
//! - [`check_async_provider`] is that driver. Await it on the executor the
//!   provider needs (a tokio runtime for the network providers); it starts no
//!   runtime. Its concurrency check polls the 8 users' futures together on
//!   the caller's task, so a provider that suspends serves them interleaved.
//! - [`check_provider`] runs the same driver for a blocking provider without
//!   any executor: it polls the suite's future **once**, with a no-op waker.
//!   That is enough because a blocking provider's futures are always ready,
//!   and lockbox's sealer and opener suspend only where a provider does. Its
//!   concurrency check runs the 8 users on 8 threads, each polling its own
//!   future the same way, so the provider's calls really overlap. Should a
//!   future ever be pending (which would be a bug in this crate or lockbox),
//!   the check fails with a [`ConformanceFailure`] saying so; it never hangs.
//!   This polling is test support; lockbox itself never blocks on a future.

#![forbid(unsafe_code)]

mod access;

pub use access::{ACCESS, check_access, check_access_async};

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use lockbox::secrecy::ExposeSecret;
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, BoxFuture, DATA_KEY_LEN, DataKey, DataKeyRequest,
    EncryptionContext, Error, KeyEncryptionProvider, KeyVersion, ProviderError, ProviderErrorKind, ProviderIdentity,
    Suite, WrappedKey, WrappedKeyRef,
};

/// How many users the concurrency check runs at once.
pub const CONCURRENT_USERS: usize = 8;
/// Rounds of seal, open, wrap and unwrap each concurrent user runs.
const ROUNDS_PER_USER: usize = 3;
/// Wrapped keys up to this length are tampered with at every byte; longer
/// ones at the first and last half of it.
const TAMPER_ALL_UP_TO: usize = 512;

const ROUND_TRIP: &str = "round_trip";
const NO_CLEAR_KEY: &str = "no_clear_key";
const MATCHES: &str = "matches";
const WRONG_CONTEXT: &str = "wrong_context";
const TAMPERED: &str = "tampered";
const WRONG_KEY: &str = "wrong_key";
const CONCURRENCY: &str = "concurrency";
const ERRORS: &str = "errors";
const DEBUG_REDACTS: &str = "debug_redacts";

/// The names of the checks, in the order they run (see the
/// [crate docs](crate#the-checks)). A passing [`ConformanceReport`] lists
/// all of them.
pub const CHECKS: [&str; 9] = [
    ROUND_TRIP,
    NO_CLEAR_KEY,
    MATCHES,
    WRONG_CONTEXT,
    TAMPERED,
    WRONG_KEY,
    CONCURRENCY,
    ERRORS,
    DEBUG_REDACTS,
];

/// What a conformance run checked. Returned when every check passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceReport {
    provider_id: String,
    checks: Vec<&'static str>,
    wrapped_len: usize,
    tampered_variants: usize,
    offers_generate_data_key: bool,
    offers_rewrap: bool,
}

impl ConformanceReport {
    /// The provider id the provider reported.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }
    /// The names of the checks that passed, in the order they ran.
    pub fn checks(&self) -> &[&'static str] {
        &self.checks
    }
    /// Length of the provider's wrapped keys (of the first one wrapped).
    pub fn wrapped_len(&self) -> usize {
        self.wrapped_len
    }
    /// How many tampered variants of a wrapped key were rejected.
    pub fn tampered_variants(&self) -> usize {
        self.tampered_variants
    }
    /// Whether the provider offers provider-side data-key generation.
    pub fn offers_generate_data_key(&self) -> bool {
        self.offers_generate_data_key
    }
    /// Whether the provider offers server-side rewrap.
    pub fn offers_rewrap(&self) -> bool {
        self.offers_rewrap
    }
}

/// A conformance check that failed: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConformanceFailure {
    check: &'static str,
    reason: String,
}

impl ConformanceFailure {
    fn new(check: &'static str, reason: impl Into<String>) -> Self {
        Self {
            check,
            reason: reason.into(),
        }
    }
    /// The name of the failed check (one of [`CHECKS`]).
    pub fn check(&self) -> &'static str {
        self.check
    }
    /// What went wrong. Never contains key material.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance check `{}` failed: {}", self.check, self.reason)
    }
}

impl std::error::Error for ConformanceFailure {}

// ---------------------------------------------------------------------------
// The entry points.

/// Runs the conformance suite against a blocking provider. `other_key` is the
/// same kind of provider configured with a different key. See the
/// [crate docs](crate) for the checks and for how the one async suite runs
/// here without an executor.
///
/// A provider behind a pointer passes as the pointer: `Box<dyn
/// KeyEncryptionProvider>` and `Arc<dyn KeyEncryptionProvider>` are providers
/// themselves.
pub fn check_provider<P, Q>(provider: &P, other_key: &Q) -> Result<ConformanceReport, ConformanceFailure>
where
    P: KeyEncryptionProvider,
    Q: KeyEncryptionProvider,
{
    let mut passed = Vec::new();
    let outcome = poll_once(run(provider, other_key, Users::Threads, &mut passed));
    outcome.unwrap_or_else(|| {
        // The future is dropped: `passed` says which check was running.
        let check = CHECKS.get(passed.len()).copied().unwrap_or(DEBUG_REDACTS);
        Err(not_ready(check, "the suite"))
    })
}

/// Runs the conformance suite against an async provider (any provider: every
/// blocking one is async too). `other_key` is the same kind of provider
/// configured with a different key. Await it on the executor the provider
/// needs; the concurrency check polls 8 futures at once on the caller's task,
/// and nothing here starts a runtime. The future is `Send`.
pub async fn check_async_provider(
    provider: &dyn AsyncKeyEncryptionProvider,
    other_key: &dyn AsyncKeyEncryptionProvider,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut passed = Vec::new();
    run(provider, other_key, Users::Futures, &mut passed).await
}

/// How the concurrency check runs its users.
#[derive(Clone, Copy)]
enum Users {
    /// One thread per user, each polling its future once ([`check_provider`]).
    Threads,
    /// All users' futures polled together on the caller's task.
    Futures,
}

/// Polls `fut` once with a no-op waker: the result if it was ready, `None`
/// if it was pending. Only for futures that cannot suspend (those of a
/// blocking provider, through lockbox's blanket implementation).
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn not_ready(check: &'static str, what: &str) -> ConformanceFailure {
    ConformanceFailure::new(
        check,
        format!(
            "{what} did not finish in one poll: check_provider drives a blocking provider without an executor, \
             and its futures must be ready at once (use check_async_provider for a provider that suspends)"
        ),
    )
}

// ---------------------------------------------------------------------------
// The suite, written once.

/// The plaintext of the round trips.
const ROUND_TRIP_PLAINTEXT: &[u8] = b"conformance round trip";

/// Largest wrapped key lockbox accepts (`WrappedKey::new`).
const MAX_WRAPPED_LEN: usize = 65_535;

fn plaintext_len(p: &[u8]) -> u64 {
    u64::try_from(p.len()).unwrap_or(u64::MAX)
}

/// Contexts and bindings the suite uses.
struct Fixture {
    ctx: EncryptionContext,
    binding: BindingBuf,
    /// Bindings that must not unwrap what was wrapped under `binding`.
    others: Vec<(&'static str, BindingBuf)>,
    /// The envelope context with a wrong value for the required entry.
    wrong_ctx: EncryptionContext,
}

fn fixture() -> Result<Fixture, ConformanceFailure> {
    let setup = |e: Error| ConformanceFailure::new(ROUND_TRIP, format!("building test contexts: {e}"));
    let ctx = EncryptionContext::new()
        .with("purpose", "conformance")
        .and_then(|c| c.with_required("tenant", "alpha"))
        .map_err(setup)?;
    let suite = Suite::Aes256Gcm;
    let binding = BindingBuf::new(suite, &ctx);
    let other_value = EncryptionContext::new()
        .with("purpose", "conformance")
        .and_then(|c| c.with_required("tenant", "beta"))
        .map_err(setup)?;
    let other_storage = EncryptionContext::new()
        .with("purpose", "conformance")
        .and_then(|c| c.with("tenant", "alpha"))
        .map_err(setup)?;
    let extra_entry = ctx.clone().with("extra", "1").map_err(setup)?;
    let others = vec![
        ("a different context value", BindingBuf::new(suite, &other_value)),
        ("a different storage kind", BindingBuf::new(suite, &other_storage)),
        ("an extra context entry", BindingBuf::new(suite, &extra_entry)),
        ("the empty context", BindingBuf::new(suite, &EncryptionContext::new())),
        ("a different suite", BindingBuf::new(Suite::ChaCha20Poly1305, &ctx)),
    ];
    Ok(Fixture {
        wrong_ctx: other_value,
        ctx,
        binding,
        others,
    })
}

/// Records everything a provider printed or returned, to search for the key.
#[derive(Default)]
struct Transcript {
    texts: Vec<(String, String)>,
}

impl Transcript {
    fn debug(&mut self, what: &str, value: &dyn fmt::Debug) {
        self.texts.push((what.to_string(), format!("{value:?}")));
    }

    /// The `Debug` and `Display` of `err` and of its whole source chain.
    fn error(&mut self, what: &str, err: &(dyn std::error::Error + 'static)) -> Result<(), ConformanceFailure> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut depth = 0usize;
        while let Some(e) = cur {
            depth = depth.saturating_add(1);
            if depth > 64 {
                return Err(ConformanceFailure::new(
                    ERRORS,
                    format!("{what}: the error's source chain is longer than 64 (a cycle?)"),
                ));
            }
            self.texts.push((format!("{what} (Display)"), e.to_string()));
            self.texts.push((format!("{what} (Debug)"), format!("{e:?}")));
            cur = e.source();
        }
        Ok(())
    }

    /// Fails if any recorded text contains `dek` in a recognisable encoding.
    fn check_redacted(&self, dek: &[u8; DATA_KEY_LEN]) -> Result<(), ConformanceFailure> {
        let needles = secret_renderings(dek);
        for (what, text) in &self.texts {
            if let Some(form) = needles.iter().find(|(_, n)| text.contains(n.as_str())) {
                return Err(ConformanceFailure::new(
                    DEBUG_REDACTS,
                    format!("{what} contains the data key ({})", form.0),
                ));
            }
        }
        Ok(())
    }
}

/// The ways a key could show up in text.
fn secret_renderings(dek: &[u8; DATA_KEY_LEN]) -> Vec<(&'static str, String)> {
    let mut lower = String::with_capacity(64);
    for b in dek {
        lower.push_str(&format!("{b:02x}"));
    }
    let upper = lower.to_uppercase();
    // `{:?}` of a byte array or slice, as a derived Debug would print it.
    let head = dek.get(..6).unwrap_or_default();
    let list = head.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
    let hex_list = head.iter().map(|b| format!("{b:#04x}")).collect::<Vec<_>>().join(", ");
    vec![
        ("lowercase hex", lower.get(..24).unwrap_or_default().to_string()),
        ("uppercase hex", upper.get(..24).unwrap_or_default().to_string()),
        ("a decimal byte list", list),
        ("a hex byte list", hex_list),
        (
            "base64",
            Base64Unpadded::encode_string(dek)
                .get(..24)
                .unwrap_or_default()
                .to_string(),
        ),
        (
            "base64url",
            Base64UrlUnpadded::encode_string(dek)
                .get(..24)
                .unwrap_or_default()
                .to_string(),
        ),
        ("padded base64", Base64::encode_string(dek)),
        ("padded base64url", Base64Url::encode_string(dek)),
    ]
}

fn same_key(check: &'static str, what: &str, got: &DataKey, want: &DataKey) -> Result<(), ConformanceFailure> {
    if got.expose_secret() == want.expose_secret() {
        Ok(())
    } else {
        Err(ConformanceFailure::new(
            check,
            format!("{what} returned a different data key"),
        ))
    }
}

/// The wrapped key must name the provider and be matched by it.
fn check_wrapped_identity(
    provider: &dyn ProviderIdentity,
    what: &str,
    w: &WrappedKey,
) -> Result<(), ConformanceFailure> {
    if w.provider_id() != provider.provider_id() {
        return Err(ConformanceFailure::new(
            ROUND_TRIP,
            format!(
                "{what}: wrapped key names provider {:?}, but the provider's id is {:?}",
                w.provider_id(),
                provider.provider_id()
            ),
        ));
    }
    if !provider.matches(w.as_ref()) {
        return Err(ConformanceFailure::new(
            MATCHES,
            format!("{what}: the provider does not match its own wrapped key"),
        ));
    }
    Ok(())
}

fn no_clear_key(w: &WrappedKey, dek: &DataKey) -> Result<(), ConformanceFailure> {
    let key = dek.expose_secret();
    // Also a run of half the key: a provider that leaks part of it fails too.
    let half = key.get(..DATA_KEY_LEN / 2).unwrap_or_default();
    if w.bytes().windows(half.len()).any(|win| win == half) {
        return Err(ConformanceFailure::new(
            NO_CLEAR_KEY,
            "the wrapped key bytes contain the data key in clear",
        ));
    }
    Ok(())
}

/// `matches` must reject keys that name another provider, key or version.
fn check_matches(
    provider: &dyn ProviderIdentity,
    other: &dyn ProviderIdentity,
    own: &WrappedKey,
    others: &WrappedKey,
) -> Result<(), ConformanceFailure> {
    let fail = |why: String| Err(ConformanceFailure::new(MATCHES, why));
    if provider.matches(others.as_ref()) {
        return fail("the provider matches a key wrapped by `other_key` (a different key)".into());
    }
    if other.matches(own.as_ref()) {
        return fail(
            "`other_key` matches a key wrapped by the provider (is `other_key` configured with a different key?)"
                .into(),
        );
    }
    if !other.matches(others.as_ref()) {
        return fail("`other_key` does not match its own wrapped key".into());
    }
    let w = own.as_ref();
    let renamed_provider = if w.provider_id() == "conformance.other" {
        "conformance.another"
    } else {
        "conformance.other"
    };
    let other_key_id = format!("{}-other", w.key_id());
    let (version, bytes) = (w.key_version(), w.bytes());
    // A variant that is not a valid wrapped key (a key id grown past 255
    // bytes) cannot reach a provider from an envelope, so it is skipped.
    let variants = [
        (
            "another provider id",
            WrappedKeyRef::new(renamed_provider, w.key_id(), version, bytes),
        ),
        (
            "another key id",
            WrappedKeyRef::new(w.provider_id(), &other_key_id, version, bytes),
        ),
        (
            "the key id of `other_key`",
            WrappedKeyRef::new(w.provider_id(), others.key_id().as_str(), version, bytes),
        ),
    ];
    for (what, v) in variants {
        let Ok(v) = v else { continue };
        if v != w && provider.matches(v) {
            return fail(format!("the provider matches a wrapped key naming {what}"));
        }
    }
    Ok(())
}

/// An unwrap that must fail with `Authentication` (a wrong binding, tampered bytes).
fn expect_auth_failure(
    check: &'static str,
    provider_id: &str,
    what: &str,
    r: Result<DataKey, ProviderError>,
    transcript: &mut Transcript,
) -> Result<(), ConformanceFailure> {
    let auth = [ProviderErrorKind::Authentication];
    expect_failure(check, provider_id, what, r, &auth, transcript)
}

/// An unwrap that must fail, with one of `kinds` (or any kind if empty).
fn expect_failure(
    check: &'static str,
    provider_id: &str,
    what: &str,
    r: Result<DataKey, ProviderError>,
    kinds: &[ProviderErrorKind],
    transcript: &mut Transcript,
) -> Result<(), ConformanceFailure> {
    match r {
        Ok(_) => Err(ConformanceFailure::new(check, format!("unwrap succeeded with {what}"))),
        Err(e) => {
            transcript.error(what, &e)?;
            check_error_names(provider_id, what, &e)?;
            if kinds.is_empty() || kinds.contains(&e.kind()) {
                Ok(())
            } else {
                Err(ConformanceFailure::new(
                    check,
                    format!(
                        "{what} failed with kind {:?}, expected one of {kinds:?} ({e})",
                        e.kind()
                    ),
                ))
            }
        }
    }
}

/// An error and its sources, joined by `: ` (for failure reasons).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    let mut depth = 0u8;
    while let Some(s) = cur {
        depth = depth.saturating_add(1);
        if depth > 8 {
            break;
        }
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn check_error_names(provider_id: &str, what: &str, e: &ProviderError) -> Result<(), ConformanceFailure> {
    if e.provider_id() == provider_id {
        Ok(())
    } else {
        Err(ConformanceFailure::new(
            ERRORS,
            format!(
                "{what}: the error names provider {:?}, expected {provider_id:?}",
                e.provider_id()
            ),
        ))
    }
}

/// A failed open must be `NoProviderCouldUnwrap` carrying the provider's
/// error as its source, of one of `kinds`.
fn expect_open_failure(
    check: &'static str,
    provider_id: &str,
    what: &str,
    r: Result<Vec<u8>, Error>,
    attempts: usize,
    kinds: &[ProviderErrorKind],
    transcript: &mut Transcript,
) -> Result<(), ConformanceFailure> {
    let e = match r {
        Ok(_) => {
            return Err(ConformanceFailure::new(
                check,
                format!("the envelope opened with {what}"),
            ));
        }
        Err(e) => e,
    };
    transcript.error(what, &e)?;
    match &e {
        Error::NoProviderCouldUnwrap {
            attempts: a, source, ..
        } if *a == attempts => {
            if attempts == 0 {
                return Ok(());
            }
            let Some(p) = source else {
                return Err(ConformanceFailure::new(
                    ERRORS,
                    format!("opening with {what}: NoProviderCouldUnwrap has no source"),
                ));
            };
            let via_source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<ProviderError>());
            if via_source.is_none() {
                return Err(ConformanceFailure::new(
                    ERRORS,
                    format!("opening with {what}: the provider error is not reachable as source()"),
                ));
            }
            check_error_names(provider_id, what, p)?;
            if kinds.contains(&p.kind()) {
                Ok(())
            } else {
                Err(ConformanceFailure::new(
                    check,
                    format!(
                        "opening with {what}: provider error of kind {:?}, expected one of {kinds:?} ({})",
                        p.kind(),
                        chain(p)
                    ),
                ))
            }
        }
        other => Err(ConformanceFailure::new(
            check,
            format!(
                "opening with {what} failed with {other:?}, expected NoProviderCouldUnwrap after {attempts} attempt(s)"
            ),
        )),
    }
}

/// The tampered variants of a wrapped key, with a description of each.
fn tampered_variants(w: &WrappedKey) -> Vec<(String, Vec<u8>)> {
    let bytes = w.bytes();
    let n = bytes.len();
    let positions: Vec<usize> = if n <= TAMPER_ALL_UP_TO {
        (0..n).collect()
    } else {
        let half = TAMPER_ALL_UP_TO / 2;
        (0..half).chain(n.saturating_sub(half)..n).collect()
    };
    let mut out = Vec::with_capacity(positions.len().saturating_mul(2).saturating_add(2));
    for i in positions {
        for mask in [0x01u8, 0x80] {
            let mut b = bytes.to_vec();
            if let Some(x) = b.get_mut(i) {
                *x ^= mask;
            }
            out.push((format!("byte {i} of the wrapped key xored with {mask:#04x}"), b));
        }
    }
    if n > 1 {
        out.push((
            "the wrapped key's last byte removed".to_string(),
            bytes.get(..n.saturating_sub(1)).unwrap_or_default().to_vec(),
        ));
    }
    if n < MAX_WRAPPED_LEN {
        let mut longer = bytes.to_vec();
        longer.push(0);
        out.push(("a zero byte appended to the wrapped key".to_string(), longer));
    }
    out
}

fn other_version(v: KeyVersion) -> KeyVersion {
    KeyVersion(v.0.wrapping_add(1))
}

/// A context and plaintext unique to one concurrent user and round.
fn user_case(user: usize, round: usize) -> Result<(EncryptionContext, Vec<u8>), ConformanceFailure> {
    let ctx = EncryptionContext::new()
        .with("user", &user.to_string())
        .and_then(|c| c.with_required("round", &round.to_string()))
        .map_err(|e| ConformanceFailure::new(CONCURRENCY, format!("building a context: {e}")))?;
    let plaintext = format!("user {user} round {round}").into_bytes();
    Ok((ctx, plaintext))
}

fn join_threads(results: Vec<std::thread::Result<Result<(), ConformanceFailure>>>) -> Result<(), ConformanceFailure> {
    for r in results {
        match r {
            Ok(inner) => inner?,
            Err(_) => return Err(ConformanceFailure::new(CONCURRENCY, "a user thread panicked")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The driver.

/// Polls every future in turn until all are done (no runtime needed: the
/// caller's executor drives it, and wakes it through any of the futures).
struct JoinAll<'a, T> {
    futures: Vec<Option<BoxFuture<'a, T>>>,
    results: Vec<Option<T>>,
}

impl<'a, T> JoinAll<'a, T> {
    fn new(futures: Vec<BoxFuture<'a, T>>) -> Self {
        let results = futures.iter().map(|_| None).collect();
        Self {
            futures: futures.into_iter().map(Some).collect(),
            results,
        }
    }
}

impl<T: Unpin> Future for JoinAll<'_, T> {
    type Output = Vec<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = self.get_mut();
        let mut pending = false;
        for (slot, result) in this.futures.iter_mut().zip(this.results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(this.results.iter_mut().filter_map(Option::take).collect())
        }
    }
}

/// The suite. `checks` collects the names of the checks that passed, so
/// that [`check_provider`] can name the one that was running if the future
/// was not ready.
async fn run(
    provider: &dyn AsyncKeyEncryptionProvider,
    other_key: &dyn AsyncKeyEncryptionProvider,
    users: Users,
    checks: &mut Vec<&'static str>,
) -> Result<ConformanceReport, ConformanceFailure> {
    let f = fixture()?;
    let pid = provider.provider_id();
    let mut t = Transcript::default();
    let dek = DataKey::generate().map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("generating a key: {e}")))?;
    let b = f.binding.as_binding();
    t.debug("the provider's Debug", &provider);

    // round_trip
    let w = provider
        .wrap_async(&dek, b)
        .await
        .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("wrap failed: {}", chain(&e))))?;
    t.debug("a wrapped key's Debug", &w);
    t.debug("the provider's Debug after a wrap", &provider);
    check_wrapped_identity(provider, "wrap", &w)?;
    let back = provider
        .unwrap_async(w.as_ref(), b)
        .await
        .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("unwrap of a fresh wrap failed: {}", chain(&e))))?;
    t.debug("the provider's Debug after an unwrap", &provider);
    same_key(ROUND_TRIP, "unwrap of a fresh wrap", &back, &dek)?;
    for suite in Suite::ALL {
        let env = AsyncSealer::new(provider)
            .suite(suite)
            .seal(ROUND_TRIP_PLAINTEXT, &f.ctx)
            .await
            .map_err(|e| {
                ConformanceFailure::new(ROUND_TRIP, format!("seal with {} failed: {}", suite.name(), chain(&e)))
            })?;
        let pt = AsyncOpener::new(provider).open(&env, &f.ctx).await.map_err(|e| {
            ConformanceFailure::new(ROUND_TRIP, format!("open with {} failed: {}", suite.name(), chain(&e)))
        })?;
        if pt != ROUND_TRIP_PLAINTEXT {
            return Err(ConformanceFailure::new(ROUND_TRIP, "open returned other plaintext"));
        }
    }
    // As a one-shot seal asks: with the length of the plaintext to seal.
    let request = DataKeyRequest::new(b).with_plaintext_len(plaintext_len(ROUND_TRIP_PLAINTEXT));
    let generated = provider
        .generate_data_key_async(request)
        .await
        .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("generate_data_key failed: {e}")))?;
    let offers_generate_data_key = generated.is_some();
    if let Some((gdek, gw)) = &generated {
        t.debug("generate_data_key's Debug", &(gdek, gw));
        check_wrapped_identity(provider, "generate_data_key", gw)?;
        let back = provider
            .unwrap_async(gw.as_ref(), b)
            .await
            .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("unwrap of a generated key failed: {e}")))?;
        same_key(ROUND_TRIP, "unwrap of a generated key", &back, gdek)?;
        no_clear_key(gw, gdek)?;
        for (what, other) in &f.others {
            let what = format!("a generated key unwrapped under {what}");
            let r = provider.unwrap_async(gw.as_ref(), other.as_binding()).await;
            expect_auth_failure(WRONG_CONTEXT, pid, &what, r, &mut t)?;
        }
    }
    let rewrapped = provider
        .rewrap_async(w.as_ref(), b)
        .await
        .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("rewrap failed: {e}")))?;
    let offers_rewrap = rewrapped.is_some();
    if let Some(rw) = &rewrapped {
        t.debug("a rewrapped key's Debug", rw);
        check_wrapped_identity(provider, "rewrap", rw)?;
        let back = provider
            .unwrap_async(rw.as_ref(), b)
            .await
            .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("unwrap of a rewrapped key failed: {e}")))?;
        same_key(ROUND_TRIP, "unwrap of a rewrapped key", &back, &dek)?;
        no_clear_key(rw, &dek)?;
        for (what, other) in &f.others {
            if provider
                .rewrap_async(w.as_ref(), other.as_binding())
                .await
                .is_ok_and(|r| r.is_some())
            {
                return Err(ConformanceFailure::new(
                    WRONG_CONTEXT,
                    format!("rewrap succeeded under {what}"),
                ));
            }
        }
    }
    checks.push(ROUND_TRIP);

    no_clear_key(&w, &dek)?;
    checks.push(NO_CLEAR_KEY);

    // matches
    let other_dek =
        DataKey::generate().map_err(|e| ConformanceFailure::new(MATCHES, format!("generating a key: {e}")))?;
    let ow = other_key
        .wrap_async(&other_dek, b)
        .await
        .map_err(|e| ConformanceFailure::new(MATCHES, format!("`other_key` failed to wrap: {e}")))?;
    check_matches(provider, other_key, &w, &ow)?;
    checks.push(MATCHES);

    // wrong_context
    for (what, other) in &f.others {
        let what = format!("an unwrap under {what}");
        let r = provider.unwrap_async(w.as_ref(), other.as_binding()).await;
        expect_auth_failure(WRONG_CONTEXT, pid, &what, r, &mut t)?;
    }
    let env = AsyncSealer::new(provider)
        .seal(b"conformance", &f.ctx)
        .await
        .map_err(|e| ConformanceFailure::new(ROUND_TRIP, format!("seal failed: {e}")))?;
    let auth = [ProviderErrorKind::Authentication];
    let r = AsyncOpener::new(provider).open(&env, &f.wrong_ctx).await;
    expect_open_failure(
        WRONG_CONTEXT,
        pid,
        "a wrong required context value",
        r,
        1,
        &auth,
        &mut t,
    )?;
    checks.push(WRONG_CONTEXT);

    // tampered
    let variants = tampered_variants(&w);
    for (what, bytes) in &variants {
        let v = WrappedKeyRef::new(w.provider_id(), w.key_id().as_str(), w.key_version(), bytes)
            .map_err(|e| ConformanceFailure::new(TAMPERED, format!("{what}: not a valid wrapped key: {e}")))?;
        let r = provider.unwrap_async(v, b).await;
        // A tampered resource parameter (a passphrase wrap's Argon2id cost)
        // may be refused as over the limits before any work is done.
        let refused = [ProviderErrorKind::Authentication, ProviderErrorKind::LimitExceeded];
        expect_failure(TAMPERED, pid, what, r, &refused, &mut t)?;
    }
    let v = WrappedKeyRef::new(
        w.provider_id(),
        w.key_id().as_str(),
        other_version(w.key_version()),
        w.bytes(),
    )
    .map_err(|e| ConformanceFailure::new(TAMPERED, format!("another key version: {e}")))?;
    let r = provider.unwrap_async(v, b).await;
    expect_failure(TAMPERED, pid, "another key version", r, &[], &mut t)?;
    checks.push(TAMPERED);

    // wrong_key
    let wrong = [ProviderErrorKind::Authentication, ProviderErrorKind::KeyNotFound];
    let r = other_key.unwrap_async(w.as_ref(), b).await;
    expect_failure(
        WRONG_KEY,
        other_key.provider_id(),
        "`other_key` unwrapping the provider's key",
        r,
        &wrong,
        &mut t,
    )?;
    let r = provider.unwrap_async(ow.as_ref(), b).await;
    expect_failure(
        WRONG_KEY,
        pid,
        "the provider unwrapping `other_key`'s key",
        r,
        &wrong,
        &mut t,
    )?;
    let r = AsyncOpener::new(other_key).open(&env, &f.ctx).await;
    expect_open_failure(WRONG_KEY, other_key.provider_id(), "`other_key`", r, 0, &wrong, &mut t)?;
    checks.push(WRONG_KEY);

    // concurrency
    match users {
        Users::Threads => std::thread::scope(|s| {
            let handles: Vec<_> = (0..CONCURRENT_USERS)
                .map(|user| {
                    s.spawn(move || {
                        poll_once(concurrent_user(provider, user))
                            .unwrap_or_else(|| Err(not_ready(CONCURRENCY, &format!("user {user}"))))
                    })
                })
                .collect();
            join_threads(handles.into_iter().map(|h| h.join()).collect())
        })?,
        Users::Futures => {
            let users: Vec<BoxFuture<'_, Result<(), ConformanceFailure>>> = (0..CONCURRENT_USERS)
                .map(|user| -> BoxFuture<'_, Result<(), ConformanceFailure>> {
                    Box::pin(concurrent_user(provider, user))
                })
                .collect();
            for r in JoinAll::new(users).await {
                r?;
            }
        }
    }
    checks.push(CONCURRENCY);

    checks.push(ERRORS);
    t.check_redacted(dek.expose_secret())?;
    if let Some((gdek, _)) = &generated {
        t.check_redacted(gdek.expose_secret())?;
    }
    checks.push(DEBUG_REDACTS);

    Ok(ConformanceReport {
        provider_id: pid.to_string(),
        checks: checks.clone(),
        wrapped_len: w.bytes().len(),
        tampered_variants: variants.len(),
        offers_generate_data_key,
        offers_rewrap,
    })
}

/// One concurrent user: its own context, seal, open, wrap, unwrap.
async fn concurrent_user(provider: &dyn AsyncKeyEncryptionProvider, user: usize) -> Result<(), ConformanceFailure> {
    let fail =
        |what: &str, e: &dyn fmt::Display| ConformanceFailure::new(CONCURRENCY, format!("user {user}: {what}: {e}"));
    for round in 0..ROUNDS_PER_USER {
        let (ctx, pt) = user_case(user, round)?;
        let env = AsyncSealer::new(provider)
            .seal(&pt, &ctx)
            .await
            .map_err(|e| fail("seal", &e))?;
        let back = AsyncOpener::new(provider)
            .open(&env, &ctx)
            .await
            .map_err(|e| fail("open", &e))?;
        if back != pt {
            return Err(fail("open", &"returned other plaintext"));
        }
        let binding = BindingBuf::new(Suite::Aes256Gcm, &ctx);
        let dek = DataKey::generate().map_err(|e| fail("generate", &e))?;
        let w = provider
            .wrap_async(&dek, binding.as_binding())
            .await
            .map_err(|e| fail("wrap", &e))?;
        let got = provider
            .unwrap_async(w.as_ref(), binding.as_binding())
            .await
            .map_err(|e| fail("unwrap", &e))?;
        same_key(CONCURRENCY, &format!("user {user}: unwrap"), &got, &dek)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that is never ready.
    struct Never;
    impl Future for Never {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    #[test]
    fn a_pending_future_is_reported_not_waited_for() {
        assert_eq!(poll_once(Never), None);
        assert_eq!(poll_once(async { 7 }), Some(7));
        let f = not_ready(CONCURRENCY, "user 3");
        assert_eq!(f.check(), CONCURRENCY);
        assert!(f.reason().starts_with("user 3 did not finish in one poll"), "{f}");
        assert!(f.to_string().contains("check_async_provider"), "{f}");
    }
}
