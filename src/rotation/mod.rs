//! Rotation at scale: a census of what protects a store's envelopes, and a
//! resumable bulk migration (rewrap or re-encrypt) over a local directory or
//! object storage, with lazy upgrade on read and the heal of quorum seals.
//!
//! - [`MigrationPolicy`]: which wrapped keys are stale (a keyring's state,
//!   retired keys, compromised versions, a minimum version) and which keys
//!   every envelope must carry. It reads no key.
//! - [`Census`]: over a [`Store`] or an [`AsyncStore`], from the headers
//!   alone (ranged reads): envelopes and bytes per provider, key id and
//!   version; how many need migrating and why; which lack a required key;
//!   which are unreadable; what revoking a key or version would strand
//!   ([`Census::revoking`]). A typed [`CensusReport`] and JSON.
//! - [`Job`] (blocking providers, threads) and [`AsyncJob`] (async
//!   providers, futures): migrate what the policy selects, header only
//!   ([`Mode::Rewrap`], the payload byte-identical) or by re-encrypting,
//!   with bounded concurrency, a rate limit on provider calls, retries with
//!   backoff on throttling, write-if-unchanged (a concurrently modified
//!   envelope is reported, never overwritten), a durable checkpointed log
//!   (resume after a crash or `SIGKILL`; nothing is migrated twice or
//!   lost), sharding across machines ([`Shard`]), progress callbacks and a
//!   [`Summary`].
//! - Lazy upgrade on read: [`Migration::assess`] tells whether an envelope
//!   just read is stale; [`Job::upgrade`] migrates that one envelope through
//!   the same write-if-unchanged path.
//! - Stores: [`DirStore`] (a directory tree, atomic replace per file) here;
//!   S3 and other object stores in the `lockbox-object-store` crate.
//!
//! # Design
//!
//! The engine is a sans-IO core with thin drivers, like the rest of lockbox:
//! [`core`] decides which item comes next (listing order, shard, a bounded
//! window), when a checkpoint is due and what it holds, what a resume skips,
//! and when to retry or admit a provider call (as instants to wait for);
//! `item` decides what to do with one envelope and judges every result.
//! The blocking and async drivers only perform the reads, writes, provider
//! calls and waits they are asked for; the per-item loop is written once.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lockbox::keyring::{Keyring, UnixTime};
//! use lockbox::rotation::{Census, DirStore, Job, MigrationPolicy, OutcomeKind, Reason};
//! use lockbox::{EncryptionContext, KeyId, KeyVersion};
//!
//! let dir = tempfile::tempdir()?;
//! let t0 = UnixTime(1_700_000_000);
//! let mut ring = Keyring::generate(KeyId::new("docs")?, t0)?;
//! std::fs::write(dir.path().join("a.lbx"), lockbox::seal(&ring, b"a", &EncryptionContext::new())?)?;
//! ring.rotate(t0)?;
//! ring.compromised(KeyVersion(1), t0)?;
//! let policy = MigrationPolicy::new().keyring(&ring);
//! let store = DirStore::new(dir.path());
//!
//! // What would revoking version 1 strand? (No key is used.)
//! let report = Census::new(policy.clone())
//!     .revoking(lockbox::keyring::KEYRING_PROVIDER_ID, "docs", Some(KeyVersion(1)))
//!     .run(&store)?;
//! assert_eq!(report.by_reason[&Reason::Compromised].envelopes, 1);
//! assert_eq!(report.revocations[0].strands.envelopes, 1);
//!
//! // Migrate: the migration provider unwraps compromised versions.
//! let migration = ring.migration_provider();
//! let summary = Job::new(policy)
//!     .unwrap_with(&migration)
//!     .wrap_with(&ring)
//!     .run(&store, dir.path().join(".lockbox-job.log"))?;
//! assert_eq!(summary.counts.get(OutcomeKind::Rewrapped), 1);
//! # Ok(()) }
//! ```

mod census;
pub mod core;
mod dir;
mod item;
mod json;
mod policy;
mod run;
mod store;

pub use self::core::{Counts, Outcome, OutcomeKind, Progress, RateLimit, RetryPolicy, Shard, Summary};
pub use census::{Census, CensusItem, CensusReport, KeyUsage, KeyVersionName, RevocationImpact, Tally};
pub use dir::{DirStore, RESERVED_PREFIX};
pub use item::Mode;
pub use policy::{Assessment, KeyName, MigrationPolicy, Reason, StaleEntries};
#[cfg(feature = "tokio")]
pub use run::TokioSleep;
pub use run::{AsyncJob, Job, JobError, Migration, Sleep};
pub use store::{AsyncStore, Fetched, ObjectMeta, Store, StoreError, StoreErrorKind, VersionToken};
