//! The access-control check: a provider behind a grant and an audit layer,
//! and behind capability handles, through the sync drivers or the async
//! ones. Written once, as an async driver over [`Drive`]; the sync drive's
//! futures are ready at once.

use std::sync::Arc;

use lockbox::access::{AccessDenied, AsyncLayered, Grant, Layer, Layered, OpenOnly, Operations, SealOnly};
use lockbox::audit::{Audit, AuditRecord, ContextValues, MemorySink};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, BoxFuture, EncryptionContext, Error, KeyEncryptionProvider,
    Opener, Sealer,
};

use super::{ConformanceFailure, poll_once};

/// The name of the check in a [`ConformanceFailure`].
pub const ACCESS: &str = "access";

/// Seals and opens through one driver kind.
trait Drive: Send + Sync {
    fn seal<'a>(&'a self, pt: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>>;
    fn open<'a>(&'a self, env: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>>;
}

struct SyncDrive<P>(P);
struct AsyncDrive<P>(P);

impl<P: KeyEncryptionProvider> Drive for SyncDrive<P> {
    fn seal<'a>(&'a self, pt: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move { Sealer::new(&self.0).seal(pt, c) })
    }
    fn open<'a>(&'a self, env: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move { Opener::new(&self.0).open(env, c) })
    }
}

impl<P: AsyncKeyEncryptionProvider> Drive for AsyncDrive<P> {
    fn seal<'a>(&'a self, pt: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move { AsyncSealer::new(&self.0).seal(pt, c).await })
    }
    fn open<'a>(&'a self, env: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
        Box::pin(async move { AsyncOpener::new(&self.0).open(env, c).await })
    }
}

fn ctx(tenant: &str, user: &str) -> Result<EncryptionContext, Error> {
    EncryptionContext::new()
        .with("tenant", tenant)?
        .with_required("user", user)
}

fn grant(uses: u64) -> Result<Grant, Error> {
    Grant::builder("acme-only", Operations::ALL)
        .require("tenant", "acme")
        .max_uses(uses)
        .build()
}

fn audit(sink: &Arc<MemorySink>) -> Audit {
    Audit::builder(sink.clone())
        .principal("conformance")
        .context_values(ContextValues::only(["tenant"]))
        .build()
}

fn fail(what: impl Into<String>) -> ConformanceFailure {
    ConformanceFailure::new(ACCESS, what)
}

fn find<'r>(records: &'r [AuditRecord], ops: &[&str], outcome: &str) -> Result<&'r AuditRecord, ConformanceFailure> {
    records
        .iter()
        .find(|r| ops.contains(&r.operation.as_str()) && r.outcome == outcome)
        .ok_or_else(|| fail(format!("no {ops:?} {outcome} record in {records:?}")))
}

/// The scenario, over `open_all` (audited, no grant), `acme` (a grant for
/// tenant acme, 3 uses, inside an audit) and two capability handles.
async fn scenario(
    open_all: &dyn Drive,
    acme: &dyn Drive,
    handles: (&dyn Drive, &dyn Drive),
    sink: &MemorySink,
    provider_id: &str,
) -> Result<(), ConformanceFailure> {
    let e = |what: &str, err: Error| fail(format!("{what}: {err}"));
    let (ctx_acme, ctx_globex) = (
        ctx("acme", "u-1").map_err(|x| e("context", x))?,
        ctx("globex", "u-2").map_err(|x| e("context", x))?,
    );
    let mine = acme
        .seal(b"acme data", &ctx_acme)
        .await
        .map_err(|x| e("sealing within the grant", x))?;
    let theirs = open_all
        .seal(b"globex data", &ctx_globex)
        .await
        .map_err(|x| e("sealing without a grant", x))?;
    if acme
        .open(&mine, &ctx_acme)
        .await
        .map_err(|x| e("opening within the grant", x))?
        != b"acme data"
    {
        return Err(fail("a granted open returned other bytes"));
    }
    let refused = acme.open(&theirs, &ctx_globex).await;
    match refused.as_ref().err().and_then(AccessDenied::in_error) {
        Some(d) if d.constraint() == "context.value" && d.grant() == "acme-only" => {}
        _ => {
            return Err(fail(format!(
                "a cross-tenant open was not refused by the grant: {refused:?}"
            )));
        }
    }
    // The wrong required value: the provider's own authentication fails.
    let wrong = ctx("acme", "u-9").map_err(|x| e("context", x))?;
    if acme.open(&mine, &wrong).await.is_ok() {
        return Err(fail("an open with a wrong required value succeeded"));
    }
    // Uses: seal, open and the failed open took 3 (the refusal none).
    let spent = acme.open(&mine, &ctx_acme).await;
    if spent
        .as_ref()
        .err()
        .and_then(AccessDenied::in_error)
        .map(AccessDenied::constraint)
        != Some("max_uses")
    {
        return Err(fail(format!("the fourth use was not refused: {spent:?}")));
    }
    let records = sink.records();
    let sealed = find(&records, &["wrap", "generate_data_key"], "success")?;
    let opened = find(&records, &["unwrap"], "success")?;
    let denied = find(&records, &["unwrap"], "denied")?;
    let failed = find(&records, &["unwrap"], "failure")?;
    for r in [sealed, opened, denied, failed] {
        if r.provider_id.as_deref() != Some(provider_id)
            || r.principal.as_deref() != Some("conformance")
            || r.key_id.is_none()
        {
            return Err(fail(format!("a record lacks the provider, principal or key: {r:?}")));
        }
        if r.context.iter().any(|(k, v)| k == "user" && v.is_some()) || r.to_json().contains("u-9") {
            return Err(fail(format!("a record shows a value the policy does not allow: {r:?}")));
        }
    }
    if denied.violation != Some("context.value") || failed.error != Some("authentication") {
        return Err(fail(format!(
            "refusal or failure recorded wrongly: {denied:?} {failed:?}"
        )));
    }
    // Capability handles: seal with one, open with the other.
    let (seal_only, open_only) = handles;
    let env = seal_only
        .seal(b"handles", &ctx_acme)
        .await
        .map_err(|x| e("sealing with a seal-only handle", x))?;
    if open_only
        .open(&env, &ctx_acme)
        .await
        .map_err(|x| e("opening with an open-only handle", x))?
        != b"handles"
    {
        return Err(fail("a handle round trip returned other bytes"));
    }
    Ok(())
}

