//! Key distribution with public-key recipients, and changing recipients
//! without re-encrypting the data.
//!
//! 1. Alice creates an X-Wing (post-quantum) identity, keeps it in a private
//!    identity file, and publishes her recipient string.
//! 2. A sender who has only public strings seals a file to Alice and to Bob.
//! 3. Alice opens it with her identity.
//! 4. Alice removes Bob by rewrap: the header changes, the payload bytes do
//!    not, and Bob's identity no longer opens the file.
//!
//! Run with `cargo run --example recipients --features recipients`.
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::error::Error;
use std::fs;

use lockbox::recipient::{Identity, Recipient};
use lockbox::{EncryptionContext, Keep, Opener, Rewrapper, Sealer};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("lockbox-recipients-example-{}", std::process::id()));
    fs::create_dir(&dir)?;
    let result = run(&dir);
    fs::remove_dir_all(&dir)?;
    result
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    // 1. Alice's identity, in a file only she can read (mode 0600).
    let alice_file = dir.join("alice.identity");
    Identity::generate()?.write_new_file(&alice_file)?;
    let alice = Identity::from_file(&alice_file)?;
    let published = alice.recipient().to_string();
    let shown = published.get(..32).unwrap_or(&published);
    println!("alice publishes {shown}… ({} characters)", published.len());

    // Bob's identity (he publishes his recipient string the same way).
    let bob = Identity::generate()?;
    let bob_published = bob.recipient().to_string();

    // 2. The sender parses the two strings (a typo would be an error, never
    //    another key) and seals the file to both.
    let to_alice: Recipient = published.parse()?;
    let to_bob: Recipient = bob_published.parse()?;
    let ctx = EncryptionContext::new().with("file", "q3-report.pdf")?;
    let report = b"Q3: revenue up, costs down. (Imagine a PDF.)".repeat(100);
    let sealed = Sealer::new(&to_alice).also_wrap_with(&to_bob).seal(&report, &ctx)?;
    let path = dir.join("q3-report.pdf.lockbox");
    fs::write(&path, &sealed)?;
    let info = lockbox::inspect(&sealed)?;
    println!(
        "sealed {} bytes to {} recipients ({}): envelope {} bytes",
        report.len(),
        info.wrapped_keys().len(),
        info.post_quantum(),
        sealed.len()
    );

    // 3. Alice opens it; so could Bob.
    let envelope = fs::read(&path)?;
    assert_eq!(Opener::new(&alice).open(&envelope, &ctx)?, report);
    assert_eq!(Opener::new(&bob).open(&envelope, &ctx)?, report);
    println!("alice and bob both open it");

    // 4. Alice removes Bob: her identity unwraps the data key, every other
    //    entry is kept except those Bob's recipient matches.
    let rewrapped = Rewrapper::new(&alice)
        .keep(Keep::All)
        .no_new_wraps()
        .remove_entries_of(&to_bob)
        .rewrap(&envelope, &ctx)?;
    fs::write(&path, &rewrapped)?;
    let old_header = lockbox::inspect(&envelope)?.header_len();
    let new_header = lockbox::inspect(&rewrapped)?.header_len();
    let (old_payload, new_payload) = (envelope.get(old_header..), rewrapped.get(new_header..));
    assert_eq!(old_payload, new_payload, "payload bytes identical");
    println!(
        "removed bob by rewrap: header {old_header} -> {new_header} bytes, payload ({} bytes) unchanged",
        new_payload.map_or(0, <[u8]>::len)
    );
    assert_eq!(Opener::new(&alice).open(&rewrapped, &ctx)?, report);
    match Opener::new(&bob).open(&rewrapped, &ctx) {
        Err(lockbox::Error::NoProviderCouldUnwrap { attempts: 0, .. }) => {
            println!("bob can no longer open it (no wrapped key is addressed to him)")
        }
        other => return Err(format!("bob should not open the rewrapped file: {other:?}").into()),
    }
    Ok(())
}
