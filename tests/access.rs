//! Access control: grants (every constraint at its boundary, nesting only
//! narrows, refusals typed and audited), capability handles, and the audit
//! layer's records of successes and failures, each over sync providers
//! (`Layered`, `Sealer` / `Opener`) and async-only ones (`AsyncLayered`,
//! `AsyncSealer` / `AsyncOpener`), over a local key and a keyring.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "keyring_common/async_only.rs"]
mod async_only;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_only::{AsyncOnly, block_on};
use lockbox::access::{
    AccessDenied, AsyncLayered, Grant, Layered, OpenOnly, Operation, Operations, RewrapOnly, SealOnly, Violation,
    WallClock,
};
use lockbox::audit::{Audit, AuditRecord, ContextValues, MemorySink};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BindingBuf, DataKey, DataKeyRequest, EncryptionContext,
    Error, KeyEncryptionProvider, KeyId, LocalKek, Opener, ProviderErrorKind, Sealer, Suite, hazmat,
};

/// A wall clock the test sets by hand (whole seconds).
#[derive(Debug, Default)]
struct ManualClock(AtomicU64);

impl ManualClock {
    fn set(&self, secs: u64) {
        self.0.store(secs, Ordering::SeqCst);
    }
}

impl WallClock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("tenant", tenant)
        .unwrap()
        .with("purpose", "report")
        .unwrap()
        .with_required("user", "u-secret-17")
        .unwrap()
}

fn kek() -> Arc<LocalKek> {
    Arc::new(LocalKek::generate().unwrap())
}

/// The grant refusal behind an envelope error, or a panic saying what it was.
fn denied(e: &Error) -> &AccessDenied {
    AccessDenied::in_error(e).unwrap_or_else(|| panic!("not a grant refusal: {e:?}"))
}

