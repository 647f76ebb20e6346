//! The same cases built against two builds of lockbox (`before`: a pinned
//! earlier commit; `lockbox`: this tree), for the interleaved timer
//! (`src/bin/interleaved.rs`) and the callgrind driver (`src/bin/profile.rs`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

/// One measured operation: runs once per call.
pub type Op = Box<dyn FnMut()>;

/// A case: its name and the operation on each build.
pub struct Case {
    pub name: String,
    pub before: Op,
    pub after: Op,
}

/// The payload sizes of the table.
pub const SIZES: [usize; 4] = [32, 1024, 64 * 1024, 1 << 20];

/// Builds the operations of one build. `$into_seal` / `$into_open` build the
/// "caller buffer" operation (the two builds differ there: before had only
/// `seal_to` / `open_to` into a reused `Vec`).
macro_rules! build {
    ($k:ident, $into_seal:expr, $into_open:expr) => {
        pub mod $k {
            use super::*;
            use ::$k::KeyId;
            use ::$k::cache::{CachingProvider, DataKeyCache};
            use ::$k::keyring::{Keyring, UnixTime};
            use ::$k::{Backend, EncryptionContext, LocalKek, Opener, Sealer};

            pub fn ctx() -> EncryptionContext {
                EncryptionContext::new()
                    .with("purpose", "bench")
                    .unwrap()
                    .with_required("tenant", "acme")
                    .unwrap()
            }

            fn backend(name: &str) -> Backend {
                match name {
                    "awslc" => Backend::AwsLc,
                    _ => Backend::RustCrypto,
                }
            }

            /// The operation named `op` (seal, open, seal-into, open-into,
            /// seal-in-place, open-in-place, seal-keyring, open-keyring,
            /// seal-cached, open-cached) on `backend` for `size` bytes.
            pub fn op(op: &str, backend_name: &str, size: usize) -> Op {
                let be = backend(backend_name);
                let ctx = ctx();
                let pt = vec![0x5au8; size];
                // Providers live for the whole run (leaked: a bench binary).
                let kek: &'static LocalKek = Box::leak(Box::new(LocalKek::generate().unwrap()));
                let sealer = Sealer::new(kek).backend(be);
                let opener = Opener::new(kek).backend(be);
                match op {
                    "seal" => Box::new(move || {
                        black_box(sealer.seal(black_box(&pt), &ctx).unwrap());
                    }),
                    "open" => {
                        let env = sealer.seal(&pt, &ctx).unwrap();
                        Box::new(move || {
                            black_box(opener.open(black_box(&env), &ctx).unwrap());
                        })
                    }
                    "seal-into" => {
                        let f = $into_seal;
                        f(sealer, pt, ctx)
                    }
                    "open-into" => {
                        let env = sealer.seal(&pt, &ctx).unwrap();
                        let f = $into_open;
                        f(opener, env, ctx, size)
                    }
                    "seal-to" => {
                        let mut out = Vec::with_capacity(size + 4096);
                        Box::new(move || {
                            out.clear();
                            sealer.seal_to(black_box(&pt), &ctx, &mut out).unwrap();
                            black_box(out.len());
                        })
                    }
                    "seal-in-place" => {
                        // Re-seals the first `size` bytes each time (the
                        // previous envelope's prefix): no copy in the loop.
                        let mut buf = Vec::with_capacity(size + 4096);
                        buf.extend_from_slice(&pt);
                        Box::new(move || {
                            buf.truncate(size);
                            sealer.seal_in_place(black_box(&mut buf), &ctx).unwrap();
                            black_box(buf.len());
                        })
                    }
                    "open-in-place" => {
                        // Copies the envelope in each time (a memcpy of the
                        // envelope, the same in both builds).
                        let env = sealer.seal(&pt, &ctx).unwrap();
                        let mut buf = Vec::with_capacity(env.len());
                        Box::new(move || {
                            buf.clear();
                            buf.extend_from_slice(&env);
                            opener.open_in_place(black_box(&mut buf), &ctx).unwrap();
                            black_box(buf.len());
                        })
                    }
                    "seal-keyring" | "open-keyring" => {
                        let ring: &'static Keyring = Box::leak(Box::new(
                            Keyring::generate(KeyId::new("bench").unwrap(), UnixTime(0)).unwrap(),
                        ));
                        let sealer = Sealer::new(ring).backend(be);
                        let opener = Opener::new(ring).backend(be);
                        if op == "seal-keyring" {
                            Box::new(move || {
                                black_box(sealer.seal(black_box(&pt), &ctx).unwrap());
                            })
                        } else {
                            let env = sealer.seal(&pt, &ctx).unwrap();
                            Box::new(move || {
                                black_box(opener.open(black_box(&env), &ctx).unwrap());
                            })
                        }
                    }
                    "seal-cached" | "open-cached" => {
                        let store: &'static DataKeyCache = Box::leak(Box::new(DataKeyCache::new(1024).unwrap()));
                        let cached =
                            CachingProvider::builder(LocalKek::generate().unwrap(), store, Duration::from_secs(3600))
                                .max_messages(u64::MAX / 2)
                                .build()
                                .unwrap();
                        let cached: &'static CachingProvider<LocalKek> = Box::leak(Box::new(cached));
                        let sealer = Sealer::new(cached).backend(be);
                        let opener = Opener::new(cached).backend(be);
                        let env = sealer.seal(&pt, &ctx).unwrap();
                        if op == "seal-cached" {
                            Box::new(move || {
                                black_box(sealer.seal(black_box(&pt), &ctx).unwrap());
                            })
                        } else {
                            Box::new(move || {
                                black_box(opener.open(black_box(&env), &ctx).unwrap());
                            })
                        }
                    }
                    other => panic!("unknown op {other}"),
                }
            }
        }
    };
}

