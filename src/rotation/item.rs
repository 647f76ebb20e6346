//! One envelope's migration as a sans-IO state machine ([`ItemTask`]): the
//! drivers perform the [`Step`]s it asks for (store reads and writes, the
//! rewrap or re-encrypt, waits) and feed the results back; every decision
//! (what to do with the envelope, retry or give up, the outcome) is made
//! here, once, for the blocking and the async driver alike.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;
use std::time::Instant;

use crate::error::{Error, ProviderErrorKind};
use crate::format::SegmentSize;
use crate::format::{self, Parsed, Segments};
use crate::keys::{KeyVersion, WrappedKeyRef};
use crate::provider::ProviderIdentity;
use crate::rewrap::NewHeader;
use crate::suite::Suite;

use super::core::{Outcome, OutcomeKind, RetryPolicy};
use super::policy::{Assessment, MigrationPolicy};
use super::store::{Fetched, StoreError, StoreErrorKind, VersionToken};

/// How envelopes are migrated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Header only: new wrapped keys, the same data key, payload bytes
    /// unchanged. The default.
    #[default]
    Rewrap,
    /// A new data key and payload (after a suspected data-key compromise,
    /// or a KEK compromise where old wrapped keys may have been copied).
    Reencrypt,
    /// Read-only: assess each envelope, change nothing (the outcome log then
    /// says which would be migrated: `selected`, with the reasons).
    DryRun,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rewrap => "rewrap",
            Self::Reencrypt => "reencrypt",
            Self::DryRun => "dry-run",
        }
    }
}

/// The providers of a job, by role.
#[derive(Debug)]
pub(crate) struct Roles<'a, P: ?Sized> {
    /// Tried to unwrap, in order (as an opener's providers).
    pub(crate) unwrap_with: Vec<&'a P>,
    /// Every migrated envelope gets a fresh wrap from each (unless it already
    /// has a current entry of it).
    pub(crate) wrap_with: Vec<&'a P>,
    /// Wrap for a required key an envelope lacks (the first that matches).
    pub(crate) heal_with: Vec<&'a P>,
}

/// Which wraps one envelope gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WrapPlan {
    /// Indices into `wrap_with`.
    pub(crate) targets: Vec<usize>,
    /// Indices into `heal_with`.
    pub(crate) heals: Vec<usize>,
}

impl WrapPlan {
    pub(crate) fn providers<'a, P: ?Sized>(&self, roles: &Roles<'a, P>) -> Vec<&'a P> {
        let t = self.targets.iter().filter_map(|i| roles.wrap_with.get(*i).copied());
        let h = self.heals.iter().filter_map(|i| roles.heal_with.get(*i).copied());
        t.chain(h).collect()
    }
}

/// What the driver must do next for this item.
#[derive(Debug)]
pub(crate) enum Step<'t> {
    /// `store.read_prefix(key, len)`, then [`ItemTask::read`].
    ReadPrefix(u64),
    /// `store.read(key)`, then [`ItemTask::read`].
    ReadWhole,
    /// Reserve `calls` provider calls with the rate limiter and wait until
    /// the reservation's time, then [`ItemTask::admitted`].
    Admit(u32),
    /// Rewrap this header (the envelope's first bytes) with a rewrapper over
    /// the job's unwrap providers, `Keep::All`, the stale entries removed
    /// (the policy's [`StaleEntries`](super::policy::StaleEntries)) and
    /// these wraps; then
    /// [`ItemTask::rewrapped`].
    Rewrap(&'t [u8], &'t WrapPlan),
    /// Re-encrypt this envelope with the unwrap providers and these wraps,
    /// keeping its suite and segment size, then [`ItemTask::reencrypted`].
    Reencrypt(&'t [u8], &'t WrapPlan, Suite, SegmentSize),
    /// `store.replace_header(key, expected, old_len, new_header)`, then
    /// [`ItemTask::written`].
    ReplaceHeader(&'t VersionToken, u64, &'t [u8]),
    /// `store.write_if_unchanged(key, expected, bytes)`, then
    /// [`ItemTask::written`].
    Write(&'t VersionToken, &'t [u8]),
    /// Sleep until then (a backoff), then [`ItemTask::woke`].
    Sleep(Instant),
    /// Finished.
    Done(Outcome),
}

