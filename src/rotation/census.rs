//! The census: what protects the envelopes of a store, read from their
//! headers alone (no key is used), as a typed [`CensusReport`] and as JSON.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::format::{self, Parsed, Segments};
use crate::keys::{KeyVersion, WrappedKey};

use super::item::chain;
use super::json;
use super::policy::{Assessment, KeyName, MigrationPolicy, Reason};

/// A number of envelopes and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Envelopes.
    pub envelopes: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.envelopes = self.envelopes.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes);
    }
    fn json(&self) -> String {
        let mut s = String::new();
        json::Obj::new(&mut s)
            .num("envelopes", self.envelopes)
            .num("bytes", self.bytes)
            .end();
        s
    }
}

/// One key version's share of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// Envelopes carrying a wrapped key under this version, and their bytes.
    pub carried: Tally,
    /// Envelopes whose **only** entry that can still unwrap is this one:
    /// revoking (disabling, destroying) this version strands them.
    pub sole: Tally,
    /// Why the policy calls this version stale, if it does.
    pub stale: Option<Reason>,
}

/// A key version: provider id, key id, version.
pub type KeyVersionName = (String, String, KeyVersion);

/// What revoking one key (or one version of it) would do, from
/// [`Census::revoking`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationImpact {
    /// The key asked about.
    pub key: KeyName,
    /// The version asked about (`None`: every version).
    pub version: Option<KeyVersion>,
    /// Envelopes it still protects (carrying a wrap under it).
    pub protects: Tally,
    /// Envelopes it alone can still open: revoking it strands them.
    pub strands: Tally,
    /// The first stranded envelopes' keys (up to
    /// [`Census::sample_limit`]); the per-item callback lists them all.
    pub stranded_sample: Vec<String>,
}

/// The census of a store ([`Census::run`]): every figure is over the
/// envelopes of the shard scanned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CensusReport {
    /// Every object listed.
    pub objects: Tally,
    /// Readable envelopes by wrapped key version.
    pub keys: BTreeMap<KeyVersionName, KeyUsage>,
    /// Envelopes with nothing to do.
    pub current: Tally,
    /// Envelopes with a stale entry (rewrap or re-encrypt).
    pub needs_migration: Tally,
    /// Envelopes by the most urgent reason they need migrating.
    pub by_reason: BTreeMap<Reason, Tally>,
    /// Envelopes lacking a required key, by key.
    pub missing: BTreeMap<KeyName, Tally>,
    /// Envelopes no entry of which can still unwrap (every one dead:
    /// destroyed, disabled, trimmed): already lost unless a key comes back.
    pub stranded: Tally,
    /// Objects that are not readable envelopes.
    pub unreadable: Tally,
    /// The first unreadable objects and why.
    pub unreadable_sample: Vec<(String, String)>,
    /// The answer to each [`Census::revoking`] question.
    pub revocations: Vec<RevocationImpact>,
}

/// One envelope as the census saw it, for the per-item callback
/// ([`Census::on_item`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct CensusItem<'a> {
    /// The object's key.
    pub key: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its wrapped keys, in header order (empty if unreadable).
    pub wrapped: &'a [WrappedKey],
    /// The policy's verdict (`None` if unreadable).
    pub assessment: Option<&'a Assessment>,
    /// Why it is unreadable.
    pub error: Option<&'a str>,
    /// For each [`Census::revoking`] question, in order: whether revoking
    /// that key strands this envelope.
    pub strands: &'a [bool],
}

/// A census over a store: see [`CensusReport`]. Built with
/// [`Census::new`], run with `run` (a [`Store`](super::Store), on threads)
/// or `run_async` (an [`AsyncStore`](super::AsyncStore); feature `tokio`).
pub struct Census<'a> {
    pub(crate) policy: MigrationPolicy,
    pub(crate) questions: Vec<(KeyName, Option<KeyVersion>)>,
    pub(crate) concurrency: usize,
    pub(crate) shard: super::Shard,
    pub(crate) sample_limit: usize,
    pub(crate) on_item: Option<&'a (dyn Fn(&CensusItem<'_>) + Send + Sync)>,
}

