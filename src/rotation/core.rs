//! The sans-IO job core: which item comes next (listing order, sharding, a
//! bounded window), when a checkpoint is due and what it says, what a resume
//! skips, retry and rate-limit decisions as instants to wait for, and the
//! counts. No I/O, no clock: the drivers pass `Instant`s in and do what the
//! core decides.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::json;
use super::store::ObjectMeta;

/// One shard of a job: `index` of `count` (from 0). Several machines split
/// one job with no coordinator: each runs the same job with its own index,
/// and an object belongs to shard `H(key) mod count`, `H` the first 8 bytes
/// of SHA-256 of the key (big endian), the same on every machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// The whole job (shard 0 of 1).
    pub const ALL: Self = Self { index: 0, count: 1 };

    /// Shard `index` of `count`; `index < count` and `count >= 1`.
    pub fn new(index: u32, count: u32) -> Result<Self, crate::Error> {
        if count == 0 || index >= count {
            return Err(crate::Error::invalid_argument(
                "a shard index must be below the shard count",
            ));
        }
        Ok(Self { index, count })
    }

    /// This shard's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The number of shards.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `key` belongs to this shard.
    pub fn owns(&self, key: &str) -> bool {
        if self.count <= 1 {
            return true;
        }
        let d = Sha256::digest(key.as_bytes());
        let mut h = [0u8; 8];
        h.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
        u64::from_be_bytes(h).checked_rem(u64::from(self.count)) == Some(u64::from(self.index))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Retries with exponential backoff and full jitter, for throttling
/// ([`ProviderErrorKind::Throttled`](crate::ProviderErrorKind::Throttled)),
/// unavailable providers and transient store failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per item (1: no retry). Default 8.
    pub max_attempts: u32,
    /// The first backoff. Default 50 ms.
    pub base: Duration,
    /// The longest backoff. Default 10 s.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// When to retry after failed attempt number `attempt` (from 1), or
    /// `None` to give up. `jitter` is a uniform random number in `[0, 1)`.
    pub fn retry_at(&self, now: Instant, attempt: u32, jitter: f64) -> Option<Instant> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        // Full jitter (AWS architecture blog): uniform in [0, ceiling], but
        // at least a tenth of it so a retry never spins.
        let wait = ceiling.mul_f64(jitter.clamp(0.0, 1.0).max(0.1));
        now.checked_add(wait)
    }
}

/// A rate limit on provider calls: `per_second` on average, bursts of up to
/// `burst` calls (a generic cell rate algorithm: reservations are exact and
/// fair across threads).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Calls per second (sustained).
    pub per_second: f64,
    /// Calls allowed at once after an idle period.
    pub burst: u32,
}

/// The limiter's state: the theoretical arrival time of the next call.
#[derive(Debug)]
pub(crate) struct Limiter {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        let per = if limit.per_second.is_finite() && limit.per_second > 0.0 {
            limit.per_second
        } else {
            f64::MAX
        };
        let interval = Duration::from_secs_f64((1.0 / per).max(0.0));
        Self {
            interval,
            tolerance: interval.saturating_mul(limit.burst.max(1).saturating_sub(1)),
            tat: None,
        }
    }

    /// Books `cost` calls and returns when they may start (at or after `now`).
    pub(crate) fn reserve(&mut self, now: Instant, cost: u32) -> Instant {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let start = tat.checked_sub(self.tolerance).map_or(now, |s| s.max(now));
        self.tat = tat.checked_add(self.interval.saturating_mul(cost.max(1)));
        start
    }
}

