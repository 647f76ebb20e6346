//! Property test: random sequences of keyring operations against a simple
//! model of the lifecycle rules. After every step the keyring's answer (ok or
//! which error), every version's state, the primary and the minimum match the
//! model, and every envelope ever sealed opens exactly when the model says its
//! version may unwrap (through the keyring and through the migration
//! provider). Save-and-load round trips are part of the sequences.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

use lockbox::keyring::{KeyState, Keyring, KeyringError, RotationPolicy, UnixTime};
use lockbox::{EncryptionContext, Error, KeyId, KeyVersion, LocalKek};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Rotate,
    Promote(u32),
    Enable(u32),
    DecryptOnly(u32),
    Disable(u32),
    Schedule(u32, u64),
    Cancel(u32),
    Destroy(u32),
    Compromise(u32),
    SetMinimum(u32),
    Trim,
    Tick(u64),
    SaveLoad,
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0u32..8;
    prop_oneof![
        Just(Op::Add),
        Just(Op::Rotate),
        v.clone().prop_map(Op::Promote),
        v.clone().prop_map(Op::Enable),
        v.clone().prop_map(Op::DecryptOnly),
        v.clone().prop_map(Op::Disable),
        (v.clone(), 0u64..4).prop_map(|(v, d)| Op::Schedule(v, d)),
        v.clone().prop_map(Op::Cancel),
        v.clone().prop_map(Op::Destroy),
        v.clone().prop_map(Op::Compromise),
        v.prop_map(Op::SetMinimum),
        Just(Op::Trim),
        (0u64..3).prop_map(Op::Tick),
        Just(Op::SaveLoad),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum S {
    Enabled,
    DecryptOnly,
    Disabled,
    Scheduled(u64),
    Destroyed,
}

#[derive(Debug)]
struct Model {
    versions: BTreeMap<u32, (S, bool)>,
    primary: u32,
    minimum: u32,
    trimmed_below: u32,
    last: u32,
    now: u64,
}

const MIN_DELAY: u64 = 1;

impl Model {
    fn lookup(&self, v: u32) -> Result<(S, bool), &'static str> {
        match self.versions.get(&v) {
            None if v >= 1 && v < self.trimmed_below => Err("Trimmed"),
            None => Err("UnknownVersion"),
            Some((S::Destroyed, _)) => Err("Destroyed"),
            Some(x) => Ok(*x),
        }
    }

    fn add(&mut self) -> u32 {
        self.last += 1;
        self.versions.insert(self.last, (S::Enabled, false));
        self.last
    }

    fn set(&mut self, v: u32, s: S) {
        self.versions.get_mut(&v).unwrap().0 = s;
    }

    fn apply(&mut self, op: Op) -> Result<(), &'static str> {
        match op {
            Op::Add => {
                self.add();
            }
            Op::Rotate => self.primary = self.add(),
            Op::Promote(v) => {
                let (s, c) = self.lookup(v)?;
                if c {
                    return Err("Compromised");
                }
                if s != S::Enabled {
                    return Err("IllegalTransition");
                }
                if v < self.minimum {
                    return Err("BelowMinimum");
                }
                self.primary = v;
            }
            Op::Enable(v) => {
                let (s, c) = self.lookup(v)?;
                if c {
                    return Err("Compromised");
                }
                if matches!(s, S::Scheduled(_)) {
                    return Err("IllegalTransition");
                }
                self.set(v, S::Enabled);
            }
            Op::DecryptOnly(v) | Op::Disable(v) => {
                let (s, _) = self.lookup(v)?;
                if v == self.primary {
                    return Err("IsPrimary");
                }
                if matches!(s, S::Scheduled(_)) {
                    return Err("IllegalTransition");
                }
                self.set(
                    v,
                    if matches!(op, Op::Disable(_)) {
                        S::Disabled
                    } else {
                        S::DecryptOnly
                    },
                );
            }
            Op::Schedule(v, d) => {
                let (s, _) = self.lookup(v)?;
                if v == self.primary {
                    return Err("IsPrimary");
                }
                if d < MIN_DELAY {
                    return Err("DestructionTooSoon");
                }
                if matches!(s, S::Scheduled(_)) {
                    return Err("IllegalTransition");
                }
                self.set(v, S::Scheduled(self.now + d));
            }
            Op::Cancel(v) => match self.lookup(v)? {
                (S::Scheduled(_), _) => self.set(v, S::Disabled),
                _ => return Err("IllegalTransition"),
            },
            Op::Destroy(v) => match self.lookup(v)? {
                (S::Scheduled(nb), _) if self.now < nb => return Err("DestructionNotDue"),
                (S::Scheduled(_), _) => self.set(v, S::Destroyed),
                _ => return Err("IllegalTransition"),
            },
            Op::Compromise(v) => {
                let (s, c) = self.lookup(v)?;
                if c {
                    return Ok(());
                }
                if v == self.primary {
                    self.primary = self.add();
                }
                let e = self.versions.get_mut(&v).unwrap();
                e.1 = true;
                if s == S::Enabled {
                    e.0 = S::DecryptOnly;
                }
            }
            Op::SetMinimum(m) => {
                if m < self.trimmed_below {
                    return Err("MinimumBelowTrimmed");
                }
                if m > self.primary {
                    return Err("MinimumAbovePrimary");
                }
                self.minimum = m;
            }
            Op::Trim => {
                self.versions.retain(|v, _| *v >= self.minimum);
                self.trimmed_below = self.minimum;
            }
            Op::Tick(d) => self.now += d,
            Op::SaveLoad => {}
        }
        Ok(())
    }

    /// Whether an unwrap under `v` succeeds (`migration`: through the migration provider).
    fn unwraps(&self, v: u32, migration: bool) -> bool {
        match self.versions.get(&v) {
            Some((S::Enabled | S::DecryptOnly, c)) => v >= self.minimum && (!c || migration),
            _ => false,
        }
    }
}

