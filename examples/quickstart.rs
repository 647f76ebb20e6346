//! Quick start: create a local key-encryption key, store it in an owner-only
//! file, load it back, seal some data with an encryption context, inspect the
//! envelope, open it, and show that the wrong context cannot.
//!
//! Run with `cargo run --example quickstart`.
#![allow(clippy::print_stdout)]

use lockbox::{EncryptionContext, Error, LocalKek, Storage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A KEK from the OS CSPRNG, written atomically to a 0600 file.
    let dir = tempfile::tempdir()?;
    let key_path = dir.path().join("kek.b64");
    LocalKek::generate()?.write_new_file(&key_path)?;
    let kek = LocalKek::from_file(&key_path)?;
    println!(
        "KEK        {} (key id {}, file {})",
        lockbox::LOCAL_PROVIDER_ID,
        kek.key_id(),
        key_path.display()
    );

    // 2. Context: `purpose` is stored in the header; `tenant` is authenticated
    //    but never written, so it must be supplied again to open.
    let context = EncryptionContext::new()
        .with("purpose", "quickstart")?
        .with_required("tenant", "acme-corp")?;

    // 3. Seal: fresh data key, wrapped by the KEK and bound to the context.
    let plaintext = b"The eagle lands at midnight.";
    let envelope = lockbox::seal(&kek, plaintext, &context)?;
    println!(
        "sealed     {} bytes of plaintext into a {}-byte envelope",
        plaintext.len(),
        envelope.len()
    );

    // 4. Inspect: routing information, readable without any key (and not trusted).
    let info = lockbox::inspect(&envelope)?;
    println!(
        "format     v{}, {}, {} segment(s) of up to {} bytes",
        info.version(),
        info.suite(),
        info.segment_count(),
        info.segment_size().bytes()
    );
    for (k, v) in info.stored_context() {
        println!("context    {k} = {v:?} (stored)");
    }
    for k in info.required_context_keys() {
        println!("context    {k} = <not stored: required to open>");
    }
    for w in info.wrapped_keys() {
        println!(
            "wrapped    by {} key {} {} ({} bytes)",
            w.provider_id(),
            w.key_id(),
            w.key_version(),
            w.bytes().len()
        );
    }

    // 5. Open with the whole context: opening is exact, so the stored entry is
    //    named too (how entries are labelled does not matter), and the
    //    required one must be supplied again.
    let open_context = EncryptionContext::new()
        .with("purpose", "quickstart")?
        .with_required("tenant", "acme-corp")?;
    assert_eq!(open_context.storage("tenant"), Some(Storage::Required));
    let opened = lockbox::open(&kek, &envelope, &open_context)?;
    assert_eq!(opened, plaintext);
    println!("opened     {:?}", String::from_utf8_lossy(&opened));

    // 6. What does not open.
    let wrong_tenant = EncryptionContext::new()
        .with("purpose", "quickstart")?
        .with_required("tenant", "evil-corp")?;
    let refused = lockbox::open(&kek, &envelope, &wrong_tenant);
    println!("refused    wrong tenant: {}", describe(refused));
    let refused = lockbox::open(&kek, &envelope, &EncryptionContext::new());
    println!("refused    no tenant: {}", describe(refused));
    let mut tampered = envelope.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    println!(
        "refused    one flipped bit: {}",
        describe(lockbox::open(&kek, &tampered, &open_context))
    );
    let other_kek = LocalKek::generate()?;
    println!(
        "refused    another KEK: {}",
        describe(lockbox::open(&other_kek, &envelope, &open_context))
    );
    Ok(())
}

fn describe(r: Result<Vec<u8>, Error>) -> String {
    match r {
        Ok(_) => String::from("OPENED (this is a bug)"),
        Err(e) => {
            // Errors chain: print the causes too.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}
