//! Which envelopes need migrating and why: the [`MigrationPolicy`] and its
//! verdict on one header ([`Assessment`]). No keys, no I/O: a header's
//! wrapped-key entries (provider, key id, version) against the policy.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::keyring::{KEYRING_PROVIDER_ID, KeyState, Keyring};
use crate::keys::{KeyVersion, WrappedKeyRef};

/// Why one wrapped key of an envelope is stale (the envelope must move off
/// it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A keyring version other than the primary (still usable; rotate).
    NotPrimary,
    /// A version declared compromised (keyring, or
    /// [`MigrationPolicy::compromised`]).
    Compromised,
    /// A destroyed keyring version, or one trimmed away: the entry is dead.
    Destroyed,
    /// A disabled keyring version.
    Disabled,
    /// A keyring version scheduled for destruction.
    ScheduledForDestruction,
    /// Below the keyring's minimum decryption version, or below a
    /// [`MigrationPolicy::min_version`].
    BelowMinimum,
    /// A version the keyring does not know (from another copy of it).
    UnknownVersion,
    /// A key the policy retires ([`MigrationPolicy::retire`]).
    Retired,
}

impl Reason {
    /// The stable lowercase name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotPrimary => "not-primary",
            Self::Compromised => "compromised",
            Self::Destroyed => "destroyed",
            Self::Disabled => "disabled",
            Self::ScheduledForDestruction => "scheduled-for-destruction",
            Self::BelowMinimum => "below-minimum",
            Self::UnknownVersion => "unknown-version",
            Self::Retired => "retired",
        }
    }

    /// Whether an entry with this reason can no longer unwrap at all (it does
    /// not count as a usable key of the envelope).
    pub fn is_dead(self) -> bool {
        matches!(
            self,
            Self::Destroyed
                | Self::Disabled
                | Self::ScheduledForDestruction
                | Self::BelowMinimum
                | Self::UnknownVersion
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A keyring's state, snapshotted (no keys).
#[derive(Clone, Debug)]
struct KeyringRule {
    id: String,
    primary: u32,
    minimum: u32,
    versions: BTreeMap<u32, (KeyState, bool)>,
}

impl KeyringRule {
    /// The same selection as [`Keyring::needs_migration`] (every entry of
    /// this keyring not on the primary), with the reason.
    fn judge(&self, version: u32) -> Option<Reason> {
        if version == self.primary {
            return None;
        }
        let Some((state, compromised)) = self.versions.get(&version) else {
            return Some(if version < self.minimum {
                Reason::Destroyed
            } else {
                Reason::UnknownVersion
            });
        };
        Some(if *compromised {
            Reason::Compromised
        } else {
            match state {
                KeyState::Destroyed { .. } => Reason::Destroyed,
                KeyState::Disabled => Reason::Disabled,
                KeyState::ScheduledForDestruction { .. } => Reason::ScheduledForDestruction,
                _ if version < self.minimum => Reason::BelowMinimum,
                _ => Reason::NotPrimary,
            }
        })
    }
}

#[derive(Clone, Debug)]
enum Rule {
    Keyring(KeyringRule),
    Retire {
        provider: String,
        key: String,
    },
    MinVersion {
        provider: String,
        key: String,
        min: u32,
    },
    Compromised {
        provider: String,
        key: String,
        version: u32,
    },
}

/// A `(provider id, key id)` pair: a key every envelope must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyName {
    /// Provider id (`lockbox.local`, `aws-kms`, ...).
    pub provider_id: String,
    /// Key id within the provider.
    pub key_id: String,
}

impl KeyName {
    /// A key name.
    pub fn new(provider_id: impl Into<String>, key_id: impl Into<String>) -> Self {
        Self {
            provider_id: provider_id.into(),
            key_id: key_id.into(),
        }
    }

    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        w.is_for(&self.provider_id, &self.key_id)
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider_id, self.key_id)
    }
}