/// Seal and open through the sync drivers, or the async ones over the same
/// provider made async-only: each behaviour below runs both ways.
trait Drive {
    fn seal(&self, pt: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error>;
    fn open(&self, env: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error>;
}

impl<P: KeyEncryptionProvider, L: lockbox::access::Layer> Drive for Layered<P, L> {
    fn seal(&self, pt: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error> {
        Sealer::new(self).seal(pt, c)
    }
    fn open(&self, env: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error> {
        Opener::new(self).open(env, c)
    }
}

impl<P: AsyncKeyEncryptionProvider, L: lockbox::access::Layer> Drive for AsyncLayered<P, L> {
    fn seal(&self, pt: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error> {
        block_on(AsyncSealer::new(self).seal(pt, c))
    }
    fn open(&self, env: &[u8], c: &EncryptionContext) -> Result<Vec<u8>, Error> {
        block_on(AsyncOpener::new(self).open(env, c))
    }
}

/// Runs `body` with a factory putting a layer in front of `kek`, sync then async.
fn both<L: lockbox::access::Layer>(kek: &Arc<LocalKek>, make: impl Fn() -> L, body: impl Fn(&dyn Drive, &L)) {
    let sync = Layered::new(kek.clone(), make());
    body(&sync, sync.layer());
    let asynchronous = AsyncLayered::new(AsyncOnly::new(kek.clone()), make());
    body(&asynchronous, asynchronous.layer());
}

#[test]
fn context_constraints_at_their_boundaries() {
    let k = kek();
    let acme = lockbox::seal(&*k, b"acme", &ctx("acme")).unwrap();
    let acme_eu = lockbox::seal(&*k, b"acme-eu", &ctx("acme-eu")).unwrap();
    let no_tenant_ctx = EncryptionContext::new().with("purpose", "report").unwrap();
    let no_tenant = lockbox::seal(&*k, b"none", &no_tenant_ctx).unwrap();

    // Exact value: "acme" yes; "acme-eu" (a prefix match) and a missing key no.
    both(
        &k,
        || {
            Grant::builder("exact", Operations::ALL)
                .require("tenant", "acme")
                .build()
                .unwrap()
        },
        |p, _| {
            assert_eq!(p.open(&acme, &ctx("acme")).unwrap(), b"acme");
            let e = p.open(&acme_eu, &ctx("acme-eu")).unwrap_err();
            assert_eq!(
                denied(&e).violation(),
                &Violation::ContextValue { key: "tenant".into() }
            );
            let e = p.open(&no_tenant, &no_tenant_ctx).unwrap_err();
            assert_eq!(
                denied(&e).violation(),
                &Violation::ContextKeyMissing { key: "tenant".into() }
            );
            // Sealing is checked against the same binding.
            assert!(p.seal(b"x", &ctx("acme")).is_ok());
            let e = p.seal(b"x", &ctx("globex")).unwrap_err();
            assert_eq!(denied(&e).constraint(), "context.value");
        },
    );
    // One of a set.
    both(
        &k,
        || {
            Grant::builder("set", Operations::OPEN)
                .require_one_of("tenant", ["acme", "acme-eu"])
                .build()
                .unwrap()
        },
        |p, _| {
            assert!(p.open(&acme, &ctx("acme")).is_ok());
            assert!(p.open(&acme_eu, &ctx("acme-eu")).is_ok());
            assert!(p.open(&no_tenant, &no_tenant_ctx).is_err());
        },
    );
    // Required keys (any value), and keys allowed.
    both(
        &k,
        || {
            Grant::builder("keys", Operations::OPEN)
                .require_keys(["tenant", "user"])
                .build()
                .unwrap()
        },
        |p, _| {
            assert!(p.open(&acme_eu, &ctx("acme-eu")).is_ok());
            let e = p.open(&no_tenant, &no_tenant_ctx).unwrap_err();
            assert_eq!(denied(&e).constraint(), "context.missing");
        },
    );
    both(
        &k,
        || {
            Grant::builder("only", Operations::OPEN)
                .allow_only_keys(["tenant", "purpose"])
                .build()
                .unwrap()
        },
        |p, _| {
            assert!(p.open(&no_tenant, &no_tenant_ctx).is_ok());
            let e = p.open(&acme, &ctx("acme")).unwrap_err();
            assert_eq!(
                denied(&e).violation(),
                &Violation::ContextKeyNotAllowed { key: "user".into() }
            );
        },
    );
    // Exactly this context: one more or one fewer entry is refused.
    both(
        &k,
        || {
            Grant::builder("exactly", Operations::OPEN)
                .require_exactly(&ctx("acme"))
                .build()
                .unwrap()
        },
        |p, _| {
            assert!(p.open(&acme, &ctx("acme")).is_ok());
            assert!(p.open(&no_tenant, &no_tenant_ctx).is_err());
            assert!(p.open(&acme_eu, &ctx("acme-eu")).is_err());
        },
    );
    // A predicate, which sees the suite too.
    both(
        &k,
        || {
            Grant::builder("pred", Operations::ALL)
                .predicate("gcm-only", |b| b.suite() == Suite::Aes256Gcm)
                .build()
                .unwrap()
        },
        |p, _| {
            assert!(p.open(&acme, &ctx("acme")).is_ok());
            let chacha = Sealer::new(&*k)
                .suite(Suite::ChaCha20Poly1305)
                .seal(b"c", &ctx("acme"))
                .unwrap();
            let e = p.open(&chacha, &ctx("acme")).unwrap_err();
            assert_eq!(
                denied(&e).violation(),
                &Violation::ContextPredicate {
                    name: "gcm-only".into()
                }
            );
        },
    );
}

#[test]
fn a_required_value_the_grant_allows_but_the_envelope_lacks_fails_authentication() {
    // The grant checks the binding the opener reconstructs; the wrapped key
    // opens only under its true binding.
    let k = kek();
    let env = lockbox::seal(
        &*k,
        b"x",
        &EncryptionContext::new().with_required("tenant", "globex").unwrap(),
    )
    .unwrap();
    let p = Layered::new(
        k,
        Grant::builder("g", Operations::OPEN)
            .require("tenant", "acme")
            .build()
            .unwrap(),
    );
    let e = lockbox::open(
        &p,
        &env,
        &EncryptionContext::new().with_required("tenant", "acme").unwrap(),
    )
    .unwrap_err();
    assert!(AccessDenied::in_error(&e).is_none());
    let Error::NoProviderCouldUnwrap { source: Some(s), .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(s.kind(), ProviderErrorKind::Authentication);
}

#[test]
fn validity_window_boundaries_are_inclusive() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    let clock = Arc::new(ManualClock::default());
    let c = clock.clone();
    both(
        &k,
        move || {
            Grant::builder("window", Operations::OPEN)
                .not_before(UnixTime(1000))
                .not_after(UnixTime(2000))
                .clock(c.clone())
                .build()
                .unwrap()
        },
        |p, _| {
            let at = |t: u64| {
                clock.set(t);
                p.open(&env, &ctx("acme"))
            };
            let e = at(999).unwrap_err();
            assert_eq!(
                denied(&e).violation(),
                &Violation::NotYetValid {
                    not_before: UnixTime(1000)
                }
            );
            assert!(at(1000).is_ok());
            assert!(at(2000).is_ok());
            let e = at(2001).unwrap_err();
            assert_eq!(denied(&e).constraint(), "not_after");
        },
    );
    // A window that ends before it starts is refused at build.
    assert!(
        Grant::builder("bad", Operations::ALL)
            .not_before(UnixTime(2))
            .not_after(UnixTime(1))
            .build()
            .is_err()
    );
    assert!(Grant::builder("", Operations::ALL).build().is_err());
}

#[test]
fn max_uses_boundary_and_refusals_do_not_count() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    let other = lockbox::seal(&*k, b"x", &ctx("globex")).unwrap();
    both(
        &k,
        || {
            Grant::builder("uses", Operations::OPEN)
                .require("tenant", "acme")
                .max_uses(3)
                .build()
                .unwrap()
        },
        |p, g| {
            for _ in 0..3 {
                // A refusal on the way does not use anything up.
                assert!(p.open(&other, &ctx("globex")).is_err());
                assert!(p.open(&env, &ctx("acme")).is_ok());
            }
            assert_eq!((g.uses(), g.remaining_uses()), (3, Some(0)));
            let e = p.open(&env, &ctx("acme")).unwrap_err();
            assert_eq!(denied(&e).violation(), &Violation::UsesExhausted { max_uses: 3 });
            assert_eq!(g.uses(), 3);
        },
    );
}

#[test]
fn generation_not_offered_gives_its_use_back() {
    // A local key offers no generation: the sealer asks (not a use), then wraps (one use).
    let k = kek();
    both(
        &k,
        || Grant::builder("seal", Operations::WRAP).max_uses(2).build().unwrap(),
        |p, g| {
            p.seal(b"a", &ctx("acme")).unwrap();
            p.seal(b"b", &ctx("acme")).unwrap();
            assert_eq!(g.uses(), 2);
            assert_eq!(
                denied(&p.seal(b"c", &ctx("acme")).unwrap_err()).constraint(),
                "max_uses"
            );
        },
    );
}

#[test]
fn max_uses_hold_under_racing_threads() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    let p = Layered::new(
        k,
        Grant::builder("race", Operations::OPEN).max_uses(50).build().unwrap(),
    );
    let ok = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..20 {
                    if lockbox::open(&p, &env, &ctx("acme")).is_ok() {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(ok.load(Ordering::SeqCst), 50);
    assert_eq!(p.layer().uses(), 50);
}

#[test]
fn operations_and_what_they_imply() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    both(
        &k,
        || Grant::builder("open", Operations::OPEN).build().unwrap(),
        |p, _| {
            assert!(p.open(&env, &ctx("acme")).is_ok());
            let e = p.seal(b"x", &ctx("acme")).unwrap_err();
            // Generation is asked first: refused as such.
            assert_eq!(
                denied(&e).violation(),
                &Violation::Operation(Operation::GenerateDataKey)
            );
        },
    );
    both(
        &k,
        || Grant::builder("seal", Operations::SEAL).build().unwrap(),
        |p, _| {
            assert!(p.seal(b"x", &ctx("acme")).is_ok());
            assert_eq!(
                denied(&p.open(&env, &ctx("acme")).unwrap_err()).violation(),
                &Violation::Operation(Operation::Unwrap)
            );
        },
    );
    assert!(Operations::WRAP.permits(Operation::GenerateDataKey));
    assert!((Operations::WRAP | Operations::UNWRAP).permits(Operation::Rewrap));
    assert!(!Operations::UNWRAP.permits(Operation::Rewrap));
    assert!(!Operations::GENERATE_DATA_KEY.permits(Operation::Wrap));
    assert!(Operations::REWRAP.permits(Operation::Rewrap) && !Operations::REWRAP.permits(Operation::Unwrap));

    // Server-side rewrap (a keyring offers it) under a rewrap-only grant.
    let ring = Arc::new(Keyring::generate(KeyId::new("ring").unwrap(), UnixTime(1)).unwrap());
    let b = BindingBuf::new(Suite::Aes256Gcm, &ctx("acme"));
    let dek = DataKey::generate().unwrap();
    let w = ring.wrap(&dek, b.as_binding()).unwrap();
    let rewrap_only = Layered::new(ring.clone(), Grant::builder("rw", Operations::REWRAP).build().unwrap());
    assert!(rewrap_only.rewrap(w.as_ref(), b.as_binding()).unwrap().is_some());
    let e = rewrap_only.unwrap(w.as_ref(), b.as_binding()).unwrap_err();
    assert_eq!(e.kind(), ProviderErrorKind::PermissionDenied);
    assert_eq!(
        AccessDenied::of(&e).unwrap().violation(),
        &Violation::Operation(Operation::Unwrap)
    );
}

#[test]
fn nested_grants_only_narrow() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    let globex = lockbox::seal(&*k, b"x", &ctx("globex")).unwrap();
    let clock = Arc::new(ManualClock::default());
    clock.set(500);
    let inner = Grant::builder("inner", Operations::OPEN)
        .require("tenant", "acme")
        .not_after(UnixTime(1000))
        .max_uses(4)
        .clock(clock.clone())
        .build()
        .unwrap();
    // The outer grant tries to widen every constraint, and adds one of its own.
    let outer = Grant::builder("outer", Operations::ALL)
        .not_after(UnixTime(9999))
        .max_uses(100)
        .require("purpose", "report")
        .clock(clock.clone())
        .build()
        .unwrap();
    let p = Layered::new(Layered::new(k.clone(), inner), outer);
    // Wider operations: still no sealing.
    let e = lockbox::seal(&p, b"x", &ctx("acme")).unwrap_err();
    assert_eq!(denied(&e).grant(), "inner");
    // Wider context: still only acme.
    assert_eq!(
        denied(&lockbox::open(&p, &globex, &ctx("globex")).unwrap_err()).grant(),
        "inner"
    );
    // The outer constraint applies too.
    let other_purpose = EncryptionContext::new()
        .with("tenant", "acme")
        .unwrap()
        .with("purpose", "x")
        .unwrap();
    let env2 = lockbox::seal(&*k, b"y", &other_purpose).unwrap();
    assert_eq!(
        denied(&lockbox::open(&p, &env2, &other_purpose).unwrap_err()).grant(),
        "outer"
    );
    // Fewer uses: the inner count wins.
    for _ in 0..4 {
        lockbox::open(&p, &env, &ctx("acme")).unwrap();
    }
    assert_eq!(
        denied(&lockbox::open(&p, &env, &ctx("acme")).unwrap_err()).constraint(),
        "max_uses"
    );
    // A shorter window: the inner one wins.
    let inner = Grant::builder("inner", Operations::OPEN)
        .not_after(UnixTime(1000))
        .clock(clock.clone())
        .build()
        .unwrap();
    let outer = Grant::builder("outer", Operations::OPEN)
        .not_after(UnixTime(9999))
        .clock(clock.clone())
        .build()
        .unwrap();
    let p = Layered::new(Layered::new(k.clone(), inner), outer);
    clock.set(1001);
    assert_eq!(
        denied(&lockbox::open(&p, &env, &ctx("acme")).unwrap_err()).grant(),
        "inner"
    );
    // And the inner grant counts its outer grants' calls: two views over one
    // inner grant share its uses.
    let shared = Arc::new(Layered::new(
        k.clone(),
        Grant::builder("shared", Operations::OPEN).max_uses(2).build().unwrap(),
    ));
    let a = Layered::new(shared.clone(), Grant::builder("a", Operations::OPEN).build().unwrap());
    let b = Layered::new(shared.clone(), Grant::builder("b", Operations::OPEN).build().unwrap());
    lockbox::open(&a, &env, &ctx("acme")).unwrap();
    lockbox::open(&b, &env, &ctx("acme")).unwrap();
    assert_eq!(
        denied(&lockbox::open(&a, &env, &ctx("acme")).unwrap_err()).grant(),
        "shared"
    );
}

#[test]
fn refusals_never_show_context_values() {
    let k = kek();
    let secret = "tenant-value-that-must-not-leak";
    let c = EncryptionContext::new().with_required("tenant", secret).unwrap();
    let env = lockbox::seal(&*k, b"x", &c).unwrap();
    let p = Layered::new(
        k,
        Grant::builder("g", Operations::OPEN)
            .require("tenant", "acme")
            .build()
            .unwrap(),
    );
    let e = lockbox::open(&p, &env, &c).unwrap_err();
    let d = denied(&e);
    for text in [
        format!("{e}"),
        format!("{e:?}"),
        format!("{d}"),
        format!("{d:?}"),
        format!("{p:?}"),
    ] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("acme"), "the grant's allowed value shows in {text}");
    }
    assert_eq!(
        format!("{d}"),
        "access denied by grant \"g\": context key \"tenant\" does not have an allowed value"
    );
}

fn record_of<'r>(records: &'r [AuditRecord], op: &str, outcome: &str) -> &'r AuditRecord {
    records
        .iter()
        .find(|r| r.operation == op && r.outcome == outcome)
        .unwrap_or_else(|| panic!("no {op} {outcome} in {records:#?}"))
}