impl fmt::Debug for Census<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Census")
            .field("policy", &self.policy)
            .field("questions", &self.questions)
            .field("concurrency", &self.concurrency)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl<'a> Census<'a> {
    /// A census judging envelopes by `policy`.
    pub fn new(policy: MigrationPolicy) -> Self {
        Self {
            policy,
            questions: Vec::new(),
            concurrency: 8,
            shard: super::Shard::ALL,
            sample_limit: 100,
            on_item: None,
        }
    }

    /// Also answers "what does revoking this key (this version, or every
    /// version with `None`) strand?" ([`CensusReport::revocations`]).
    #[must_use]
    pub fn revoking(mut self, provider_id: &str, key_id: &str, version: Option<KeyVersion>) -> Self {
        self.questions.push((KeyName::new(provider_id, key_id), version));
        self
    }

    /// Header reads in flight at once (default 8).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Scans only this shard.
    #[must_use]
    pub fn shard(mut self, shard: super::Shard) -> Self {
        self.shard = shard;
        self
    }

    /// How many unreadable and stranded keys the report lists (default 100).
    #[must_use]
    pub fn sample_limit(mut self, n: usize) -> Self {
        self.sample_limit = n;
        self
    }

    /// Calls `f` for every envelope (for complete lists; the report keeps
    /// only counts and samples, so its size does not grow with the store).
    #[must_use]
    pub fn on_item(mut self, f: &'a (dyn Fn(&CensusItem<'_>) + Send + Sync)) -> Self {
        self.on_item = Some(f);
        self
    }

    /// An empty report with the questions in place.
    pub(crate) fn report(&self) -> CensusReport {
        CensusReport {
            revocations: self
                .questions
                .iter()
                .map(|(k, v)| RevocationImpact {
                    key: k.clone(),
                    version: *v,
                    ..RevocationImpact::default()
                })
                .collect(),
            ..CensusReport::default()
        }
    }

    /// Whether a header read of `bytes` (of an object of `size` bytes) needs
    /// more: `Some(n)` to read the first `n` bytes instead.
    pub(crate) fn needs_more(bytes: &[u8], size: u64) -> Option<u64> {
        match format::parse_prefix(bytes, &crate::Limits::default()) {
            Ok(Parsed::Incomplete { need }) => {
                let need = u64::try_from(need).unwrap_or(u64::MAX);
                let have = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                (have < size && need > have).then_some(need)
            }
            _ => None,
        }
    }

    /// Folds one object into `report` (its first bytes, or why it could not
    /// be read) and calls the per-item callback.
    pub(crate) fn add(&self, report: &mut CensusReport, key: &str, size: u64, read: Result<&[u8], String>) {
        report.objects.add(size);
        let parsed = read.and_then(|bytes| parse(bytes, size));
        let wrapped = match parsed {
            Ok(p) => p,
            Err(e) => {
                report.unreadable.add(size);
                if report.unreadable_sample.len() < self.sample_limit {
                    report.unreadable_sample.push((key.to_string(), e.clone()));
                }
                if let Some(f) = self.on_item {
                    f(&CensusItem {
                        key,
                        size,
                        wrapped: &[],
                        assessment: None,
                        error: Some(&e),
                        strands: &[],
                    });
                }
                return;
            }
        };
        let a = self.policy.assess(wrapped.iter().map(WrappedKey::as_ref));
        let live: Vec<bool> = wrapped
            .iter()
            .map(|w| self.policy.judge(w.as_ref()).is_none_or(|r| !r.is_dead()))
            .collect();
        let live_count = live.iter().filter(|l| **l).count();
        for (w, is_live) in wrapped.iter().zip(&live) {
            let name = (
                w.provider_id().to_string(),
                w.key_id().as_str().to_string(),
                w.key_version(),
            );
            let u = report.keys.entry(name).or_default();
            u.carried.add(size);
            u.stale = self.policy.judge(w.as_ref());
            if *is_live && live_count == 1 {
                u.sole.add(size);
            }
        }
        if a.is_current() {
            report.current.add(size);
        }
        if let Some(r) = a.worst() {
            report.needs_migration.add(size);
            report.by_reason.entry(r).or_default().add(size);
        }
        for k in a.missing() {
            report.missing.entry(k.clone()).or_default().add(size);
        }
        if live_count == 0 {
            report.stranded.add(size);
        }
        let mut strands = Vec::with_capacity(self.questions.len());
        for (q, impact) in self.questions.iter().zip(report.revocations.iter_mut()) {
            let hit = |w: &WrappedKey| {
                w.as_ref().is_for(&q.0.provider_id, &q.0.key_id) && q.1.is_none_or(|v| v == w.key_version())
            };
            let carries = wrapped.iter().any(hit);
            let others_live = wrapped.iter().zip(&live).any(|(w, l)| *l && !hit(w));
            let stranded = carries && !others_live;
            if carries {
                impact.protects.add(size);
            }
            if stranded {
                impact.strands.add(size);
                if impact.stranded_sample.len() < self.sample_limit {
                    impact.stranded_sample.push(key.to_string());
                }
            }
            strands.push(stranded);
        }
        if let Some(f) = self.on_item {
            f(&CensusItem {
                key,
                size,
                wrapped: &wrapped,
                assessment: Some(&a),
                error: None,
                strands: &strands,
            });
        }
    }
}