/// What happened to one envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OutcomeKind {
    /// Rewrapped (header only; the payload is byte-identical).
    Rewrapped,
    /// Re-encrypted (new data key, new payload).
    Reencrypted,
    /// Only missing required wraps were added (header only).
    Healed,
    /// Already current: nothing to do (this also covers items migrated by an
    /// earlier, interrupted run).
    Current,
    /// Modified by someone else since it was read: not overwritten. Run the
    /// job again to pick it up.
    Conflict,
    /// Not a readable envelope (not lockbox, malformed, unsupported).
    Unreadable,
    /// Deleted while the job ran.
    Vanished,
    /// A failure that retries did not clear (or that no retry can clear:
    /// authentication, a missing key, a policy the providers cannot meet).
    Failed,
    /// A dry run ([`Mode::DryRun`](super::Mode::DryRun)) would migrate it.
    Selected,
}

impl OutcomeKind {
    /// All kinds, in report order.
    pub const ALL: [Self; 9] = [
        Self::Rewrapped,
        Self::Reencrypted,
        Self::Healed,
        Self::Current,
        Self::Conflict,
        Self::Unreadable,
        Self::Vanished,
        Self::Failed,
        Self::Selected,
    ];

    /// The stable name used in the log and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rewrapped => "rewrapped",
            Self::Reencrypted => "reencrypted",
            Self::Healed => "healed",
            Self::Current => "current",
            Self::Conflict => "conflict",
            Self::Unreadable => "unreadable",
            Self::Vanished => "vanished",
            Self::Failed => "failed",
            Self::Selected => "selected",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    fn slot(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// Whether the envelope was written.
    pub fn wrote(self) -> bool {
        matches!(self, Self::Rewrapped | Self::Reencrypted | Self::Healed)
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One item's outcome, as logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The object's key.
    pub key: String,
    /// What happened.
    pub kind: OutcomeKind,
    /// Attempts made (retries plus one).
    pub attempts: u32,
    /// Why, for conflicts, unreadable items and failures (never key bytes).
    pub detail: String,
}

/// Counts of outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    by_kind: [u64; 9],
    /// Retries made (attempts beyond the first), over all items.
    pub retries: u64,
}

impl Counts {
    /// Items with this outcome.
    pub fn get(&self, kind: OutcomeKind) -> u64 {
        self.by_kind.get(kind.slot()).copied().unwrap_or(0)
    }
    /// Items done, whatever the outcome.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
    fn add(&mut self, kind: OutcomeKind, attempts: u32) {
        if let Some(n) = self.by_kind.get_mut(kind.slot()) {
            *n = n.saturating_add(1);
        }
        self.retries = self.retries.saturating_add(u64::from(attempts.saturating_sub(1)));
    }
    fn write(&self, o: &mut json::Obj<'_>) {
        for k in OutcomeKind::ALL {
            o.num(k.name(), self.get(k));
        }
        o.num("retries", self.retries);
    }
    fn read(obj: &[(String, json::Value)]) -> Self {
        let mut c = Self::default();
        for k in OutcomeKind::ALL {
            if let Some(slot) = c.by_kind.get_mut(k.slot()) {
                *slot = json::get_num(obj, k.name()).unwrap_or(0);
            }
        }
        c.retries = json::get_num(obj, "retries").unwrap_or(0);
        c
    }
}

/// Progress, passed to the progress callback after every item.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress {
    /// Items of this shard listed so far (objects of other shards excluded).
    pub listed: u64,
    /// Outcomes so far (earlier runs of the same job included).
    pub counts: Counts,
    /// Whether the listing is complete (then `listed` is the shard's total).
    pub listing_done: bool,
}

/// What a resume found in the log.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    pub(crate) cursor: Option<String>,
    pub(crate) counts: Counts,
    pub(crate) listed: u64,
    /// Items finished after the last checkpoint (skipped, not re-read).
    pub(crate) recent: BTreeSet<String>,
    pub(crate) finished: bool,
    pub(crate) checkpointed: bool,
}

/// The header line of a log: the job's identity (a resume must match it).
pub(crate) fn header_line(mode: &str, shard: Shard) -> String {
    let mut s = String::new();
    json::Obj::new(&mut s)
        .str("t", "job")
        .str("mode", mode)
        .str("shard", &shard.to_string())
        .num("log_version", 1)
        .end();
    s
}