/// What must change for envelopes to be current: stale keys (keyring
/// versions other than the primary, compromised, destroyed or retired keys,
/// versions below a minimum) and keys every envelope must carry (for example
/// each KMS region of a [quorum seal](crate::Sealer::quorum)).
///
/// A policy reads no keys: it judges the unauthenticated routing data of a
/// header (provider, key id, version of each wrapped key), which is what
/// selecting work needs. The migration itself authenticates every envelope.
///
/// ```
/// # fn main() -> Result<(), lockbox::Error> {
/// use lockbox::keyring::{Keyring, UnixTime};
/// use lockbox::rotation::{MigrationPolicy, Reason};
/// use lockbox::{EncryptionContext, KeyId};
///
/// let t0 = UnixTime(1_700_000_000);
/// let mut ring = Keyring::generate(KeyId::new("payments")?, t0)?;
/// let env = lockbox::seal(&ring, b"x", &EncryptionContext::new())?;
/// ring.rotate(t0)?;
/// let policy = MigrationPolicy::new().keyring(&ring);
/// let a = policy.assess_envelope(&env)?;
/// assert_eq!(a.reasons().collect::<Vec<_>>(), [Reason::NotPrimary]);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MigrationPolicy {
    rules: Vec<Rule>,
    required: Vec<KeyName>,
}

impl MigrationPolicy {
    /// A policy under which every envelope is current.
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows `keyring`'s state as it is now: every entry of this keyring
    /// not on its primary is stale ([`Keyring::needs_migration`]'s
    /// selection), with the most specific [`Reason`] (compromised, destroyed,
    /// disabled, scheduled, below the minimum, unknown, or just not primary).
    #[must_use]
    pub fn keyring(mut self, keyring: &Keyring) -> Self {
        let versions = keyring
            .versions()
            .map(|v| (v.version.0, (v.state, v.compromised)))
            .collect();
        self.rules.push(Rule::Keyring(KeyringRule {
            id: keyring.id().as_str().to_string(),
            primary: keyring.primary().0,
            minimum: keyring.minimum_decryption_version().0,
            versions,
        }));
        self
    }

    /// Every entry of this key (any version) is stale: a key being retired
    /// (an old local KEK, a KMS key scheduled for deletion).
    #[must_use]
    pub fn retire(mut self, provider_id: &str, key_id: &str) -> Self {
        self.rules.push(Rule::Retire {
            provider: provider_id.to_string(),
            key: key_id.to_string(),
        });
        self
    }

    /// Entries of this key below version `min` are stale.
    #[must_use]
    pub fn min_version(mut self, provider_id: &str, key_id: &str, min: KeyVersion) -> Self {
        self.rules.push(Rule::MinVersion {
            provider: provider_id.to_string(),
            key: key_id.to_string(),
            min: min.0,
        });
        self
    }

    /// Entries of this key at exactly `version` are stale, as compromised.
    #[must_use]
    pub fn compromised(mut self, provider_id: &str, key_id: &str, version: KeyVersion) -> Self {
        self.rules.push(Rule::Compromised {
            provider: provider_id.to_string(),
            key: key_id.to_string(),
            version: version.0,
        });
        self
    }

    /// Every envelope must carry a wrapped key of this provider and key id:
    /// one without it needs healing (a wrap added, header only).
    #[must_use]
    pub fn require(mut self, provider_id: &str, key_id: &str) -> Self {
        self.required.push(KeyName::new(provider_id, key_id));
        self
    }

    /// The keys every envelope must carry.
    pub fn required(&self) -> &[KeyName] {
        &self.required
    }

    /// Why this wrapped key is stale, or `None` if it is current. The most
    /// severe reason of the matching rules wins.
    pub fn judge(&self, w: WrappedKeyRef<'_>) -> Option<Reason> {
        let mut worst: Option<Reason> = None;
        let mut note = |r: Reason| {
            worst = Some(match worst {
                Some(w) if severity(w) >= severity(r) => w,
                _ => r,
            });
        };
        for rule in &self.rules {
            match rule {
                Rule::Keyring(k) if w.is_for(KEYRING_PROVIDER_ID, &k.id) => {
                    if let Some(r) = k.judge(w.key_version().0) {
                        note(r);
                    }
                }
                Rule::Retire { provider, key } if w.is_for(provider, key) => note(Reason::Retired),
                Rule::MinVersion { provider, key, min } if w.is_for(provider, key) && w.key_version().0 < *min => {
                    note(Reason::BelowMinimum);
                }
                Rule::Compromised { provider, key, version }
                    if w.is_for(provider, key) && w.key_version().0 == *version =>
                {
                    note(Reason::Compromised);
                }
                _ => {}
            }
        }
        worst
    }

