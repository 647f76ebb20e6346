//! Encrypted secrets files (`SECRETS.md`): both forms round-trip through a
//! key set of a local KEK, a keyring and two public-key recipients and open
//! with each alone; every tamper case is refused; edits keep unchanged
//! ciphertext; update keys vs rotate (coverage, removal, verification);
//! three-way merge; the async drivers; atomic saves and a rotation killed
//! mid-save.
#![cfg(all(feature = "secrets", feature = "recipients"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::print_stdout
)]

#[path = "keyring_common/async_only.rs"]
mod async_only;
#[path = "support/child.rs"]
mod child;

use std::time::Duration;

use async_only::{AsyncOnly, block_on};
use lockbox::keyring::{Keyring, UnixTime};
use lockbox::recipient::Identity;
use lockbox::secrecy::ExposeSecret;
use lockbox::secrets::{CheckOutcome, Form, SecretsError, SecretsFile, UnlockedFile, Verify, merge};
use lockbox::{
    AsyncOpener, AsyncRewrapper, AsyncSealer, Binding, DataKey, EncryptionContext, Error, Keep, KeyEncryptionProvider,
    KeyId, LocalKek, Opener, ProviderError, ProviderErrorKind, ProviderIdentity, Rewrapper, Sealer, WrappedKey,
    WrappedKeyRef,
};

struct Keys {
    kek: LocalKek,
    ring: Keyring,
    alice: Identity,
    bob: Identity,
}

fn keys() -> Keys {
    Keys {
        kek: LocalKek::generate().unwrap(),
        ring: Keyring::generate(KeyId::new("app-ring").unwrap(), UnixTime::now()).unwrap(),
        alice: Identity::generate().unwrap(),
        bob: Identity::generate().unwrap(),
    }
}

impl Keys {
    fn sealer(&self) -> Sealer<'_> {
        Sealer::new(&self.kek)
            .also_wrap_with(&self.ring)
            .also_wrap_with(self.alice.recipient())
            .also_wrap_with(self.bob.recipient())
    }
    /// Each provider that can open, alone.
    fn openers(&self) -> [(&'static str, &dyn KeyEncryptionProvider); 4] {
        [
            ("kek", &self.kek),
            ("keyring", &self.ring),
            ("alice", &self.alice),
            ("bob", &self.bob),
        ]
    }
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
}