#[test]
fn audit_records_successes_failures_and_refusals() {
    let k = kek();
    let key_hex = hex::encode(hazmat::local_kek_bytes(&k));
    let log = Arc::new(MemorySink::new());
    let audit = || {
        Audit::builder(log.clone())
            .principal("reporting-service")
            .context_values(ContextValues::only(["tenant"]))
            .build()
    };
    let acme = lockbox::seal(&*k, b"acme", &ctx("acme")).unwrap();
    let globex = lockbox::seal(&*k, b"globex", &ctx("globex")).unwrap();
    // Grants inside, audit outside: refusals are recorded.
    let sync = Layered::new(
        Layered::new(
            k.clone(),
            Grant::builder("acme-only", Operations::ALL)
                .require("tenant", "acme")
                .build()
                .unwrap(),
        ),
        audit(),
    );
    let asynchronous = AsyncLayered::new(
        AsyncLayered::new(
            AsyncOnly::new(k.clone()),
            Grant::builder("acme-only", Operations::ALL)
                .require("tenant", "acme")
                .build()
                .unwrap(),
        ),
        audit(),
    );
    let drivers: [&dyn Drive; 2] = [&sync, &asynchronous];
    for p in drivers {
        log.take();
        p.seal(b"new", &ctx("acme")).unwrap();
        assert_eq!(p.open(&acme, &ctx("acme")).unwrap(), b"acme");
        assert!(p.open(&globex, &ctx("globex")).is_err());
        // A failure of the provider itself: the wrong required value.
        let mut wrong = ctx("acme");
        wrong.insert_required("user", "someone-else").unwrap();
        assert!(p.open(&acme, &wrong).is_err());
        let records = log.records();
        // generate (not offered) is not recorded: wrap, unwrap, denied unwrap, failed unwrap.
        assert_eq!(records.len(), 4, "{records:#?}");
        let wrap = record_of(&records, "wrap", "success");
        assert_eq!(wrap.key_id.as_deref(), Some(k.key_id().as_str()));
        assert_eq!(wrap.key_version, Some(1));
        assert_eq!(wrap.principal.as_deref(), Some("reporting-service"));
        assert_eq!(wrap.provider_id.as_deref(), Some(lockbox::LOCAL_PROVIDER_ID));
        assert!(wrap.time.is_some());
        let ok = record_of(&records, "unwrap", "success");
        assert_eq!(
            ok.context,
            [
                ("purpose".to_string(), None),
                ("tenant".to_string(), Some("acme".to_string())),
                ("user".to_string(), None)
            ]
        );
        let no = record_of(&records, "unwrap", "denied");
        assert_eq!(no.error, Some("permission_denied"));
        assert_eq!(
            (no.denied_by.as_deref(), no.violation),
            (Some("acme-only"), Some("context.value"))
        );
        assert_eq!(no.key_id.as_deref(), Some(k.key_id().as_str()));
        let failed = record_of(&records, "unwrap", "failure");
        assert_eq!(failed.error, Some("authentication"));
        // The digest tells bindings apart without showing them.
        assert_ne!(ok.binding_digest, failed.binding_digest);
        assert_eq!(ok.binding_digest, wrap.binding_digest);
        for r in &records {
            let json = r.to_json();
            for leak in ["u-secret-17", "someone-else", "report\"", &key_hex] {
                assert!(!json.contains(leak), "{leak} in {json}");
            }
            serde_json::from_str::<serde_json::Value>(&json).unwrap();
        }
    }
}

