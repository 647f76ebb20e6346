//! Allocation counts of the hot path (issue 5's targets): one allocation per
//! one-shot seal or open (the output), none when the caller supplies a buffer
//! with the capacity. A counting global allocator, per thread, so the test
//! harness's own threads do not disturb the counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lockbox::{EncryptionContext, LocalKek, Opener, Sealer, Suite};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// `GlobalAlloc` is an unsafe trait: this crate exists so that lockbox's own
// targets can keep forbidding unsafe code. It only forwards to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

fn context() -> EncryptionContext {
    EncryptionContext::new()
        .with("tenant", "acme")
        .unwrap()
        .with_required("record", "42")
        .unwrap()
}

#[test]
fn one_shot_seal_and_open_allocate_only_their_output() {
    let kek = LocalKek::generate().unwrap();
    let ctx = context();
    for suite in Suite::ALL {
        let sealer = Sealer::new(&kek).suite(suite);
        let opener = Opener::new(&kek);
        for len in [0usize, 32, 1024, 70_000] {
            let pt = vec![7u8; len];
            let (n, env) = count(|| sealer.seal(&pt, &ctx).unwrap());
            assert_eq!(n, 1, "seal of {len} B ({suite:?}) allocated {n} times");
            let (n, back) = count(|| opener.open(&env, &ctx).unwrap());
            assert_eq!(back, pt);
            let expected = usize::from(len > 0);
            assert_eq!(n, expected, "open of {len} B ({suite:?}) allocated {n} times");
        }
    }
}

#[test]
fn caller_buffers_with_capacity_mean_no_allocation() {
    let kek = LocalKek::generate().unwrap();
    let ctx = context();
    let sealer = Sealer::new(&kek);
    let opener = Opener::new(&kek);
    let pt = vec![3u8; 1000];
    let mut env = Vec::with_capacity(4096);
    let (n, ()) = count(|| sealer.seal_to(&pt, &ctx, &mut env).unwrap());
    assert_eq!(n, 0, "seal_to allocated {n} times");
    let mut out = Vec::with_capacity(4096);
    let (n, ()) = count(|| opener.open_to(&env, &ctx, &mut out).unwrap());
    assert_eq!(n, 0, "open_to allocated {n} times");
    assert_eq!(out, pt);

    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(&pt);
    let (n, ()) = count(|| sealer.seal_in_place(&mut buf, &ctx).unwrap());
    assert_eq!(n, 0, "seal_in_place allocated {n} times");
    let (n, ()) = count(|| opener.open_in_place(&mut buf, &ctx).unwrap());
    assert_eq!(n, 0, "open_in_place allocated {n} times");
    assert_eq!(buf, pt);
}

#[test]
fn caller_slices_mean_no_allocation_at_all() {
    // `seal_into` / `open_into` write into the caller's `&mut [u8]`: no
    // allocation whatever the size (the providers here allocate nothing).
    let kek = LocalKek::generate().unwrap();
    let ctx = context();
    for suite in Suite::ALL {
        let sealer = Sealer::new(&kek).suite(suite);
        let opener = Opener::new(&kek);
        for len in [0usize, 32, 1024, 70_000] {
            let pt = vec![5u8; len];
            let mut env = vec![0u8; len + 4096];
            let (n, sealed) = count(|| sealer.seal_into(&pt, &ctx, &mut env).unwrap());
            assert_eq!(n, 0, "seal_into of {len} B ({suite:?}) allocated {n} times");
            let mut out = vec![0u8; len];
            let (n, opened) = count(|| opener.open_into(&env[..sealed], &ctx, &mut out).unwrap());
            assert_eq!(n, 0, "open_into of {len} B ({suite:?}) allocated {n} times");
            assert_eq!(&out[..opened], &pt[..]);
        }
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test itself: a counter that never counts would pass above.
    let (n, v) = count(|| vec![1u8; 10]);
    assert_eq!(n, 1);
    drop(v);
}