/// The wrapped keys of a header read from the first bytes of an object of
/// `size` bytes, checking that the payload frames.
fn parse(bytes: &[u8], size: u64) -> Result<Vec<WrappedKey>, String> {
    let h = match format::parse_prefix(bytes, &crate::Limits::default()) {
        Ok(Parsed::Complete(h)) => h,
        Ok(Parsed::Incomplete { .. }) => return Err("truncated header".to_string()),
        Err(e) => return Err(chain(&e)),
    };
    let payload = size
        .checked_sub(u64::try_from(h.len()).unwrap_or(u64::MAX))
        .and_then(|p| usize::try_from(p).ok())
        .ok_or_else(|| "shorter than its header".to_string())?;
    Segments::for_payload(payload, h.segment_size(), h.len()).map_err(|e| chain(&e))?;
    Ok(h.wrapped().iter().map(|w| w.to_owned()).collect())
}

impl CensusReport {
    /// The report as JSON (one object; keys are stable, see the field docs).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let mut o = json::Obj::new(&mut s);
        o.raw("objects", &self.objects.json());
        o.raw("current", &self.current.json());
        o.raw("needs_migration", &self.needs_migration.json());
        o.raw("stranded", &self.stranded.json());
        o.raw("unreadable", &self.unreadable.json());
        let mut keys = String::from("[");
        for (i, ((p, k, v), u)) in self.keys.iter().enumerate() {
            if i > 0 {
                keys.push(',');
            }
            let mut e = json::Obj::new(&mut keys);
            e.str("provider_id", p)
                .str("key_id", k)
                .num("version", u64::from(v.0))
                .raw("carried", &u.carried.json())
                .raw("sole", &u.sole.json());
            if let Some(r) = u.stale {
                e.str("stale", r.name());
            }
            e.end();
        }
        keys.push(']');
        o.raw("keys", &keys);
        let mut reasons = String::new();
        let mut r = json::Obj::new(&mut reasons);
        for (reason, t) in &self.by_reason {
            r.raw(reason.name(), &t.json());
        }
        r.end();
        o.raw("by_reason", &reasons);
        let mut missing = String::from("[");
        for (i, (k, t)) in self.missing.iter().enumerate() {
            if i > 0 {
                missing.push(',');
            }
            json::Obj::new(&mut missing)
                .str("provider_id", &k.provider_id)
                .str("key_id", &k.key_id)
                .raw("lacking", &t.json())
                .end();
        }
        missing.push(']');
        o.raw("missing_required", &missing);
        let mut bad = String::from("[");
        for (i, (k, why)) in self.unreadable_sample.iter().enumerate() {
            if i > 0 {
                bad.push(',');
            }
            json::Obj::new(&mut bad).str("key", k).str("error", why).end();
        }
        bad.push(']');
        o.raw("unreadable_sample", &bad);
        let mut rev = String::from("[");
        for (i, q) in self.revocations.iter().enumerate() {
            if i > 0 {
                rev.push(',');
            }
            let mut sample = String::from("[");
            for (j, k) in q.stranded_sample.iter().enumerate() {
                if j > 0 {
                    sample.push(',');
                }
                json::string(&mut sample, k);
            }
            sample.push(']');
            let mut e = json::Obj::new(&mut rev);
            e.str("provider_id", &q.key.provider_id).str("key_id", &q.key.key_id);
            if let Some(v) = q.version {
                e.num("version", u64::from(v.0));
            }
            e.raw("protects", &q.protects.json())
                .raw("strands", &q.strands.json())
                .raw("stranded_sample", &sample)
                .end();
        }
        rev.push(']');
        o.raw("revocations", &rev);
        o.end();
        s
    }

    /// Adds another shard's (or thread's) report to this one.
    pub fn merge(&mut self, other: &Self) {
        let add = |a: &mut Tally, b: &Tally| {
            a.envelopes = a.envelopes.saturating_add(b.envelopes);
            a.bytes = a.bytes.saturating_add(b.bytes);
        };
        add(&mut self.objects, &other.objects);
        add(&mut self.current, &other.current);
        add(&mut self.needs_migration, &other.needs_migration);
        add(&mut self.stranded, &other.stranded);
        add(&mut self.unreadable, &other.unreadable);
        for (k, u) in &other.keys {
            let e = self.keys.entry(k.clone()).or_default();
            add(&mut e.carried, &u.carried);
            add(&mut e.sole, &u.sole);
            e.stale = e.stale.or(u.stale);
        }
        for (r, t) in &other.by_reason {
            add(self.by_reason.entry(*r).or_default(), t);
        }
        for (k, t) in &other.missing {
            add(self.missing.entry(k.clone()).or_default(), t);
        }
        self.unreadable_sample.extend(other.unreadable_sample.iter().cloned());
        for (a, b) in self.revocations.iter_mut().zip(&other.revocations) {
            add(&mut a.protects, &b.protects);
            add(&mut a.strands, &b.strands);
            a.stranded_sample.extend(b.stranded_sample.iter().cloned());
        }
    }
}

impl fmt::Display for CensusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} objects ({} bytes): {} current, {} need migration, {} lack a required key, {} stranded, {} unreadable",
            self.objects.envelopes,
            self.objects.bytes,
            self.current.envelopes,
            self.needs_migration.envelopes,
            self.missing.values().map(|t| t.envelopes).max().unwrap_or(0),
            self.stranded.envelopes,
            self.unreadable.envelopes
        )?;
        for ((p, k, v), u) in &self.keys {
            write!(
                f,
                "  {p} {k} {v}: {} envelopes ({} bytes), sole live key of {}",
                u.carried.envelopes, u.carried.bytes, u.sole.envelopes
            )?;
            match u.stale {
                Some(r) => writeln!(f, " [stale: {r}]")?,
                None => writeln!(f)?,
            }
        }
        for (k, t) in &self.missing {
            writeln!(f, "  lacking required {k}: {} envelopes", t.envelopes)?;
        }
        for q in &self.revocations {
            let v = q.version.map_or_else(|| "every version".to_string(), |v| v.to_string());
            writeln!(
                f,
                "  revoking {} {v}: protects {} envelopes, strands {}",
                q.key, q.protects.envelopes, q.strands.envelopes
            )?;
        }
        Ok(())
    }
}
