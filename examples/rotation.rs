//! The key lifecycle end to end: a keyring of KEKs stored under a master key,
//! sealing, rotation, rewrapping old envelopes to the new version (payload
//! untouched), destroying the old version, and rotating the master key.
//!
//! Old envelopes open after they were rewrapped; one deliberately left behind
//! fails cleanly, with an error that says its version was destroyed.
//!
//! Run with `cargo run --example rotation`.
#![allow(clippy::print_stdout, clippy::indexing_slicing)]

use lockbox::keyring::{Keyring, KeyringError, RotationPolicy, UnixTime};
use lockbox::{EncryptionContext, Error, KeyId, LocalKek, Rewrapper};

const DAY: u64 = 24 * 60 * 60;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let master_path = dir.path().join("master.key");
    let ring_path = dir.path().join("invoices.keyring");
    // The library reads no clock: times are passed in. Simulated here.
    let mut now = UnixTime(1_700_000_000);

    // 1. Master key (a local key here; an HSM or KMS provider in production),
    //    and a keyring of KEKs sealed under it.
    LocalKek::generate()?.write_new_file(&master_path)?;
    let master = LocalKek::from_file(&master_path)?;
    let mut ring =
        Keyring::generate(KeyId::new("invoices")?, now)?.with_policy(RotationPolicy::new().rotate_every(90 * DAY));
    ring.save(&ring_path, &master)?;
    println!(
        "keyring   {} v{} saved (generation {}) under master {}",
        ring.id(),
        ring.primary().0,
        ring.generation(),
        master.key_id()
    );

    // 2. Seal three invoices under the keyring (primary: v1).
    let ctx = EncryptionContext::new().with_required("tenant", "acme")?;
    let envelopes: Vec<Vec<u8>> = ["invoice 1", "invoice 2", "invoice 3"]
        .iter()
        .map(|text| lockbox::seal(&ring, text.as_bytes(), &ctx))
        .collect::<Result<_, _>>()?;
    println!("sealed    {} envelopes under {}", envelopes.len(), ring.primary());

    // 3. 91 days later, the policy says rotate: v2 becomes the primary.
    now = now.plus_secs(91 * DAY);
    assert!(ring.rotation_due(now));
    let v2 = ring.rotate_if_due(now)?.ok_or("rotation was due")?;
    ring.save(&ring_path, &master)?;
    println!("rotated   primary is now {v2}; v1 still unwraps");
    for env in &envelopes {
        lockbox::open(&ring, env, &ctx)?;
    }

    // 4. Rewrap the old envelopes to v2, except one we "forget". Rewrap keeps
    //    the data key and copies the payload byte for byte.
    let rewrapper = Rewrapper::new(&ring).wrap_with(&ring);
    let mut migrated = Vec::new();
    for env in &envelopes[..2] {
        let info = lockbox::inspect(env)?;
        assert!(ring.needs_migration(&info));
        let new = rewrapper.rewrap(env, &ctx)?;
        let new_info = lockbox::inspect(&new)?;
        assert_eq!(&env[info.header_len()..], &new[new_info.header_len()..]);
        assert!(!ring.needs_migration(&new_info));
        migrated.push(new);
    }
    let forgotten = &envelopes[2];
    println!(
        "rewrapped {} envelopes to {v2} (payload bytes unchanged); 1 left on v1",
        migrated.len()
    );

    // 5. Retire v1: schedule its destruction (at least 7 days ahead by
    //    default), then destroy it once due. The next save drops its bytes.
    let v1 = lockbox::KeyVersion(1);
    ring.schedule_destruction(v1, now.plus_secs(7 * DAY), now)?;
    now = now.plus_secs(7 * DAY);
    ring.destroy(v1, now)?;
    ring.save(&ring_path, &master)?;
    println!(
        "destroyed v1 (tombstone kept); keyring at generation {}",
        ring.generation()
    );

    // 6. Rewrapped envelopes open; the forgotten one fails cleanly.
    let ring = Keyring::load(&ring_path, &master)?;
    for env in &migrated {
        let text = lockbox::open(&ring, env, &ctx)?;
        println!("opened    {:?}", String::from_utf8_lossy(&text));
    }
    match lockbox::open(&ring, forgotten, &ctx) {
        Err(Error::NoProviderCouldUnwrap { source: Some(e), .. }) => {
            let why = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<KeyringError>());
            println!(
                "refused   the forgotten envelope: {e} ({})",
                why.ok_or("keyring error")?
            );
        }
        other => return Err(format!("the forgotten envelope should fail, got {other:?}").into()),
    }

    // 7. Rotate the master key: only the keyring file is re-encrypted.
    let new_master_path = dir.path().join("master-2.key");
    LocalKek::generate()?.write_new_file(&new_master_path)?;
    let new_master = LocalKek::from_file(&new_master_path)?;
    let mut ring = ring;
    ring.save(&ring_path, &new_master)?;
    let ring = Keyring::load(&ring_path, &new_master)?;
    for env in &migrated {
        lockbox::open(&ring, env, &ctx)?;
    }
    assert!(Keyring::load(&ring_path, &master).is_err());
    println!(
        "master    rotated to {}; envelopes unchanged and still open; the old master opens nothing",
        new_master.key_id()
    );
    Ok(())
}