struct SealHandle<P>(SealOnly<P>);
struct OpenHandle<P>(OpenOnly<P>);
/// The async handles need their own wrapper types (a type has one `Drive`).
struct AsyncSealHandle<P>(SealOnly<P>);
struct AsyncOpenHandle<P>(OpenOnly<P>);

/// `Drive` for a seal-only and an open-only handle, written once for both
/// driver kinds.
macro_rules! handle_drives {
    ($bound:ident, $seal:ident, $open:ident, $sealer:ident, $opener:ident, $($await:tt)*) => {
        impl<P: $bound> Drive for $seal<P> {
            fn seal<'a>(&'a self, pt: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
                Box::pin(async move { self.0.$sealer().seal(pt, c)$($await)* })
            }
            fn open<'a>(&'a self, _: &'a [u8], _: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
                Box::pin(async { Err(Error::invalid_argument("a seal-only handle cannot open")) })
            }
        }
        impl<P: $bound> Drive for $open<P> {
            fn seal<'a>(&'a self, _: &'a [u8], _: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
                Box::pin(async { Err(Error::invalid_argument("an open-only handle cannot seal")) })
            }
            fn open<'a>(&'a self, env: &'a [u8], c: &'a EncryptionContext) -> BoxFuture<'a, Result<Vec<u8>, Error>> {
                Box::pin(async move { self.0.$opener().open(env, c)$($await)* })
            }
        }
    };
}

handle_drives!(KeyEncryptionProvider, SealHandle, OpenHandle, sealer, opener,);
handle_drives!(AsyncKeyEncryptionProvider, AsyncSealHandle, AsyncOpenHandle, async_sealer, async_opener, .await);

fn layered<P: KeyEncryptionProvider, L: Layer>(p: P, l: L) -> Layered<P, L> {
    Layered::new(p, l)
}

/// Runs the access check against a blocking provider through the sync
/// drivers ([`Layered`], [`Sealer`], [`Opener`], the handles' `sealer` /
/// `opener`). `make` gives a provider on the key under test each time it is
/// called (a clone of a client, an `Arc`). Checks: a grant for one tenant
/// admits its calls and refuses another tenant's with an [`AccessDenied`]
/// naming the constraint; its use count holds; an audit layer outside it
/// records the seal, the open, the refusal and the provider's own
/// authentication failure with the provider id, key id and principal and
/// without a value the policy does not allow; a seal-only and an open-only
/// handle round-trip.
pub fn check_access<P, F>(make: F) -> Result<(), ConformanceFailure>
where
    P: KeyEncryptionProvider,
    F: Fn() -> P,
{
    let sink = Arc::new(MemorySink::new());
    let provider_id = make().provider_id().to_owned();
    let open_all = SyncDrive(layered(make(), audit(&sink)));
    let acme = SyncDrive(layered(
        layered(make(), grant(3).map_err(|e| fail(e.to_string()))?),
        audit(&sink),
    ));
    let seal = SealHandle(SealOnly::new(make()));
    let open = OpenHandle(OpenOnly::new(make()));
    let run = scenario(&open_all, &acme, (&seal, &open), &sink, &provider_id);
    poll_once(run).unwrap_or_else(|| Err(fail("a blocking provider's access check did not finish in one poll")))
}

/// [`check_access`] through the async drivers ([`AsyncLayered`],
/// [`AsyncSealer`], [`AsyncOpener`], the handles' `async_sealer` /
/// `async_opener`), for any provider; await it on the executor the provider
/// needs.
pub async fn check_access_async<P, F>(make: F) -> Result<(), ConformanceFailure>
where
    P: AsyncKeyEncryptionProvider,
    F: Fn() -> P,
{
    let sink = Arc::new(MemorySink::new());
    let provider_id = make().provider_id().to_owned();
    let open_all = AsyncDrive(AsyncLayered::new(make(), audit(&sink)));
    let inner = AsyncLayered::new(make(), grant(3).map_err(|e| fail(e.to_string()))?);
    let acme = AsyncDrive(AsyncLayered::new(inner, audit(&sink)));
    let seal = AsyncSealHandle(SealOnly::new(make()));
    let open = AsyncOpenHandle(OpenOnly::new(make()));
    scenario(&open_all, &acme, (&seal, &open), &sink, &provider_id).await
}