build!(
    before,
    |sealer: Sealer<'static>, pt: Vec<u8>, ctx: EncryptionContext| -> Op {
        let mut out = Vec::with_capacity(pt.len() + 4096);
        Box::new(move || {
            out.clear();
            sealer.seal_to(black_box(&pt), &ctx, &mut out).unwrap();
            black_box(out.len());
        })
    },
    |opener: Opener<'static>, env: Vec<u8>, ctx: EncryptionContext, size: usize| -> Op {
        let mut out = Vec::with_capacity(size);
        Box::new(move || {
            out.clear();
            opener.open_to(black_box(&env), &ctx, &mut out).unwrap();
            black_box(out.len());
        })
    }
);

build!(
    lockbox,
    |sealer: Sealer<'static>, pt: Vec<u8>, ctx: EncryptionContext| -> Op {
        let mut out = vec![0u8; pt.len() + 4096];
        Box::new(move || {
            let n = sealer.seal_into(black_box(&pt), &ctx, &mut out).unwrap();
            black_box(n);
        })
    },
    |opener: Opener<'static>, env: Vec<u8>, ctx: EncryptionContext, size: usize| -> Op {
        let mut out = vec![0u8; size];
        Box::new(move || {
            let n = opener.open_into(black_box(&env), &ctx, &mut out).unwrap();
            black_box(n);
        })
    }
);

/// Every case of the table: one-shot, caller buffer, `seal_to`, in place,
/// at every size on both backends; keyring and cache at 32 B.
pub fn cases(filter: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let mut push = |op: &str, be: &str, size: usize| {
        let name = format!("{op}/{be}/{size}");
        if name.contains(filter) {
            out.push(Case {
                before: before::op(op, be, size),
                after: lockbox::op(op, be, size),
                name,
            });
        }
    };
    for be in ["rustcrypto", "awslc"] {
        for op in [
            "seal",
            "open",
            "seal-into",
            "open-into",
            "seal-to",
            "seal-in-place",
            "open-in-place",
        ] {
            for size in SIZES {
                push(op, be, size);
            }
        }
        for op in ["seal-keyring", "open-keyring", "seal-cached", "open-cached"] {
            push(op, be, 32);
        }
    }
    out
}
