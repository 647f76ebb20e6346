//! Before/after in one interleaved run: for each case, rounds alternate a
//! batch of the before build and a batch of the after build (the order
//! flipping every round), so a change in machine load hits both alike. Each
//! round gives one after/before time ratio; the median and the range over
//! the rounds are printed as a markdown table.
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other
//! processes on a shared machine do not inflate a batch (they still share
//! caches and memory bandwidth: prefer a quiet machine for final figures).
//!
//! `interleaved [filter] [rounds] [batch_ms]` (defaults: all cases, 15, 20).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::as_conversions,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use lockbox_before_after::{Op, cases};

/// This thread's CPU time in nanoseconds: time the scheduler gave another
/// process (the machine is shared) is not counted. `LOCKBOX_WALL=1` uses
/// the wall clock instead.
fn now() -> f64 {
    if std::env::var_os("LOCKBOX_WALL").is_some() {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        return START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as f64;
    }
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec; this clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Nanoseconds per call over `iters` calls.
fn time(op: &mut Op, iters: u64) -> f64 {
    let t = now();
    for _ in 0..iters {
        op();
    }
    (now() - t) / iters as f64
}

/// Calls per batch so that one batch lasts about `ms` milliseconds.
fn calibrate(op: &mut Op, ms: f64) -> u64 {
    let mut n = 1u64;
    loop {
        let per = time(op, n);
        if per * n as f64 > 2e6 || n > 1 << 24 {
            return ((ms * 1e6 / per) as u64).max(1);
        }
        n *= 4;
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let filter = args.get(1).map_or("", String::as_str);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(15);
    let batch_ms: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20.0);
    println!("| case | before | after | after/before time (median) | range over {rounds} rounds |");
    println!("|---|---|---|---|---|");
    for mut c in cases(filter) {
        // Warm both, then one batch size for both (from the slower).
        let nb = calibrate(&mut c.before, batch_ms);
        let na = calibrate(&mut c.after, batch_ms);
        let n = nb.min(na);
        let (mut tb, mut ta, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            let (b, a) = if r % 2 == 0 {
                let b = time(&mut c.before, n);
                (b, time(&mut c.after, n))
            } else {
                let a = time(&mut c.after, n);
                (time(&mut c.before, n), a)
            };
            tb.push(b);
            ta.push(a);
            ratio.push(a / b);
        }
        let (lo, hi) = ratio
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        println!(
            "| {} | {} | {} | {:.3}x | {:.3}-{:.3} |",
            c.name,
            fmt_ns(median(&mut tb)),
            fmt_ns(median(&mut ta)),
            median(&mut ratio),
            lo,
            hi
        );
    }
}