    /// The verdict on a header's wrapped keys, in header order.
    pub fn assess<'w>(&self, wrapped: impl IntoIterator<Item = WrappedKeyRef<'w>>) -> Assessment {
        let mut a = Assessment::default();
        let mut present = alloc::vec![false; self.required.len()];
        for (i, w) in wrapped.into_iter().enumerate() {
            a.entries = a.entries.saturating_add(1);
            match self.judge(w) {
                Some(r) => a.stale.push((i, r)),
                None => a.usable = a.usable.saturating_add(1),
            }
            for (seen, req) in present.iter_mut().zip(&self.required) {
                *seen |= req.matches(w);
            }
        }
        a.missing = present
            .iter()
            .zip(&self.required)
            .filter(|(seen, _)| !**seen)
            .map(|(_, r)| r.clone())
            .collect();
        a
    }

    /// [`assess`](Self::assess) of an envelope's (or a header prefix's)
    /// wrapped keys, read without any key.
    pub fn assess_envelope(&self, envelope_or_header: &[u8]) -> Result<Assessment, crate::Error> {
        let limits = crate::Limits::default();
        match crate::format::parse_prefix(envelope_or_header, &limits)? {
            crate::format::Parsed::Complete(h) => Ok(self.assess(h.wrapped().iter())),
            crate::format::Parsed::Incomplete { .. } => Err(crate::Error::Malformed {
                offset: envelope_or_header.len(),
                what: "truncated",
            }),
        }
    }
}

/// Higher is more urgent.
fn severity(r: Reason) -> u8 {
    match r {
        Reason::NotPrimary => 1,
        Reason::Retired => 2,
        Reason::BelowMinimum => 3,
        Reason::UnknownVersion => 4,
        Reason::Disabled | Reason::ScheduledForDestruction => 5,
        Reason::Destroyed => 6,
        Reason::Compromised => 7,
    }
}

/// A policy's verdict on one envelope: its stale entries (with why), the
/// required keys it lacks, and how many of its entries are still usable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    entries: usize,
    usable: usize,
    stale: Vec<(usize, Reason)>,
    missing: Vec<KeyName>,
}

impl Assessment {
    /// Nothing to do: no stale entry, no required key missing.
    pub fn is_current(&self) -> bool {
        self.stale.is_empty() && self.missing.is_empty()
    }
    /// Some entry is stale (rewrap or re-encrypt).
    pub fn needs_migration(&self) -> bool {
        !self.stale.is_empty()
    }
    /// Some required key is missing (add its wrap).
    pub fn needs_heal(&self) -> bool {
        !self.missing.is_empty()
    }
    /// The stale entries: their index in the header and why.
    pub fn stale(&self) -> &[(usize, Reason)] {
        &self.stale
    }
    /// The reasons, in header order.
    pub fn reasons(&self) -> impl Iterator<Item = Reason> + '_ {
        self.stale.iter().map(|(_, r)| *r)
    }
    /// The most urgent reason, if any entry is stale.
    pub fn worst(&self) -> Option<Reason> {
        self.reasons().max_by_key(|r| severity(*r))
    }
    /// The required keys the envelope lacks.
    pub fn missing(&self) -> &[KeyName] {
        &self.missing
    }
    /// Wrapped keys in the header.
    pub fn entries(&self) -> usize {
        self.entries
    }
    /// Entries that are not stale at all.
    pub fn usable(&self) -> usize {
        self.usable
    }
    /// Entries that can still unwrap: not stale, or stale but not dead (a
    /// compromised or non-primary version still unwraps, for migration).
    pub fn live(&self) -> usize {
        self.usable
            .saturating_add(self.stale.iter().filter(|(_, r)| !r.is_dead()).count())
    }
}

/// The entries a policy calls stale, as a [`ProviderIdentity`] that matches
/// exactly them: handed to [`Rewrapper::remove_entries_of`](crate::Rewrapper::remove_entries_of)
/// so a migration removes the stale entries and nothing else. It never
/// wraps or unwraps.
#[derive(Clone, Debug)]
pub struct StaleEntries(pub(crate) alloc::sync::Arc<MigrationPolicy>);

impl crate::provider::ProviderIdentity for StaleEntries {
    fn provider_id(&self) -> &str {
        "lockbox.rotation.stale"
    }
    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.0.judge(wrapped).is_some()
    }
}
