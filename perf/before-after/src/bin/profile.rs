//! Callgrind driver: runs one case of one build `iters` times inside
//! `measured`, so `--toggle-collect` counts only the measured calls:
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect=profile::measured \
//!     target/release/profile seal/awslc/32 after 1000
//! ```
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use lockbox_before_after::{Op, before, lockbox};

#[inline(never)]
fn measured(op: &mut Op, iters: u64) {
    for _ in 0..iters {
        op();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).expect("case: op/backend/size");
    let which = args.get(2).map_or("after", String::as_str);
    let iters: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut parts = case.split('/');
    let (op, be, size) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let mut f = match which {
        "before" => before::op(op, be, size),
        "after" => lockbox::op(op, be, size),
        other => panic!("before or after, not {other}"),
    };
    // One call outside the measured loop (lazy initialisation, CPU feature detection).
    f();
    measured(&mut f, iters);
}