impl Resume {
    /// Folds one log line in; `Err` if it contradicts the job (another mode
    /// or shard). Unparseable lines are ignored (only the last can be torn,
    /// and the log reader truncates it).
    pub(crate) fn feed(&mut self, line: &str, expected_header: &str) -> Result<(), String> {
        let Some(obj) = json::parse_flat(line) else {
            return Ok(());
        };
        match json::get_str(&obj, "t") {
            Some("job") if line != expected_header => {
                return Err(alloc::format!(
                    "the log belongs to another job ({line}); this one is {expected_header}"
                ));
            }
            Some("item") => {
                if let (Some(key), Some(kind)) = (
                    json::get_str(&obj, "key"),
                    json::get_str(&obj, "outcome").and_then(OutcomeKind::from_name),
                ) {
                    let attempts = json::get_num(&obj, "attempts").unwrap_or(1);
                    self.counts.add(kind, u32::try_from(attempts).unwrap_or(u32::MAX));
                    self.listed = self.listed.saturating_add(1);
                    self.recent.insert(key.to_string());
                }
            }
            Some("ahead") => {
                // Finished when the checkpoint before it was taken, but after
                // an unfinished item: counted in the checkpoint already.
                if let Some(key) = json::get_str(&obj, "key") {
                    self.recent.insert(key.to_string());
                }
            }
            Some("checkpoint") | Some("done") => {
                self.cursor = json::get_str(&obj, "cursor").map(ToString::to_string);
                self.counts = Counts::read(&obj);
                self.listed = self.counts.total();
                self.recent.clear();
                self.checkpointed = true;
                self.finished = json::get_str(&obj, "t") == Some("done");
            }
            _ => {}
        }
        Ok(())
    }
}

/// A listed item handed to a worker.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) seq: u64,
    pub(crate) meta: ObjectMeta,
}

/// What a worker should do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Process this item.
    Item(Item),
    /// Fetch the next listing page after this key, then `add_page`.
    List { after: Option<String>, limit: usize },
    /// The window is full (slow items ahead): wait for an item to finish.
    Wait,
    /// Every item was handed out.
    Done,
}

/// Listing order, sharding, the bounded window, counts and checkpoints.
#[derive(Debug)]
pub(crate) struct Scan {
    shard: Shard,
    page_size: usize,
    window: usize,
    checkpoint_every: u64,
    /// The last key listed (the next page starts after it).
    listed_after: Option<String>,
    listing_done: bool,
    listing_busy: bool,
    page: VecDeque<ObjectMeta>,
    next_seq: u64,
    /// Items in listing order not yet folded into the cursor: `true` once
    /// finished.
    pending: BTreeMap<u64, (String, bool)>,
    /// Every key up to this one is finished.
    cursor: Option<String>,
    recent: BTreeSet<String>,
    pub(crate) counts: Counts,
    listed: u64,
    since_checkpoint: u64,
}

impl Scan {
    pub(crate) fn new(shard: Shard, concurrency: usize, checkpoint_every: u64, resume: Resume) -> Self {
        let page_size = 1000;
        Self {
            shard,
            page_size,
            window: concurrency.saturating_mul(64).max(2 * page_size),
            checkpoint_every: checkpoint_every.max(1),
            listed_after: resume.cursor.clone(),
            listing_done: false,
            listing_busy: false,
            page: VecDeque::new(),
            next_seq: 0,
            pending: BTreeMap::new(),
            cursor: resume.cursor,
            recent: resume.recent,
            counts: resume.counts,
            listed: resume.listed,
            since_checkpoint: 0,
        }
    }