fn name(e: &KeyringError) -> &'static str {
    match e {
        KeyringError::UnknownVersion(_) => "UnknownVersion",
        KeyringError::Trimmed(_) => "Trimmed",
        KeyringError::Destroyed(_) => "Destroyed",
        KeyringError::Compromised(_) => "Compromised",
        KeyringError::IsPrimary(_) => "IsPrimary",
        KeyringError::IllegalTransition { .. } => "IllegalTransition",
        KeyringError::BelowMinimum { .. } => "BelowMinimum",
        KeyringError::DestructionTooSoon { .. } => "DestructionTooSoon",
        KeyringError::DestructionNotDue { .. } => "DestructionNotDue",
        KeyringError::MinimumAbovePrimary { .. } => "MinimumAbovePrimary",
        KeyringError::MinimumBelowTrimmed { .. } => "MinimumBelowTrimmed",
        other => panic!("unexpected error {other:?}"),
    }
}

fn run(r: &mut Keyring, op: Op, now: UnixTime, master: &LocalKek) -> Result<(), Error> {
    match op {
        Op::Add => r.add_version(now).map(|_| ()),
        Op::Rotate => r.rotate(now).map(|_| ()),
        Op::Promote(v) => r.promote(KeyVersion(v), now),
        Op::Enable(v) => r.enable(KeyVersion(v), now),
        Op::DecryptOnly(v) => r.set_decrypt_only(KeyVersion(v), now),
        Op::Disable(v) => r.disable(KeyVersion(v), now),
        Op::Schedule(v, d) => r.schedule_destruction(KeyVersion(v), now.plus_secs(d), now),
        Op::Cancel(v) => r.cancel_destruction(KeyVersion(v), now),
        Op::Destroy(v) => r.destroy(KeyVersion(v), now),
        Op::Compromise(v) => r.compromised(KeyVersion(v), now).map(|_| ()),
        Op::SetMinimum(v) => r.set_minimum_decryption_version(KeyVersion(v), now),
        Op::Trim => r.trim(now).map(|_| ()),
        Op::Tick(_) => Ok(()),
        Op::SaveLoad => {
            let bytes = r.to_sealed_bytes(master)?;
            let loaded = Keyring::from_sealed_bytes(&bytes, master)?;
            assert_eq!(loaded.versions().collect::<Vec<_>>(), r.versions().collect::<Vec<_>>());
            *r = loaded;
            Ok(())
        }
    }
}

fn state_of(s: KeyState) -> S {
    match s {
        KeyState::Enabled => S::Enabled,
        KeyState::DecryptOnly => S::DecryptOnly,
        KeyState::Disabled => S::Disabled,
        KeyState::ScheduledForDestruction { not_before } => S::Scheduled(not_before.0),
        KeyState::Destroyed { .. } => S::Destroyed,
        _ => panic!("unknown state"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn keyring_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let master = LocalKek::generate().unwrap();
        let policy = RotationPolicy::new().min_destruction_delay(MIN_DELAY);
        let mut r = Keyring::generate(KeyId::new("model").unwrap(), UnixTime(0)).unwrap().with_policy(policy);
        let mut m = Model { versions: BTreeMap::from([(1, (S::Enabled, false))]), primary: 1, minimum: 1, trimmed_below: 1, last: 1, now: 0 };
        let ctx = EncryptionContext::new();
        let mut envelopes: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for op in ops {
            if let Op::Tick(d) = op {
                m.now += d;
                continue;
            }
            let now = UnixTime(m.now);
            let want = m.apply(op);
            let got = run(&mut r, op, now, &master);
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(Error::Keyring(e))) => prop_assert_eq!(w, name(&e), "{:?}", op),
                (w, g) => prop_assert!(false, "{:?}: model {:?}, keyring {:?}", op, w, g),
            }
            prop_assert_eq!(r.primary(), KeyVersion(m.primary));
            prop_assert_eq!(r.minimum_decryption_version(), KeyVersion(m.minimum));
            let got: Vec<_> = r.versions().map(|i| (i.version.0, (state_of(i.state), i.compromised))).collect();
            let want: Vec<_> = m.versions.iter().map(|(v, s)| (*v, *s)).collect();
            prop_assert_eq!(got, want);
            // One envelope per version, sealed while it was the primary.
            if let std::collections::btree_map::Entry::Vacant(e) = envelopes.entry(m.primary) {
                let env = lockbox::seal(&r, b"x", &ctx).unwrap();
                prop_assert_eq!(lockbox::inspect(&env).unwrap().wrapped_keys()[0].key_version(), KeyVersion(m.primary));
                e.insert(env);
            }
            let mp = r.migration_provider();
            for (v, env) in &envelopes {
                prop_assert_eq!(lockbox::open(&r, env, &ctx).is_ok(), m.unwraps(*v, false), "v{} via keyring", v);
                prop_assert_eq!(lockbox::open(&mp, env, &ctx).is_ok(), m.unwraps(*v, true), "v{} via migration", v);
            }
        }
    }
}