#[derive(Debug)]
enum State {
    Start,
    Probing { need: u64 },
    Whole,
    Admit { calls: u32 },
    Migrate,
    Write { new: Vec<u8>, header_only: bool },
    Backoff(Instant),
    Done(OutcomeKind, String),
}

/// How much of an object a header read fetches first.
pub(crate) const PROBE_LEN: u64 = 4096;

/// One envelope's migration (see the module docs).
#[derive(Debug)]
pub(crate) struct ItemTask<'j, 'a, P: ?Sized> {
    key: String,
    mode: Mode,
    policy: &'j MigrationPolicy,
    roles: &'j Roles<'a, P>,
    retry: RetryPolicy,
    /// For a lazy upgrade: the version the caller read.
    expected: Option<VersionToken>,
    state: State,
    attempts: u32,
    fetched: Option<Fetched>,
    header_len: usize,
    suite: Suite,
    segment_size: SegmentSize,
    plan: WrapPlan,
}

impl<'j, 'a, P: ProviderIdentity + ?Sized> ItemTask<'j, 'a, P> {
    pub(crate) fn new(
        key: &str,
        mode: Mode,
        policy: &'j MigrationPolicy,
        roles: &'j Roles<'a, P>,
        retry: RetryPolicy,
        expected: Option<VersionToken>,
    ) -> Self {
        Self {
            key: key.to_string(),
            mode,
            policy,
            roles,
            retry,
            expected,
            state: State::Start,
            attempts: 1,
            fetched: None,
            header_len: 0,
            suite: Suite::default(),
            segment_size: SegmentSize::default(),
            plan: WrapPlan::default(),
        }
    }