    pub(crate) fn next(&mut self) -> Next {
        loop {
            if self.pending.len() >= self.window {
                return Next::Wait;
            }
            let Some(meta) = self.page.pop_front() else {
                if self.listing_done {
                    return Next::Done;
                }
                if self.listing_busy {
                    return Next::Wait;
                }
                self.listing_busy = true;
                return Next::List {
                    after: self.listed_after.clone(),
                    limit: self.page_size,
                };
            };
            let seq = self.next_seq;
            self.next_seq = seq.saturating_add(1);
            // Another shard's item, or one a previous run finished after its
            // last checkpoint: done already (it only moves the cursor).
            let skip = !self.shard.owns(&meta.key) || self.recent.remove(&meta.key);
            self.pending.insert(seq, (meta.key.clone(), skip));
            if skip {
                self.advance();
                continue;
            }
            self.listed = self.listed.saturating_add(1);
            return Next::Item(Item { seq, meta });
        }
    }

    /// A listing page arrived (fewer than asked for: the listing is done).
    pub(crate) fn add_page(&mut self, page: Vec<ObjectMeta>) {
        self.listing_busy = false;
        if page.len() < self.page_size {
            self.listing_done = true;
        }
        if let Some(last) = page.last() {
            self.listed_after = Some(last.key.clone());
        }
        self.page.extend(page);
    }

    /// A listing failed: let a later `next` ask again.
    pub(crate) fn listing_failed(&mut self) {
        self.listing_busy = false;
    }

    /// Records an item's outcome; returns whether a checkpoint is due.
    pub(crate) fn finish(&mut self, seq: u64, outcome: &Outcome) -> bool {
        self.counts.add(outcome.kind, outcome.attempts);
        if let Some(p) = self.pending.get_mut(&seq) {
            p.1 = true;
        }
        self.advance();
        self.since_checkpoint = self.since_checkpoint.saturating_add(1);
        self.since_checkpoint >= self.checkpoint_every
    }

    fn advance(&mut self) {
        while let Some(e) = self.pending.first_entry() {
            if !e.get().1 {
                break;
            }
            let (_, (key, _)) = e.remove_entry();
            self.cursor = Some(key);
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        Progress {
            listed: self.listed,
            counts: self.counts,
            listing_done: self.listing_done,
        }
    }

    /// Whether everything was listed and finished.
    pub(crate) fn complete(&self) -> bool {
        self.listing_done && self.page.is_empty() && self.pending.is_empty()
    }

    /// The checkpoint line (or the final line when `done`), then one line
    /// per item finished beyond the cursor (bounded by the window), each
    /// ending in a newline.
    pub(crate) fn checkpoint_lines(&mut self, done: bool) -> String {
        self.since_checkpoint = 0;
        let mut s = String::new();
        let mut o = json::Obj::new(&mut s);
        o.str("t", if done { "done" } else { "checkpoint" });
        if let Some(c) = &self.cursor {
            o.str("cursor", c);
        }
        o.num("listed", self.counts.total());
        self.counts.write(&mut o);
        o.end();
        s.push('\n');
        for (key, finished) in self.pending.values() {
            if *finished {
                json::Obj::new(&mut s).str("t", "ahead").str("key", key).end();
                s.push('\n');
            }
        }
        s
    }
}

/// An item's log line.
pub(crate) fn item_line(o: &Outcome) -> String {
    let mut s = String::new();
    let mut obj = json::Obj::new(&mut s);
    obj.str("t", "item")
        .str("key", &o.key)
        .str("outcome", o.kind.name())
        .num("attempts", u64::from(o.attempts));
    if !o.detail.is_empty() {
        obj.str("detail", &o.detail);
    }
    obj.end();
    s
}

/// The final summary of a job run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Summary {
    /// Outcomes over the whole job (earlier, interrupted runs included).
    pub counts: Counts,
    /// Items of this shard listed over the whole job.
    pub listed: u64,
    /// Items this run processed.
    pub this_run: u64,
    /// Whether this run resumed from a checkpoint.
    pub resumed: bool,
    /// Wall time of this run.
    pub elapsed: Duration,
}

