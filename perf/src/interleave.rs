//! The interleaving harness of the `small` and `large` bins: each round
//! times a batch of every operation (thread CPU time), the order flipping
//! each round, and the table gives the median time and the median and range
//! of the per-round ratios against the first row.

use std::string::String;
use std::vec::Vec;

/// One timed operation.
pub type Op = Box<dyn FnMut()>;

/// How a row's per-round ratio is formed against the first row's time.
#[derive(Clone, Copy)]
pub enum Ratio {
    /// `time / first row's time` (lower is faster).
    TimeOverFirst,
    /// `first row's time / time` (the first row a reference such as the raw
    /// AEAD; 1.00 = as fast as it).
    FirstOverTime,
}

fn now() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

fn time(op: &mut Op, n: u64) -> f64 {
    let t = now();
    for _ in 0..n {
        op();
    }
    (now() - t) / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn format_time(ns: f64) -> String {
    if ns >= 1e4 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Runs `rounds` rounds of batches of about `ms` milliseconds each (sized
/// from the first operation) and prints a markdown table headed `title`.
pub fn run(title: &str, first_column: &str, mut ops: Vec<(&str, Op)>, ratio: Ratio, rounds: usize, ms: f64) {
    let n = {
        let per = time(&mut ops[0].1, 2000);
        ((ms * 1e6 / per) as u64).max(10)
    };
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    for r in 0..rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..ops.len()).collect()
        } else {
            (0..ops.len()).rev().collect()
        };
        for i in order {
            t[i].push(time(&mut ops[i].1, n));
        }
    }
    let heading = match ratio {
        Ratio::TimeOverFirst => "time / first row (median)",
        Ratio::FirstOverTime => "first row's time / time (median)",
    };
    println!("\n{title}\n\n| {first_column} | median time | {heading} | range |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in ops.iter().enumerate() {
        let mut ratios: Vec<f64> = t[i]
            .iter()
            .zip(&t[0])
            .map(|(a, b)| match ratio {
                Ratio::TimeOverFirst => a / b,
                Ratio::FirstOverTime => b / a,
            })
            .collect();
        let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        let m = median(&mut t[i].clone());
        println!(
            "| {name} | {} | {:.3}x | {lo:.3}-{hi:.3} |",
            format_time(m),
            median(&mut ratios)
        );
    }
}