    /// The next step.
    pub(crate) fn step(&mut self) -> Step<'_> {
        if matches!(self.state, State::Start) {
            self.state = if self.mode == Mode::Reencrypt {
                State::Whole
            } else {
                State::Probing { need: PROBE_LEN }
            };
        }
        match &self.state {
            State::Start => Step::ReadWhole,
            State::Probing { need } => Step::ReadPrefix(*need),
            State::Whole => Step::ReadWhole,
            State::Admit { calls } => Step::Admit(*calls),
            State::Migrate => {
                let bytes = self.fetched.as_ref().map_or(&[][..], |f| f.bytes.as_slice());
                if self.mode == Mode::Reencrypt {
                    Step::Reencrypt(bytes, &self.plan, self.suite, self.segment_size)
                } else {
                    Step::Rewrap(bytes, &self.plan)
                }
            }
            State::Write { new, header_only } => {
                let Some(f) = &self.fetched else {
                    return Step::Done(self.outcome(OutcomeKind::Failed, "internal: no version".to_string()));
                };
                if *header_only {
                    let old = u64::try_from(self.header_len).unwrap_or(u64::MAX);
                    Step::ReplaceHeader(&f.version, old, new)
                } else {
                    Step::Write(&f.version, new)
                }
            }
            State::Backoff(t) => Step::Sleep(*t),
            State::Done(kind, detail) => Step::Done(self.outcome(*kind, detail.clone())),
        }
    }

    fn outcome(&self, kind: OutcomeKind, detail: String) -> Outcome {
        Outcome {
            key: self.key.clone(),
            kind,
            attempts: self.attempts,
            detail,
        }
    }

    fn finish(&mut self, kind: OutcomeKind, detail: impl Into<String>) {
        self.state = State::Done(kind, detail.into());
    }

    /// A failure: retried (from the start: the object is read again) if it
    /// may clear and attempts remain, else the item ends with `kind`.
    fn fail(&mut self, retryable: bool, kind: OutcomeKind, detail: String, now: Instant, jitter: f64) {
        if retryable && let Some(at) = self.retry.retry_at(now, self.attempts, jitter) {
            self.state = State::Backoff(at);
            return;
        }
        self.finish(kind, detail);
    }

    fn store_failed(&mut self, e: &StoreError, now: Instant, jitter: f64) {
        match e.kind() {
            StoreErrorKind::NotFound => self.finish(OutcomeKind::Vanished, ""),
            StoreErrorKind::Conflict => self.finish(OutcomeKind::Conflict, e.to_string()),
            StoreErrorKind::Transient => self.fail(true, OutcomeKind::Failed, chain(e), now, jitter),
            _ => self.finish(OutcomeKind::Failed, chain(e)),
        }
    }

    /// The result of a [`Step::ReadPrefix`] or [`Step::ReadWhole`].
    pub(crate) fn read(&mut self, r: Result<Fetched, StoreError>, now: Instant, jitter: f64) {
        let f = match r {
            Ok(f) => f,
            Err(e) => return self.store_failed(&e, now, jitter),
        };
        if let Some(expected) = &self.expected
            && *expected != f.version
        {
            return self.finish(OutcomeKind::Conflict, "changed since it was opened");
        }
        let limits = crate::Limits::default();
        let parsed = format::parse_prefix(&f.bytes, &limits);
        let h = match parsed {
            Ok(Parsed::Complete(h)) => h,
            Ok(Parsed::Incomplete { need }) => {
                let have = u64::try_from(f.bytes.len()).unwrap_or(u64::MAX);
                let need = u64::try_from(need).unwrap_or(u64::MAX);
                if have >= f.size || matches!(self.state, State::Probing { need: n } if n >= need) {
                    return self.finish(OutcomeKind::Unreadable, "truncated header");
                }
                self.state = State::Probing { need };
                return;
            }
            Err(e) => return self.finish(OutcomeKind::Unreadable, chain(&e)),
        };
        // The payload must frame: a truncated object is unreadable too.
        let payload = f.size.checked_sub(u64::try_from(h.len()).unwrap_or(u64::MAX));
        let framed = payload
            .and_then(|p| usize::try_from(p).ok())
            .map(|p| Segments::for_payload(p, h.segment_size(), h.len()));
        match framed {
            Some(Ok(_)) => {}
            Some(Err(e)) => return self.finish(OutcomeKind::Unreadable, chain(&e)),
            None => return self.finish(OutcomeKind::Unreadable, "shorter than its header"),
        }
        let a = self.policy.assess(h.wrapped().iter());
        self.header_len = h.len();
        self.suite = h.suite();
        self.segment_size = h.segment_size();
        if a.is_current() {
            return self.finish(OutcomeKind::Current, "");
        }
        if self.mode == Mode::DryRun {
            return self.finish(OutcomeKind::Selected, describe(&a, "would migrate"));
        }
        self.plan = match self.plan_wraps(h.wrapped().iter(), &a) {
            Ok(p) => p,
            Err(detail) => return self.finish(OutcomeKind::Failed, detail),
        };
        let calls = u32::try_from(self.plan.targets.len().saturating_add(self.plan.heals.len()))
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        self.fetched = Some(f);
        self.state = State::Admit { calls };
    }

    /// Which fresh wraps the envelope needs: each wrap provider without a
    /// current entry already, and a heal provider for each missing key.
    fn plan_wraps<'w>(
        &self,
        entries: impl Iterator<Item = WrappedKeyRef<'w>> + Clone,
        a: &Assessment,
    ) -> Result<WrapPlan, String> {
        let mut plan = WrapPlan::default();
        if a.needs_migration() {
            for (i, p) in self.roles.wrap_with.iter().enumerate() {
                let has_current = entries.clone().any(|w| p.matches(w) && self.policy.judge(w).is_none());
                if !has_current || self.mode == Mode::Reencrypt {
                    plan.targets.push(i);
                }
            }
        }
        for k in a.missing() {
            let probe = WrappedKeyRef::new(&k.provider_id, &k.key_id, KeyVersion(1), &[0])
                .map_err(|e| alloc::format!("required key {k}: {e}"))?;
            let covered = plan
                .targets
                .iter()
                .filter_map(|i| self.roles.wrap_with.get(*i))
                .any(|p| p.matches(probe));
            if covered {
                continue;
            }
            match self.roles.heal_with.iter().position(|p| p.matches(probe)) {
                Some(i) => plan.heals.push(i),
                None => return Err(alloc::format!("no provider to add the required key {k}")),
            }
        }
        if self.mode == Mode::Reencrypt {
            // The new envelope holds only the new wraps: every required key
            // must be among them.
            for k in self.policy.required() {
                let probe = WrappedKeyRef::new(&k.provider_id, &k.key_id, KeyVersion(1), &[0])
                    .map_err(|e| alloc::format!("required key {k}: {e}"))?;
                let p = plan.providers(self.roles);
                if !p.iter().any(|p| p.matches(probe)) {
                    match self.roles.heal_with.iter().position(|p| p.matches(probe)) {
                        Some(i) => plan.heals.push(i),
                        None => return Err(alloc::format!("no provider to add the required key {k}")),
                    }
                }
            }
            if plan.targets.is_empty() && plan.heals.is_empty() {
                return Err("no provider to re-encrypt to (wrap_with)".to_string());
            }
        }
        Ok(plan)
    }

    /// The rate limiter admitted the item's provider calls.
    pub(crate) fn admitted(&mut self) {
        self.state = State::Migrate;
    }

    /// The result of a [`Step::Rewrap`].
    pub(crate) fn rewrapped(&mut self, r: Result<NewHeader, Error>, now: Instant, jitter: f64) {
        match r {
            Ok(h) => self.migrated(h.into_header(), true, now, jitter),
            Err(e) => self.crypto_failed(&e, now, jitter),
        }
    }

    /// The result of a [`Step::Reencrypt`].
    pub(crate) fn reencrypted(&mut self, r: Result<Vec<u8>, Error>, now: Instant, jitter: f64) {
        match r {
            Ok(env) => self.migrated(env, false, now, jitter),
            Err(e) => self.crypto_failed(&e, now, jitter),
        }
    }

    fn migrated(&mut self, new: Vec<u8>, header_only: bool, now: Instant, jitter: f64) {
        // Never write an envelope the policy would still select: the job's
        // providers do not cover the policy (a misconfiguration).
        let a = self.policy.assess_envelope(&new);
        match a {
            Ok(a) if a.is_current() => {
                // A small object already read whole (the header probe got
                // it all): write it whole, saving the store a second read.
                let whole = self
                    .fetched
                    .as_ref()
                    .filter(|f| u64::try_from(f.bytes.len()).ok() == Some(f.size));
                if let (true, Some(f)) = (header_only, whole) {
                    let mut full = new;
                    full.extend_from_slice(f.bytes.get(self.header_len..).unwrap_or_default());
                    self.state = State::Write {
                        new: full,
                        header_only: false,
                    };
                } else {
                    self.state = State::Write { new, header_only };
                }
            }
            Ok(a) => self.finish(
                OutcomeKind::Failed,
                describe(&a, "still not current after migration (check the job's providers)"),
            ),
            Err(e) => self.fail(false, OutcomeKind::Failed, chain(&e), now, jitter),
        }
    }

    fn crypto_failed(&mut self, e: &Error, now: Instant, jitter: f64) {
        self.fail(retryable(e), OutcomeKind::Failed, chain(e), now, jitter);
    }

    /// The result of a [`Step::ReplaceHeader`] or [`Step::Write`].
    pub(crate) fn written(&mut self, r: Result<VersionToken, StoreError>, now: Instant, jitter: f64) {
        match r {
            Ok(_) => {
                let kind = match (self.mode, self.plan.targets.is_empty()) {
                    (Mode::Reencrypt, _) => OutcomeKind::Reencrypted,
                    (_, false) => OutcomeKind::Rewrapped,
                    (_, true) if self.plan.heals.is_empty() => OutcomeKind::Rewrapped,
                    (_, true) => OutcomeKind::Healed,
                };
                self.finish(kind, "");
            }
            // A conflict on write is reported (never retried: the object is
            // someone else's now).
            Err(e) => self.store_failed(&e, now, jitter),
        }
    }

    /// The backoff of a [`Step::Sleep`] is over: start again from the read.
    pub(crate) fn woke(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        self.fetched = None;
        self.state = State::Start;
    }
}

/// Whether an error may clear on retry: a throttled or unavailable provider.
pub(crate) fn retryable(e: &Error) -> bool {
    let kind = match e {
        Error::Provider(p) => Some(p.kind()),
        Error::NoProviderCouldUnwrap { source, .. } => source.as_ref().map(|p| p.kind()),
        Error::QuorumNotMet { last, .. } => last.as_ref().map(|p| p.kind()),
        _ => None,
    };
    matches!(
        kind,
        Some(ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable)
    )
}

/// An error and its sources, on one line (no key material is ever in them).
pub(crate) fn chain(e: &dyn core::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

fn describe(a: &Assessment, what: &str) -> String {
    let mut s = String::from(what);
    for r in a.reasons() {
        let _ = write!(s, "; stale entry ({r})");
    }
    for k in a.missing() {
        let _ = write!(s, "; missing {k}");
    }
    s
}