impl Summary {
    /// Whether every item ended current or migrated (nothing conflicted,
    /// failed or was unreadable).
    pub fn all_done(&self) -> bool {
        [OutcomeKind::Conflict, OutcomeKind::Failed, OutcomeKind::Unreadable]
            .iter()
            .all(|k| self.counts.get(*k) == 0)
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let mut o = json::Obj::new(&mut s);
        o.num("listed", self.listed).num("this_run", self.this_run);
        o.str("resumed", if self.resumed { "yes" } else { "no" });
        o.float("elapsed_secs", self.elapsed.as_secs_f64());
        self.counts.write(&mut o);
        o.end();
        s
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} listed", self.listed)?;
        for k in OutcomeKind::ALL {
            let n = self.counts.get(k);
            if n > 0 {
                write!(f, ", {n} {k}")?;
            }
        }
        write!(
            f,
            "; {} retries; this run: {} items in {:.2?}{}",
            self.counts.retries,
            self.this_run,
            self.elapsed,
            if self.resumed { " (resumed)" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(k: &str) -> ObjectMeta {
        ObjectMeta {
            key: k.to_string(),
            size: 1,
        }
    }

    #[test]
    fn cursor_moves_only_over_finished_prefixes() {
        let mut s = Scan::new(Shard::ALL, 2, 1, Resume::default());
        assert!(matches!(s.next(), Next::List { after: None, .. }));
        s.add_page(alloc::vec![meta("a"), meta("b"), meta("c")]);
        let Next::Item(a) = s.next() else { panic!() };
        let Next::Item(b) = s.next() else { panic!() };
        let done = |k: &str| Outcome {
            key: k.to_string(),
            kind: OutcomeKind::Rewrapped,
            attempts: 1,
            detail: String::new(),
        };
        s.finish(b.seq, &done("b"));
        let c = s.checkpoint_lines(false);
        assert!(
            !c.contains("cursor") && c.contains("{\"t\":\"ahead\",\"key\":\"b\"}"),
            "{c}"
        );
        // A resume from it skips b and counts it once.
        let mut r = Resume::default();
        let h = header_line("rewrap", Shard::ALL);
        for line in c.lines() {
            r.feed(line, &h).unwrap();
        }
        assert_eq!(r.counts.total(), 1);
        assert!(r.recent.contains("b") && r.cursor.is_none());
        s.finish(a.seq, &done("a"));
        assert!(s.checkpoint_lines(false).contains("\"cursor\":\"b\""));
        let Next::Item(_) = s.next() else { panic!() };
        assert!(matches!(s.next(), Next::Done));
    }

    #[test]
    fn shards_partition_keys() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        for i in 0..300 {
            let k = alloc::format!("k{i}");
            assert_eq!(shards.iter().filter(|s| s.owns(&k)).count(), 1);
        }
        assert!(Shard::new(3, 3).is_err());
    }

    #[test]
    fn limiter_spaces_calls_and_allows_bursts() {
        let t = Instant::now();
        let mut l = Limiter::new(RateLimit {
            per_second: 10.0,
            burst: 2,
        });
        assert_eq!(l.reserve(t, 1), t);
        assert_eq!(l.reserve(t, 1), t);
        let third = l.reserve(t, 1);
        assert!(third >= t + Duration::from_millis(99) && third <= t + Duration::from_millis(101));
    }

    #[test]
    fn retry_backs_off_and_gives_up() {
        let p = RetryPolicy::default();
        let t = Instant::now();
        let a = p.retry_at(t, 1, 0.99).unwrap();
        let b = p.retry_at(t, 5, 0.99).unwrap();
        assert!(b > a);
        assert!(p.retry_at(t, 8, 0.5).is_none());
        let long = RetryPolicy { max_attempts: 100, ..p };
        assert!(long.retry_at(t, 30, 0.99).unwrap() <= t + p.cap);
    }
}