#[test]
fn audit_fails_closed_unless_told_otherwise() {
    let k = kek();
    let env = lockbox::seal(&*k, b"x", &ctx("acme")).unwrap();
    let log = Arc::new(MemorySink::new());
    log.set_failing(true);
    let closed = Layered::new(k.clone(), Audit::new(log.clone()));
    let e = lockbox::open(&closed, &env, &ctx("acme")).unwrap_err();
    let Error::NoProviderCouldUnwrap { source: Some(s), .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(s.kind(), ProviderErrorKind::Unavailable);
    let e = lockbox::seal(&closed, b"x", &ctx("acme")).unwrap_err();
    assert!(
        matches!(&e, Error::Provider(p) if p.kind() == ProviderErrorKind::Unavailable),
        "{e:?}"
    );
    let asynchronous = AsyncLayered::new(AsyncOnly::new(k.clone()), Audit::new(log.clone()));
    assert!(block_on(AsyncOpener::new(&asynchronous).open(&env, &ctx("acme"))).is_err());
    let open = Layered::new(k, Audit::builder(log.clone()).fail_open().build());
    assert_eq!(lockbox::open(&open, &env, &ctx("acme")).unwrap(), b"x");
    assert!(log.is_empty());
}

#[test]
fn context_value_policies_and_keyed_digests() {
    let k = kek();
    let c = ctx("acme");
    let b = BindingBuf::new(Suite::Aes256Gcm, &c);
    let dek = DataKey::generate().unwrap();
    let values = |policy: ContextValues| {
        let log = Arc::new(MemorySink::new());
        let p = Layered::new(k.clone(), Audit::builder(log.clone()).context_values(policy).build());
        p.wrap(&dek, b.as_binding()).unwrap();
        log.records().remove(0)
    };
    let shown = |r: &AuditRecord| {
        r.context
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    assert!(shown(&values(ContextValues::none())).is_empty());
    assert!(shown(&values(ContextValues::default())).is_empty());
    assert_eq!(shown(&values(ContextValues::stored())), ["purpose", "tenant"]);
    assert_eq!(shown(&values(ContextValues::all())), ["purpose", "tenant", "user"]);
    let unkeyed = values(ContextValues::none());
    assert!(!unkeyed.binding_digest_keyed);
    // A keyed digest differs from the plain one and between keys.
    let keyed = |key| {
        let log = Arc::new(MemorySink::new());
        let p = Layered::new(k.clone(), Audit::builder(log.clone()).digest_key(key).build());
        p.wrap(&dek, b.as_binding()).unwrap();
        log.records().remove(0)
    };
    let a = keyed(lockbox::audit::AuditKey::generate().unwrap());
    let b2 = keyed(lockbox::audit::AuditKey::generate().unwrap());
    assert!(a.binding_digest_keyed);
    assert_ne!(a.binding_digest, unkeyed.binding_digest);
    assert_ne!(a.binding_digest, b2.binding_digest);
}

#[test]
fn envelope_events_from_sealers_and_openers() {
    let k = kek();
    let log = Arc::new(MemorySink::new());
    let audit = Audit::builder(log.clone()).principal("ingest").build();
    let c = ctx("acme");
    // Sync: seal, open, in place, with context, failures.
    let env = Sealer::new(&*k).audit(&audit).seal(b"hello", &c).unwrap();
    let info = lockbox::inspect(&env).unwrap();
    let opener = Opener::new(&*k).audit(&audit);
    assert_eq!(opener.open(&env, &c).unwrap(), b"hello");
    let mut buf = env.clone();
    opener.open_in_place(&mut buf, &c).unwrap();
    opener.open_with_context(&env, &c).unwrap();
    assert!(opener.open(&env, &ctx("globex")).is_err()); // context mismatch
    let mut bad = env.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(opener.open(&bad, &c).is_err()); // authentication
    assert!(opener.open(b"junk", &c).is_err()); // malformed
    let mut in_place = b"in place".to_vec();
    Sealer::new(&*k).audit(&audit).seal_in_place(&mut in_place, &c).unwrap();
    let records = log.take();
    assert_eq!(records.len(), 8, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.family == "envelope" && r.principal.as_deref() == Some("ingest"))
    );
    let seal = &records[0];
    assert_eq!((seal.operation.as_str(), seal.outcome), ("seal", "success"));
    assert_eq!(seal.message_id, Some(*info.message_id()));
    assert_eq!(
        (seal.plaintext_len, seal.envelope_len),
        (Some(5), Some(u64::try_from(env.len()).unwrap()))
    );
    assert_eq!(
        seal.wrapped_keys,
        [(lockbox::LOCAL_PROVIDER_ID.to_string(), k.key_id().to_string(), 1)]
    );
    assert_eq!(seal.context.len(), 3);
    for r in &records[1..4] {
        assert_eq!(
            (r.operation.as_str(), r.outcome, r.plaintext_len),
            ("open", "success", Some(5))
        );
        assert_eq!(r.message_id, Some(*info.message_id()));
    }
    assert_eq!(records[4].error, Some("context_mismatch"));
    assert_eq!(
        (records[5].error, records[5].message_id),
        (Some("authentication"), Some(*info.message_id()))
    );
    assert_eq!(records[5].plaintext_len, None);
    assert_eq!((records[6].error, records[6].message_id), (Some("malformed"), None));
    assert_eq!(records[7].plaintext_len, Some(8));
    // Async drivers and streams.
    let a = AsyncOnly::new(k.clone());
    let env = block_on(AsyncSealer::new(&a).audit(&audit).seal(b"async", &c)).unwrap();
    block_on(AsyncOpener::new(&a).audit(&audit).open(&env, &c)).unwrap();
    let header = Sealer::new(&*k).audit(&audit).seal_header(&c).unwrap();
    let raw = lockbox::RawHeader::read(&mut &header.header()[..], &lockbox::Limits::default()).unwrap();
    Opener::new(&*k).audit(&audit).unlock(raw, &c).unwrap();
    let ops: Vec<_> = log.records().iter().map(|r| (r.operation.clone(), r.outcome)).collect();
    assert_eq!(
        ops,
        [
            ("seal".into(), "success"),
            ("open".into(), "success"),
            ("seal_stream".into(), "success"),
            ("open_stream".into(), "success")
        ]
    );
    // A refused seal: no message id, the context still known.
    log.take();
    let g = Layered::new(k.clone(), Grant::builder("none", Operations::OPEN).build().unwrap());
    assert!(Sealer::new(&g).audit(&audit).seal(b"x", &c).is_err());
    let r = log.records().remove(0);
    assert_eq!(
        (r.outcome, r.violation, r.message_id),
        ("denied", Some("operation"), None)
    );
    assert_eq!(r.context.len(), 3);
}

#[test]
fn capability_handles_over_sync_and_async_providers() {
    let k = kek();
    let c = ctx("acme");
    // Seal-only / open-only over a sync provider.
    let ingest = SealOnly::new(k.clone());
    let reader = OpenOnly::new(k.clone());
    let env = ingest.sealer().seal(b"ingested", &c).unwrap();
    assert_eq!(reader.opener().open(&env, &c).unwrap(), b"ingested");
    let recovery = LocalKek::generate().unwrap();
    let two = ingest.add_to(Sealer::new(&recovery)).seal(b"two", &c).unwrap();
    assert_eq!(lockbox::inspect(&two).unwrap().wrapped_keys().len(), 2);
    assert_eq!(reader.add_to(Opener::new(&recovery)).open(&two, &c).unwrap(), b"two");
    let b = BindingBuf::new(Suite::Aes256Gcm, &c);
    let dek = DataKey::generate().unwrap();
    let w = ingest.wrap(&dek, b.as_binding()).unwrap();
    assert!(
        ingest
            .generate_data_key(DataKeyRequest::new(b.as_binding()))
            .unwrap()
            .is_none()
    );
    assert!(reader.unwrap(w.as_ref(), b.as_binding()).is_ok());
    // Async-only provider.
    // (An async-only client is shared by cloning it, as AwsKms and
    // VaultTransit are: `Arc` forwards only the sync trait.)
    let ingest_a = SealOnly::new(AsyncLayered::new(
        AsyncOnly::new(k.clone()),
        Grant::builder("g", Operations::ALL).build().unwrap(),
    ));
    let reader_a = OpenOnly::new(AsyncLayered::new(
        AsyncOnly::new(k.clone()),
        Grant::builder("g", Operations::ALL).build().unwrap(),
    ));
    let env = block_on(ingest_a.async_sealer().seal(b"async", &c)).unwrap();
    assert_eq!(block_on(reader_a.async_opener().open(&env, &c)).unwrap(), b"async");
    assert!(block_on(ingest_a.wrap_async(&dek, b.as_binding())).is_ok());
    assert!(block_on(reader_a.unwrap_async(w.as_ref(), b.as_binding())).is_ok());
    // The handles report the provider's identity (for routing) and nothing else.
    assert_eq!(
        lockbox::ProviderIdentity::provider_id(&ingest),
        lockbox::LOCAL_PROVIDER_ID
    );
    assert!(format!("{ingest:?}").starts_with("SealOnly("));

    // Rewrap-only: onto a keyring's new primary, never releasing anything.
    let mut ring = Keyring::generate(KeyId::new("ring").unwrap(), UnixTime(1)).unwrap();
    let old = lockbox::seal(&ring, b"ledger", &c).unwrap();
    ring.rotate(UnixTime(2)).unwrap();
    let ring = Arc::new(ring);
    let rw = RewrapOnly::new(ring.clone());
    let new = rw.rewrap(&old, &c).unwrap();
    assert_eq!(lockbox::inspect(&new).unwrap().wrapped_keys()[0].key_version().0, 2);
    assert_eq!(lockbox::open(&*ring, &new, &c).unwrap(), b"ledger");
    let h = rw.rewrap_header(&old, &c).unwrap();
    assert_eq!(h.replaced_len(), lockbox::inspect(&old).unwrap().header_len());
    let w1 = lockbox::inspect(&old).unwrap().wrapped_keys()[0].clone();
    let b = BindingBuf::new(Suite::Aes256Gcm, &c);
    assert_eq!(
        rw.rewrap_key(w1.as_ref(), b.as_binding())
            .unwrap()
            .unwrap()
            .key_version()
            .0,
        2
    );
    let rw_async = RewrapOnly::new(AsyncOnly::new(ring.clone()));
    let new = block_on(rw_async.rewrap_async(&old, &c)).unwrap();
    assert_eq!(lockbox::open(&*ring, &new, &c).unwrap(), b"ledger");
    assert!(block_on(rw_async.rewrap_header_async(&old, &c)).is_ok());
    assert!(
        block_on(rw_async.rewrap_key_async(w1.as_ref(), b.as_binding()))
            .unwrap()
            .is_some()
    );
}

#[test]
fn keyring_behind_grant_and_audit_sync_and_async() {
    let mut ring = Keyring::generate(KeyId::new("orders").unwrap(), UnixTime(1)).unwrap();
    let ring_log = Arc::new(MemorySink::new());
    ring.set_audit_sink(ring_log.clone());
    let ring = Arc::new(ring);
    let log = Arc::new(MemorySink::new());
    let make = || {
        Grant::builder("acme", Operations::ALL)
            .require("tenant", "acme")
            .build()
            .unwrap()
    };
    let sync = Layered::new(Layered::new(ring.clone(), make()), Audit::new(log.clone()));
    let asynchronous = AsyncLayered::new(
        AsyncLayered::new(AsyncOnly::new(ring.clone()), make()),
        Audit::new(log.clone()),
    );
    let env = sync.seal(b"o", &ctx("acme")).unwrap();
    assert_eq!(asynchronous.open(&env, &ctx("acme")).unwrap(), b"o");
    let globex = lockbox::seal(&*ring, b"g", &ctx("globex")).unwrap();
    assert!(asynchronous.open(&globex, &ctx("globex")).is_err());
    let records = log.records();
    assert_eq!(
        records
            .iter()
            .map(|r| (r.operation.as_str(), r.outcome))
            .collect::<Vec<_>>(),
        [("wrap", "success"), ("unwrap", "success"), ("unwrap", "denied")]
    );
    assert!(
        records
            .iter()
            .all(|r| r.key_id.as_deref() == Some("orders") && r.key_version == Some(1))
    );
    // The keyring's own events reach a sink of the same kind: one event model.
    let ring_records = ring_log.records();
    assert!(
        ring_records
            .iter()
            .any(|r| r.family == "keyring" && r.operation == "keyring.wrap")
    );
    // Its context shows keys, never values.
    let wrap = ring_records.iter().find(|r| r.operation == "keyring.wrap").unwrap();
    assert!(wrap.context.iter().all(|(_, v)| v.is_none()) && wrap.context.len() == 3);
}

/// The tracing sink: one `tracing` event per audit event, at INFO for
/// successes and WARN for refusals, with the record's fields.
#[cfg(feature = "tracing")]
#[test]
fn tracing_sink_emits_one_event_per_audit_event() {
    use std::sync::Mutex;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Default)]
    struct Capture(Mutex<Vec<(Level, String, String)>>);
    struct Fields(String, String);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "outcome" => self.0 = format!("{value:?}"),
                "record" => self.1 = format!("{value:?}"),
                _ => {}
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "outcome" {
                self.0 = value.to_string();
            }
        }
    }
    impl Subscriber for &'static Capture {
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            m.target() == "lockbox::audit"
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, e: &Event<'_>) {
            let mut f = Fields(String::new(), String::new());
            e.record(&mut f);
            self.0.lock().unwrap().push((*e.metadata().level(), f.0, f.1));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    let capture: &'static Capture = Box::leak(Box::default());
    let k = kek();
    let globex = lockbox::seal(&*k, b"x", &ctx("globex")).unwrap();
    let grant = Grant::builder("acme", Operations::ALL)
        .require("tenant", "acme")
        .build()
        .unwrap();
    let p = Layered::new(
        Layered::new(k, grant),
        Audit::new(Arc::new(lockbox::audit::TracingSink::new())),
    );
    tracing::subscriber::with_default(capture, || {
        let env = lockbox::seal(&p, b"x", &ctx("acme")).unwrap();
        lockbox::open(&p, &env, &ctx("acme")).unwrap();
        assert!(lockbox::open(&p, &globex, &ctx("globex")).is_err());
    });
    let events = capture.0.lock().unwrap();
    let summary: Vec<_> = events.iter().map(|(l, o, _)| (*l, o.as_str())).collect();
    assert_eq!(
        summary,
        [
            (Level::INFO, "success"),
            (Level::INFO, "success"),
            (Level::WARN, "denied")
        ]
    );
    assert!(
        events[2].2.contains("\"violation\":\"context.value\""),
        "{}",
        events[2].2
    );
    assert!(!events.iter().any(|(_, _, r)| r.contains("u-secret-17")));
}