/// A dotenv file with a comment, three values (one multi-line).
fn dotenv(k: &Keys) -> UnlockedFile {
    let mut f = SecretsFile::create(Form::Dotenv, &k.sealer(), &ctx(), Verify::EachProvider).unwrap();
    f.set("DATABASE_URL", "postgres://app:hunter2@db/app").unwrap();
    f.set("API_TOKEN", "tok_live_123").unwrap();
    f.set("TLS_KEY", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n")
        .unwrap();
    f
}

/// A JSON file with nested objects, an array and every scalar type.
fn json(k: &Keys) -> UnlockedFile {
    let mut f = SecretsFile::create(Form::Json, &k.sealer(), &ctx(), Verify::EachProvider).unwrap();
    f.set("/database/password", "hunter2").unwrap();
    f.set_json("/database/port", "5432").unwrap();
    f.set_json("/flags", r#"{"debug": false, "beta": true, "nothing": null}"#)
        .unwrap();
    f.set_json("/hosts", r#"["a.example", "b.example", "c.example"]"#)
        .unwrap();
    f.set("/api/token", "tok_live_123").unwrap();
    f
}

fn text(f: &UnlockedFile) -> String {
    String::from_utf8(f.to_bytes().unwrap()).unwrap()
}

fn reopen(form: Form, bytes: &[u8], p: &dyn KeyEncryptionProvider) -> Result<UnlockedFile, Error> {
    SecretsFile::parse(form, bytes)?.unlock(&Opener::new(p), &ctx())
}

#[test]
fn both_forms_round_trip_and_open_with_each_provider_alone() {
    let k = keys();
    for f in [dotenv(&k), json(&k)] {
        let form = f.form();
        // Verification: the KEK and the keyring opened the new file; the
        // recipients cannot unwrap (public keys only).
        let outcomes: Vec<_> = f.verification().unwrap().checks().iter().map(|c| c.outcome()).collect();
        assert!(matches!(
            outcomes[..],
            [
                CheckOutcome::Opened,
                CheckOutcome::Opened,
                CheckOutcome::CannotUnwrap,
                CheckOutcome::CannotUnwrap
            ]
        ));
        let bytes = f.to_bytes().unwrap();
        let expected = f.load().unwrap();
        for (who, p) in k.openers() {
            let opened = reopen(form, &bytes, p).unwrap_or_else(|e| panic!("{form:?} {who}: {e}"));
            let loaded = opened.load().unwrap();
            assert_eq!(loaded.len(), expected.len());
            for ((n1, v1), (n2, v2)) in loaded.iter().zip(expected.iter()) {
                assert_eq!((n1, v1.expose_secret()), (n2, v2.expose_secret()), "{who}");
            }
            // Written back unchanged: byte for byte the same file.
            assert_eq!(opened.to_bytes().unwrap(), bytes);
        }
        let stranger = LocalKek::generate().unwrap();
        assert!(reopen(form, &bytes, &stranger).is_err());
    }
    let j = json(&k);
    let s = j.load().unwrap();
    assert_eq!(
        s.names().collect::<Vec<_>>(),
        [
            "/database/password",
            "/database/port",
            "/flags/debug",
            "/flags/beta",
            "/flags/nothing",
            "/hosts/0",
            "/hosts/1",
            "/hosts/2",
            "/api/token"
        ]
    );
    assert_eq!(s.parse::<u16>("/database/port").unwrap(), 5432);
    assert!(!s.parse::<bool>("/flags/debug").unwrap());
    assert_eq!(j.get("/hosts/1").unwrap().unwrap().expose_secret(), "b.example");
    assert!(j.get("/hosts/9").unwrap().is_none());
    let env = s.env_vars().unwrap();
    assert_eq!(env[0].0, "DATABASE_PASSWORD");
    assert_eq!(env[5].0, "HOSTS_0");
    let d = dotenv(&k).load().unwrap();
    assert_eq!(
        d.require("TLS_KEY").unwrap().expose_secret(),
        "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n"
    );
    assert!(!format!("{d:?}").contains("hunter2"));
}

/// The file's lines; `i` is the line of `name` (dotenv) or the first line
/// containing it (JSON).
fn line_of(lines: &[String], needle: &str) -> usize {
    lines.iter().position(|l| l.contains(needle)).unwrap()
}

fn lines(t: &str) -> Vec<String> {
    t.lines().map(String::from).collect()
}

fn join(l: &[String]) -> String {
    let mut s = l.join("\n");
    s.push('\n');
    s
}

fn refused(form: Form, t: &str, k: &Keys, what: &str) {
    match reopen(form, t.as_bytes(), &k.kek) {
        Err(Error::Authentication) => {}
        Err(e) => println!("{what}: refused with {e}"),
        Ok(_) => panic!("{form:?}: {what} was accepted"),
    }
}

#[test]
fn every_tamper_case_is_refused() {
    let k = keys();
    // Dotenv.
    let f = dotenv(&k);
    let t = text(&f);
    let l = lines(&t);
    let (a, b) = (line_of(&l, "DATABASE_URL="), line_of(&l, "API_TOKEN="));
    let value = |i: usize| l[i].split_once('=').unwrap().1.to_string();
    // A value moved to another name.
    let mut m = l.clone();
    m[b] = format!("API_TOKEN={}", value(a));
    refused(Form::Dotenv, &join(&m), &k, "value moved to another name");
    // Two values swapped.
    let mut m = l.clone();
    m.swap(a, b);
    let mut s = l.clone();
    s[a] = format!("DATABASE_URL={}", value(b));
    s[b] = format!("API_TOKEN={}", value(a));
    refused(Form::Dotenv, &join(&s), &k, "values swapped");
    // Lines reordered (each value still under its own name).
    refused(Form::Dotenv, &join(&m), &k, "lines reordered");
    // A value removed.
    let mut m = l.clone();
    m.remove(b);
    refused(Form::Dotenv, &join(&m), &k, "value removed");
    // A value added: one from another file with the same providers.
    let other = dotenv(&k);
    let ol = lines(&text(&other));
    let mut m = l.clone();
    m.insert(0, ol[line_of(&ol, "API_TOKEN=")].replace("API_TOKEN", "EXTRA"));
    refused(Form::Dotenv, &join(&m), &k, "value added");
    // A value swapped in from another file, under its own name.
    let mut m = l.clone();
    m[b] = ol[line_of(&ol, "API_TOKEN=")].clone();
    refused(Form::Dotenv, &join(&m), &k, "value from another file");
    // The header: a byte changed, another file's header, the authenticator.
    let h = line_of(&l, "#lockbox:v1:header:");
    let mut m = l.clone();
    let mid = m[h].len() / 2;
    let flip = if m[h].as_bytes()[mid] == b'A' { "B" } else { "A" };
    m[h].replace_range(mid..=mid, flip);
    refused(Form::Dotenv, &join(&m), &k, "header byte changed");
    let mut m = l.clone();
    m[h] = ol[line_of(&ol, "#lockbox:v1:header:")].clone();
    refused(Form::Dotenv, &join(&m), &k, "header from another file");
    let mut m = l.clone();
    let mac = m.len() - 1;
    m[mac] = ol[ol.len() - 1].clone();
    refused(Form::Dotenv, &join(&m), &k, "authenticator replaced");
    // An older header of the same file (before a provider was removed).
    let removed = SecretsFile::parse(Form::Dotenv, t.as_bytes())
        .unwrap()
        .update_keys(
            &Rewrapper::new(&k.kek).remove_entries_of(k.bob.recipient()),
            &ctx(),
            Verify::EachProvider,
        )
        .unwrap();
    let rl = lines(&text(&removed));
    let mut m = rl.clone();
    m[line_of(&rl, "#lockbox:v1:header:")] = l[h].clone();
    refused(Form::Dotenv, &join(&m), &k, "old header put back");
    // Comments are presentation: editing them keeps the file valid.
    let commented = format!("# owner: platform team\n{t}");
    assert!(reopen(Form::Dotenv, commented.as_bytes(), &k.kek).is_ok());

    // JSON.
    let f = json(&k);
    let t = text(&f);
    let l = lines(&t);
    let pw = line_of(&l, "\"password\"");
    let port = line_of(&l, "\"port\"");
    let val = |i: usize| l[i].split_once(": ").unwrap().1.trim_end_matches(',').to_string();
    let mut m = l.clone();
    m[port] = format!("    \"port\": {}", val(pw));
    refused(Form::Json, &join(&m), &k, "JSON leaf moved");
    let mut m = l.clone();
    let h0 = line_of(&l, "\"hosts\"") + 1;
    m.swap(h0, h0 + 1);
    refused(Form::Json, &join(&m), &k, "JSON array reordered");
    let mut m = l.clone();
    m[pw] = format!("    \"password\": {},", val(port));
    m[port] = format!("    \"port\": {}", val(pw));
    refused(Form::Json, &join(&m), &k, "JSON leaves swapped");
    let mut m = l.clone();
    m[port] = m[port].replace("\"port\"", "\"port2\"");
    refused(Form::Json, &join(&m), &k, "JSON key renamed");
    let mut m = l.clone();
    m.remove(port);
    m[pw] = m[pw].trim_end_matches(',').to_string();
    refused(Form::Json, &join(&m), &k, "JSON leaf removed");
    let mut m = l.clone();
    m.insert(pw, format!("    \"extra\": {},", val(pw)));
    refused(Form::Json, &join(&m), &k, "JSON leaf added");
    let oj = lines(&text(&json(&k)));
    let mut m = l.clone();
    m[pw] = oj[line_of(&oj, "\"password\"")].clone();
    refused(Form::Json, &join(&m), &k, "JSON leaf from another file");
    let mut m = l.clone();
    let hh = line_of(&l, "\"header\"");
    m[hh] = oj[line_of(&oj, "\"header\"")].clone();
    refused(Form::Json, &join(&m), &k, "JSON header from another file");
    // Whitespace is presentation.
    let compact: String = t.split('\n').map(str::trim).collect();
    assert!(reopen(Form::Json, compact.as_bytes(), &k.kek).is_ok());
    // A dotenv header pasted into a JSON file (and back) is refused.
    let swapped = t.replace(
        l[hh].split('"').nth(3).unwrap(),
        lines(&text(&dotenv(&k)))
            .iter()
            .find_map(|x| x.strip_prefix("#lockbox:v1:header:"))
            .unwrap(),
    );
    assert!(reopen(Form::Json, swapped.as_bytes(), &k.kek).is_err());
}

#[test]
fn an_edit_changes_one_value_line_and_the_authenticator() {
    let k = keys();
    for f in [dotenv(&k), json(&k)] {
        let form = f.form();
        let before = text(&f);
        let mut g = reopen(form, before.as_bytes(), &k.alice).unwrap();
        let name = if form == Form::Dotenv {
            "API_TOKEN"
        } else {
            "/api/token"
        };
        // Setting the same value changes nothing at all.
        g.set(name, "tok_live_123").unwrap();
        assert_eq!(text(&g), before);
        g.set(name, "tok_live_456").unwrap();
        let after = text(&g);
        let (b, a) = (lines(&before), lines(&after));
        assert_eq!(b.len(), a.len());
        let changed: Vec<usize> = (0..b.len()).filter(|&i| b[i] != a[i]).collect();
        let mac = if form == Form::Dotenv {
            b.len() - 1
        } else {
            line_of(&b, "\"mac\"")
        };
        let at = if form == Form::Dotenv {
            "API_TOKEN="
        } else {
            "\"token\""
        };
        assert_eq!(changed, [line_of(&b, at), mac], "{form:?}");
        assert_eq!(g.get(name).unwrap().unwrap().expose_secret(), "tok_live_456");
        // Removing a value removes its line (and changes the authenticator).
        let mut h = reopen(form, after.as_bytes(), &k.kek).unwrap();
        assert!(h.remove(name).unwrap());
        assert!(!h.remove(name).unwrap());
        assert_eq!(lines(&text(&h)).len(), a.len() - 1 - usize::from(form == Form::Json));
    }
    // Removing an array element re-encrypts the elements after it (their
    // index moved); the others keep their bytes.
    let f = json(&k);
    let before = lines(&text(&f));
    let mut g = reopen(Form::Json, text(&f).as_bytes(), &k.kek).unwrap();
    assert!(g.remove("/hosts/0").unwrap());
    assert_eq!(g.get("/hosts/0").unwrap().unwrap().expose_secret(), "b.example");
    let after = lines(&text(&g));
    assert_eq!(
        before[line_of(&before, "\"password\"")],
        after[line_of(&after, "\"password\"")]
    );
    let reread = reopen(Form::Json, text(&g).as_bytes(), &k.bob).unwrap().load().unwrap();
    assert_eq!(reread.require("/hosts/1").unwrap().expose_secret(), "c.example");
}

#[test]
fn names_values_and_contexts_are_checked() {
    let k = keys();
    let mut d = dotenv(&k);
    for bad in ["", "1A", "A-B", "A B", "É"] {
        assert!(
            matches!(d.set(bad, "x"), Err(Error::Secrets(e)) if matches!(*e, SecretsError::InvalidName { .. })),
            "{bad:?}"
        );
    }
    assert!(d.set("A", "nul\0byte").is_err());
    let mut j = json(&k);
    assert!(j.set("/lockbox", "x").is_err());
    assert!(j.set("", "x").is_err());
    assert!(j.set("no-slash", "x").is_err());
    assert!(j.set("/database/password/below", "x").is_err());
    assert!(j.set_json("/x", "{\"a\":1,\"a\":2}").is_err());
    assert!(j.set("/zw\u{200b}sp", "x").is_err());
    j.set("/hosts/-", "d.example").unwrap();
    assert_eq!(j.get("/hosts/3").unwrap().unwrap().expose_secret(), "d.example");
    // Reserved context keys; a required context entry must be supplied again.
    let reserved = EncryptionContext::new().with("lockbox.secrets.file", "x").unwrap();
    assert!(SecretsFile::create(Form::Dotenv, &Sealer::new(&k.kek), &reserved, Verify::EachProvider).is_err());
    let tenant = EncryptionContext::new().with_required("tenant", "acme").unwrap();
    let f = SecretsFile::create(Form::Dotenv, &Sealer::new(&k.kek), &tenant, Verify::EachProvider).unwrap();
    let bytes = f.to_bytes().unwrap();
    let parse = || SecretsFile::parse(Form::Dotenv, &bytes).unwrap();
    assert!(parse().unlock(&Opener::new(&k.kek), &ctx()).is_err());
    let other = EncryptionContext::new().with_required("tenant", "evil").unwrap();
    assert!(parse().unlock(&Opener::new(&k.kek), &other).is_err());
    assert!(parse().unlock(&Opener::new(&k.kek), &tenant).is_ok());
    // A file of one form is not read as the other.
    assert!(SecretsFile::parse(Form::Json, &bytes).is_err());
}

#[test]
fn update_keys_rewraps_and_leaves_every_value_alone() {
    let k = keys();
    let carol = Identity::generate().unwrap();
    let f = dotenv(&k);
    let before = text(&f);
    // Add Carol.
    let added = SecretsFile::parse(Form::Dotenv, before.as_bytes())
        .unwrap()
        .update_keys(
            &Rewrapper::new(&k.alice)
                .keep(Keep::All)
                .no_new_wraps()
                .also_wrap_with(carol.recipient()),
            &ctx(),
            Verify::EachProvider,
        )
        .unwrap();
    let after = text(&added);
    let (b, a) = (lines(&before), lines(&after));
    let changed: Vec<usize> = (0..b.len()).filter(|&i| b[i] != a[i]).collect();
    assert_eq!(
        changed,
        [b.len() - 2, b.len() - 1],
        "only the header and authenticator lines change"
    );
    assert!(reopen(Form::Dotenv, after.as_bytes(), &carol).is_ok());
    for (who, p) in k.openers() {
        assert!(reopen(Form::Dotenv, after.as_bytes(), p).is_ok(), "{who}");
    }
    // Remove Bob: he no longer opens the new file (the old one he keeps).
    let removed = SecretsFile::parse(Form::Dotenv, after.as_bytes())
        .unwrap()
        .update_keys(
            &Rewrapper::new(&k.kek).remove_entries_of(k.bob.recipient()),
            &ctx(),
            Verify::EachProvider,
        )
        .unwrap();
    let rt = text(&removed);
    assert!(matches!(
        reopen(Form::Dotenv, rt.as_bytes(), &k.bob),
        Err(Error::NoProviderCouldUnwrap { attempts: 0, .. })
    ));
    assert!(reopen(Form::Dotenv, rt.as_bytes(), &carol).is_ok());
    // The values are still byte for byte those of the first file.
    let vals = |t: &str| lines(t).into_iter().filter(|l| !l.starts_with('#')).collect::<Vec<_>>();
    assert_eq!(vals(&rt), vals(&before));
    // The same with the async rewrapper and an async-only provider.
    let a_kek = AsyncOnly::new(LocalKek::generate().unwrap());
    let af = block_on(SecretsFile::create_async(
        Form::Json,
        &AsyncSealer::new(&k.kek),
        &ctx(),
        Verify::EachProvider,
    ))
    .unwrap();
    let at = text(&af);
    let au = block_on(
        SecretsFile::parse(Form::Json, at.as_bytes())
            .unwrap()
            .update_keys_async(
                &AsyncRewrapper::new(&k.kek).also_wrap_with(&a_kek),
                &ctx(),
                Verify::EachProvider,
            ),
    )
    .unwrap();
    assert!(matches!(
        au.verification().unwrap().checks()[1].outcome(),
        CheckOutcome::Opened
    ));
    let reopened = block_on(
        SecretsFile::parse(Form::Json, &au.to_bytes().unwrap())
            .unwrap()
            .unlock_async(&AsyncOpener::new(&a_kek), &ctx()),
    );
    assert!(reopened.is_ok());
    assert!(a_kek.calls() >= 3, "wrap, verification unwrap, open");
}

#[test]
fn rotate_refuses_to_lock_anyone_out_and_reencrypts_everything() {
    let k = keys();
    for f in [dotenv(&k), json(&k)] {
        let form = f.form();
        let t = text(&f);
        let parse = || SecretsFile::parse(form, t.as_bytes()).unwrap();
        // Without the keyring in the new key set: refused, naming it.
        let without = Sealer::new(&k.kek)
            .also_wrap_with(k.alice.recipient())
            .also_wrap_with(k.bob.recipient());
        match parse().rotate(&Opener::new(&k.kek), &without, &ctx(), Verify::EachProvider) {
            Err(Error::Secrets(e)) => match *e {
                SecretsError::Uncovered(ref keys) => {
                    assert_eq!(keys.len(), 1);
                    assert_eq!(keys[0].provider_id, "lockbox.keyring");
                }
                ref other => panic!("{other}"),
            },
            other => panic!("{other:?}"),
        }
        // With every provider: a new data key, every value re-encrypted.
        let rotated = parse()
            .rotate(&Opener::new(&k.bob), &k.sealer(), &ctx(), Verify::EachProvider)
            .unwrap();
        let rt = text(&rotated);
        let (b, a) = (lines(&t), lines(&rt));
        let value_lines = |l: &[String]| {
            l.iter()
                .filter(|x| x.contains("lockbox:") && !x.contains("#lockbox:"))
                .cloned()
                .collect::<Vec<_>>()
        };
        for (x, y) in value_lines(&b).iter().zip(value_lines(&a).iter()) {
            assert_ne!(x, y, "{form:?}: a value kept its ciphertext through rotation");
        }
        assert_eq!(rotated.file_id(), f.file_id());
        for (who, p) in k.openers() {
            let o = reopen(form, rt.as_bytes(), p).unwrap_or_else(|e| panic!("{who}: {e}"));
            assert_eq!(o.load().unwrap().len(), f.load().unwrap().len());
        }
        // Rotating Bob out on purpose.
        let without_bob = Sealer::new(&k.kek)
            .also_wrap_with(&k.ring)
            .also_wrap_with(k.alice.recipient());
        let out = parse()
            .rotate_removing(
                &Opener::new(&k.kek),
                &without_bob,
                &[k.bob.recipient()],
                &ctx(),
                Verify::EachProvider,
            )
            .unwrap();
        assert!(reopen(form, &out.to_bytes().unwrap(), &k.bob).is_err());
        assert!(reopen(form, &out.to_bytes().unwrap(), &k.alice).is_ok());
        // Async rotation with an async-only provider.
        let a_kek = AsyncOnly::new(LocalKek::generate().unwrap());
        let seal = AsyncSealer::new(&k.kek)
            .also_wrap_with(&k.ring)
            .also_wrap_with(k.alice.recipient())
            .also_wrap_with(k.bob.recipient())
            .also_wrap_with(&a_kek);
        let ar =
            block_on(parse().rotate_async(&AsyncOpener::new(&k.alice), &seal, &ctx(), Verify::EachProvider)).unwrap();
        let back = block_on(
            SecretsFile::parse(form, &ar.to_bytes().unwrap())
                .unwrap()
                .unlock_async(&AsyncOpener::new(&a_kek), &ctx()),
        )
        .unwrap();
        assert_eq!(back.load().unwrap().len(), f.load().unwrap().len());
    }
}

/// Wraps like a local KEK but refuses to unwrap, as a KMS key the caller may
/// encrypt with but not decrypt with.
#[derive(Debug)]
struct EncryptOnly(LocalKek);

impl ProviderIdentity for EncryptOnly {
    fn provider_id(&self) -> &str {
        self.0.provider_id()
    }
    fn matches(&self, w: WrappedKeyRef<'_>) -> bool {
        self.0.matches(w)
    }
}

impl KeyEncryptionProvider for EncryptOnly {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.0.wrap(dek, binding)
    }
    fn unwrap(&self, _: WrappedKeyRef<'_>, _: Binding<'_>) -> Result<DataKey, ProviderError> {
        Err(ProviderError::new(ProviderErrorKind::PermissionDenied, "lockbox.local"))
    }
}

#[test]
fn verification_catches_a_provider_that_cannot_open() {
    let k = keys();
    let wrap_only = EncryptOnly(LocalKek::generate().unwrap());
    let sealer = Sealer::new(&k.kek).also_wrap_with(&wrap_only);
    match SecretsFile::create(Form::Dotenv, &sealer, &ctx(), Verify::EachProvider) {
        Err(Error::Secrets(e)) => {
            assert!(matches!(*e, SecretsError::Unverified { ref provider_id, .. } if provider_id == "lockbox.local"))
        }
        other => panic!("{other:?}"),
    }
    let f = SecretsFile::create(Form::Dotenv, &sealer, &ctx(), Verify::ReportOnly).unwrap();
    let checks = f.verification().unwrap().checks();
    assert!(matches!(checks[0].outcome(), CheckOutcome::Opened));
    assert!(matches!(checks[1].outcome(), CheckOutcome::Failed(_)));
    assert_eq!(checks[1].key_id(), Some(wrap_only.0.key_id().as_str()));
    assert!(!f.verification().unwrap().all_opened_or_cannot_unwrap());
    // update keys verifies the new wraps the same way.
    let t = f.to_bytes().unwrap();
    let r = SecretsFile::parse(Form::Dotenv, &t).unwrap().update_keys(
        &Rewrapper::new(&k.kek)
            .keep(Keep::All)
            .no_new_wraps()
            .also_wrap_with(&wrap_only),
        &ctx(),
        Verify::EachProvider,
    );
    assert!(r.is_err());
}

#[test]
fn three_way_merge_combines_edits_and_reports_conflicts() {
    let k = keys();
    for base in [dotenv(&k), json(&k)] {
        let form = base.form();
        let (a, b, c) = if form == Form::Dotenv {
            ("DATABASE_URL", "API_TOKEN", "NEW_ONE")
        } else {
            ("/database/password", "/api/token", "/new/one")
        };
        let bt = base.to_bytes().unwrap();
        let open = |t: &[u8]| reopen(form, t, &k.kek).unwrap();
        let mut ours = open(&bt);
        ours.set(a, "ours-a").unwrap();
        let mut theirs = open(&bt);
        theirs.set(b, "theirs-b").unwrap();
        theirs.set(c, "theirs-c").unwrap();
        let m = merge(&open(&bt), &ours, &theirs).unwrap();
        assert!(m.conflicts.is_empty(), "{form:?}: {:?}", m.conflicts);
        let merged = reopen(form, &m.file.to_bytes().unwrap(), &k.alice).unwrap();
        assert_eq!(merged.get(a).unwrap().unwrap().expose_secret(), "ours-a");
        assert_eq!(merged.get(b).unwrap().unwrap().expose_secret(), "theirs-b");
        assert_eq!(merged.get(c).unwrap().unwrap().expose_secret(), "theirs-c");
        // Both sides change the same value differently: a conflict, ours kept.
        let mut theirs2 = open(&bt);
        theirs2.set(a, "theirs-a").unwrap();
        let m = merge(&open(&bt), &ours, &theirs2).unwrap();
        assert_eq!(m.conflicts, [a]);
        assert_eq!(m.file.get(a).unwrap().unwrap().expose_secret(), "ours-a");
        // One side rotated: the merged file has its new key; ours' edit is
        // re-encrypted under it.
        let rotated = SecretsFile::parse(form, &bt)
            .unwrap()
            .rotate(&Opener::new(&k.kek), &k.sealer(), &ctx(), Verify::EachProvider)
            .unwrap();
        let m = merge(&open(&bt), &ours, &rotated).unwrap();
        assert!(m.conflicts.is_empty());
        assert_eq!(m.file.key_envelope(), rotated.key_envelope());
        let merged = reopen(form, &m.file.to_bytes().unwrap(), &k.bob).unwrap();
        assert_eq!(merged.get(a).unwrap().unwrap().expose_secret(), "ours-a");
        // Both sides changed the keys differently: refused.
        let rotated2 = SecretsFile::parse(form, &bt)
            .unwrap()
            .rotate(&Opener::new(&k.kek), &k.sealer(), &ctx(), Verify::EachProvider)
            .unwrap();
        assert!(
            matches!(merge(&open(&bt), &rotated2, &rotated), Err(Error::Secrets(e)) if matches!(*e, SecretsError::KeysConflict))
        );
    }
    // Dotenv: comment edits merge too.
    let base = dotenv(&k);
    let bt = text(&base);
    let ours_t = format!("# ours on top\n{bt}");
    let ours = reopen(Form::Dotenv, ours_t.as_bytes(), &k.kek).unwrap();
    let mut theirs = reopen(Form::Dotenv, bt.as_bytes(), &k.kek).unwrap();
    theirs.set("API_TOKEN", "t").unwrap();
    let m = merge(&reopen(Form::Dotenv, bt.as_bytes(), &k.kek).unwrap(), &ours, &theirs).unwrap();
    assert!(m.conflicts.is_empty());
    let mt = text(&m.file);
    assert!(mt.starts_with("# ours on top\n"));
    assert_eq!(m.file.get("API_TOKEN").unwrap().unwrap().expose_secret(), "t");
    // Every value line comes from one side byte for byte (same data key).
    let (tl, ml) = (lines(&text(&theirs)), lines(&mt));
    assert_eq!(tl[line_of(&tl, "API_TOKEN=")], ml[line_of(&ml, "API_TOKEN=")]);
    assert_eq!(tl[line_of(&tl, "TLS_KEY=")], ml[line_of(&ml, "TLS_KEY=")]);
}

#[cfg(unix)]
#[test]
fn saves_are_atomic_checked_and_hardened() {
    use std::os::unix::fs::PermissionsExt;
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.env");
    let mut f = dotenv(&k);
    f.save_new(&path).unwrap();
    assert!(f.save_new(&path).is_err(), "save_new never replaces");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let mut a = SecretsFile::read(&path)
        .unwrap()
        .unlock(&Opener::new(&k.kek), &ctx())
        .unwrap();
    let mut b = SecretsFile::read(&path)
        .unwrap()
        .unlock(&Opener::new(&k.kek), &ctx())
        .unwrap();
    a.set("API_TOKEN", "from-a").unwrap();
    a.save().unwrap();
    b.set("API_TOKEN", "from-b").unwrap();
    assert!(matches!(b.save(), Err(Error::Secrets(e)) if matches!(*e, SecretsError::Changed { .. })));
    let now = SecretsFile::read(&path)
        .unwrap()
        .unlock(&Opener::new(&k.alice), &ctx())
        .unwrap();
    assert_eq!(now.get("API_TOKEN").unwrap().unwrap().expose_secret(), "from-a");
    // A file others may write, or a link, is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(SecretsFile::read(&path), Err(Error::UnsafeFile { .. })));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("link.env");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(SecretsFile::read(&link), Err(Error::UnsafeFile { .. })));
    let mut c = SecretsFile::read(&path)
        .unwrap()
        .unlock(&Opener::new(&k.kek), &ctx())
        .unwrap();
    assert!(c.save_replacing(&link).is_err());
    c.set("API_TOKEN", "from-c").unwrap();
    c.save().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644,
        "permissions kept"
    );
    // JSON by file name.
    let jpath = dir.path().join("app.json");
    json(&k).save_new(&jpath).unwrap();
    assert_eq!(SecretsFile::read(&jpath).unwrap().form(), Form::Json);
}

/// Set in the child: the secrets file to rotate over and over, and the KEK.
const CHILD_FILE: &str = "LOCKBOX_TEST_SECRETS_CRASH_FILE";
const CHILD_KEK: &str = "LOCKBOX_TEST_SECRETS_CRASH_KEK_FILE";

/// The child: rotates the file and saves it, forever (until killed).
#[test]
fn crash_child() {
    let (Ok(path), Ok(kek)) = (std::env::var(CHILD_FILE), std::env::var(CHILD_KEK)) else {
        return;
    };
    let kek = LocalKek::from_file(kek).unwrap();
    loop {
        let mut f = SecretsFile::read(&path)
            .unwrap()
            .rotate(&Opener::new(&kek), &Sealer::new(&kek), &ctx(), Verify::EachProvider)
            .unwrap();
        f.save().unwrap();
    }
}

#[cfg(unix)]
#[test]
fn a_rotation_killed_mid_save_never_loses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let kek = LocalKek::generate().unwrap();
    let kek_path = dir.path().join("kek");
    kek.write_new_file(&kek_path).unwrap();
    let path = dir.path().join("app.env");
    let mut f = SecretsFile::create(Form::Dotenv, &Sealer::new(&kek), &ctx(), Verify::EachProvider).unwrap();
    for i in 0..50 {
        f.set(&format!("VALUE_{i}"), &format!("secret number {i}")).unwrap();
    }
    f.save_new(&path).unwrap();
    let mut rotations_seen = 0usize;
    let mut last_id = Vec::new();
    for round in 0..12u64 {
        let mut child = child::test_binary("crash_child")
            .env(CHILD_FILE, &path)
            .env(CHILD_KEK, &kek_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever moment the kill hit, the file is a whole old or new one.
        let opened = SecretsFile::read(&path)
            .unwrap()
            .unlock(&Opener::new(&kek), &ctx())
            .unwrap();
        let s = opened.load().unwrap();
        assert_eq!(s.len(), 50);
        for i in 0..50 {
            assert_eq!(
                s.require(&format!("VALUE_{i}")).unwrap().expose_secret(),
                format!("secret number {i}")
            );
        }
        if opened.key_envelope() != last_id.as_slice() {
            rotations_seen += 1;
            last_id = opened.key_envelope().to_vec();
        }
    }
    assert!(
        rotations_seen >= 6,
        "the child rotated the file between kills ({rotations_seen})"
    );
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
        .count();
    println!("12 kills, {rotations_seen} distinct key envelopes seen, {leftovers} temporary file(s) left behind");
}
