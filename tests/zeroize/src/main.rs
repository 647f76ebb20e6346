//! Zeroization check for lockbox.
//!
//! A scanning global allocator wraps the system allocator. Every heap block is
//! zero-filled when it is allocated, and every block that is given back (on
//! `dealloc`, and the old block on `realloc`) is searched, before it goes back
//! to the system allocator, for a set of registered secret patterns: key bytes
//! drawn from a fixed seed, their base64 text, fragments of a plaintext. A hit
//! means the program freed memory that still held the secret, so the secret
//! lingers in the process heap until that memory happens to be reused.
//!
//! Scenarios (each prints `PASS` or `FAIL`; the exit code is non-zero if any
//! failed; the last line is `N passed, M failed`):
//!
//! - a: local KEKs: built from bytes, used, dropped; exported as base64; loaded
//!   from a key file; written to a key file; loaded from the environment.
//! - b: data keys: a `DataKey` dropped; the DEK of an envelope (drawn from a
//!   deterministic RNG, so it is a known pattern) after sealing and opening,
//!   through the sync and the async entry points.
//! - c: scanner self-checks: a plain `Vec` holding a pattern, freed without
//!   zeroizing (and one moved by `realloc`), must be reported. If they are
//!   not, every other result is meaningless, and the run fails.
//! - d: failed opens hand back no plaintext: `open_to`, `open_in_place`
//!   (with and without spare capacity, where the AWS-LC path keeps its
//!   scratch) and `open` on an envelope whose last segment was tampered with. A control run
//!   shows that the plaintext *is* found when it is left in a buffer.
//! - e: `seal_in_place` growing a full buffer leaves no plaintext behind.
//! - f: rewrap and re-encrypt leave no data key and no plaintext behind.
//! - g: keyrings: a destroyed version's key is zeroized when it is destroyed;
//!   saving, loading, using and dropping a keyring frees no version key.
//! - g3: a keyring sealed, saved, loaded and used under an async-only master
//!   (its futures really suspended) frees no version key.
//! - i: recipients and passphrases: X25519 and X-Wing identities (from
//!   bytes, from and to their strings, files, sealed files and the
//!   environment) leave no secret key bytes and no identity text behind, nor
//!   the data keys they unwrap; a passphrase leaves neither its text nor the
//!   Argon2id key derived from it (recomputed here to be looked for).
//! - h: the data-key cache: evicted, cleared and dropped entries leave no
//!   data key behind, through the sync `CachingProvider` (h1) and through
//!   `AsyncCachingProvider` over an async-only provider whose futures really
//!   suspend (h2), including a key the cache draws itself and holds across
//!   the wrap's `.await`.
//! - i1: grant and audit layers (`AsyncLayered`) and an `OpenOnly` handle over
//!   an async-only provider hand data keys through without a copy left.
//!
//! # Limits
//!
//! - Only heap blocks obtained through Rust's global allocator are scanned.
//!   Stack copies (moved values, temporaries, spilled registers), CPU registers
//!   and memory allocated by C code (libc, the environment block) are not.
//! - A block is scanned when it is freed. Blocks still live when a scenario
//!   ends (leaked with `mem::forget`, kept in a static) are not seen; each
//!   scenario drops everything it created before it is judged.
//! - `realloc` always moves here (allocate, copy, scan and free the old
//!   block), so a secret in a buffer that grows is reported even when the
//!   system allocator would have grown it in place. That is deliberate: the
//!   caller cannot rely on growth in place.
//! - The OS may have swapped pages out or written them to a core dump or
//!   hibernation image while the secret was live; preventing that (mlock,
//!   `MADV_DONTDUMP`) is out of scope, and so are copies made by the kernel
//!   (page cache of a key file) or by hardware.
//! - A derived form of a key (an AES key schedule, a GHASH key) is caught only
//!   where it contains the raw bytes. With AES-NI the first two AES-256 round
//!   keys are the key itself, so a key schedule that is not zeroized would be
//!   reported; with the portable (bitsliced) AES it would not.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::task::Poll;

use lockbox::keyring::{Keyring, RotationPolicy, UnixTime};
use lockbox::passphrase::Passphrase;
use lockbox::recipient::{Identity, Recipient, RecipientKind};
use lockbox::rand_core::{TryCryptoRng, TryRng};
use lockbox::secrecy::{ExposeSecret, SecretBox, SecretString};
use lockbox::{
    AsyncKeyEncryptionProvider, AsyncOpener, AsyncSealer, Binding, BindingBuf, BoxFuture, DataKey, DataKeyRequest,
    EncryptionContext, Error, KeyEncryptionProvider, KeyId, KeyVersion, LocalKek, Opener, ProviderError,
    ProviderIdentity, Reencryptor, Rewrapper, Sealer, SegmentSize, WrappedKey, WrappedKeyRef, hazmat,
};

// ---------------------------------------------------------------------------
// The scanning allocator
// ---------------------------------------------------------------------------

const MAX_PATTERNS: usize = 32;
const MAX_PATTERN_LEN: usize = 64;

/// One registered pattern and what the scanner saw of it. Only atomics and
/// fixed arrays: the allocator must not allocate.
struct Slot {
    /// Pattern length; 0 means the slot is free.
    len: AtomicUsize,
    bytes: [AtomicU8; MAX_PATTERN_LEN],
    /// Freed blocks (dealloc) that contained the pattern.
    freed_hits: AtomicUsize,
    /// Old blocks of a realloc that contained the pattern.
    realloc_hits: AtomicUsize,
    /// Size of the last block with a hit, and the pattern's offset in it.
    last_size: AtomicUsize,
    last_offset: AtomicUsize,
}

impl Slot {
    const fn new() -> Self {
        Self {
            len: AtomicUsize::new(0),
            bytes: [const { AtomicU8::new(0) }; MAX_PATTERN_LEN],
            freed_hits: AtomicUsize::new(0),
            realloc_hits: AtomicUsize::new(0),
            last_size: AtomicUsize::new(0),
            last_offset: AtomicUsize::new(0),
        }
    }
}

static SLOTS: [Slot; MAX_PATTERNS] = [const { Slot::new() }; MAX_PATTERNS];
/// Blocks scanned so far (a sanity counter: it must grow).
static SCANNED: AtomicUsize = AtomicUsize::new(0);
/// Print a backtrace at each hit (`ZEROIZE_BACKTRACE=1`), to find the
/// allocation that held the copy.
static BACKTRACE_ON_HIT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while a hit's backtrace is printed (which allocates), so that the
    /// printing cannot recurse into another backtrace.
    static IN_REPORT: Cell<bool> = const { Cell::new(false) };
}

#[derive(Clone, Copy)]
enum Via {
    Dealloc,
    Realloc,
}

/// Searches `block` for every registered pattern and records hits.
fn scan(block: &[u8], via: Via) {
    SCANNED.fetch_add(1, Ordering::Relaxed);
    for (index, slot) in SLOTS.iter().enumerate() {
        let len = slot.len.load(Ordering::Acquire);
        if len == 0 || len > block.len() {
            continue;
        }
        let mut pat = [0u8; MAX_PATTERN_LEN];
        for (d, s) in pat.iter_mut().zip(&slot.bytes).take(len) {
            *d = s.load(Ordering::Relaxed);
        }
        let pat = &pat[..len];
        let Some(offset) = block.windows(len).position(|w| w == pat) else {
            continue;
        };
        match via {
            Via::Dealloc => slot.freed_hits.fetch_add(1, Ordering::Relaxed),
            Via::Realloc => slot.realloc_hits.fetch_add(1, Ordering::Relaxed),
        };
        slot.last_size.store(block.len(), Ordering::Relaxed);
        slot.last_offset.store(offset, Ordering::Relaxed);
        if BACKTRACE_ON_HIT.load(Ordering::Relaxed) {
            report_hit(index, block.len(), offset, via);
        }
    }
}

/// Diagnostic only: prints where the block holding a pattern is freed.
#[cold]
#[inline(never)]
fn report_hit(index: usize, size: usize, offset: usize, via: Via) {
    if IN_REPORT.with(|r| r.replace(true)) {
        return;
    }
    let via = match via {
        Via::Dealloc => "dealloc",
        Via::Realloc => "realloc (old block)",
    };
    let bt = std::backtrace::Backtrace::force_capture();
    let _ = writeln!(
        std::io::stderr(),
        "[scanner] pattern #{index} found at offset {offset} of a {size}-byte block freed by {via}:\n{bt}"
    );
    IN_REPORT.with(|r| r.set(false));
}

struct ScanningAllocator;

// SAFETY: every method forwards to `System` with the caller's layout (or, in
// `realloc`, a layout of the same alignment and the requested size, which the
// `GlobalAlloc` contract guarantees is valid), so the blocks handed out are
// exactly the system allocator's. The only additions are a zero-fill of new
// blocks and a read-only scan of a block before it is returned to `System`.
unsafe impl GlobalAlloc for ScanningAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zero-filled so that every byte of every block is initialized when
        // the scan reads it, and so that a secret left in memory by an earlier
        // block is not reported again against a later one.
        // SAFETY: forwarded with the caller's (non-zero-size) layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live block of `layout.size()` bytes from this
        // allocator, zero-filled at allocation and written only through Rust
        // code since, so every byte is initialized; it is freed only after
        // the shared borrow ends.
        scan(unsafe { std::slice::from_raw_parts(ptr, layout.size()) }, Via::Dealloc);
        // SAFETY: the block came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, scanning the old block as it is freed (see "Limits").
        // SAFETY: the caller guarantees `new_size`, rounded up to
        // `layout.align()`, does not overflow `isize`, and it is non-zero.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded to our own `alloc` with a valid layout.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block is released here, as `realloc` must.
            unsafe { self.dealloc_via_realloc(ptr, layout) };
        }
        new
    }
}

impl ScanningAllocator {
    /// `dealloc`, but records hits as realloc hits.
    ///
    /// # Safety
    ///
    /// As `GlobalAlloc::dealloc`.
    unsafe fn dealloc_via_realloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `dealloc`.
        scan(unsafe { std::slice::from_raw_parts(ptr, layout.size()) }, Via::Realloc);
        // SAFETY: the block came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: ScanningAllocator = ScanningAllocator;

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------

/// A registered pattern (index into `SLOTS`).
#[derive(Clone, Copy)]
struct Pattern(usize);

/// What the scanner saw of one pattern.
struct Hits {
    freed: usize,
    realloc: usize,
    last_size: usize,
    last_offset: usize,
}

impl Hits {
    fn total(&self) -> usize {
        self.freed.saturating_add(self.realloc)
    }
}

impl fmt::Display for Hits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} freed block(s), {} realloc'd block(s); last: offset {} of a {}-byte block",
            self.freed, self.realloc, self.last_offset, self.last_size
        )
    }
}

/// Registers `bytes` (copied into the static slots, not the heap).
fn register(bytes: &[u8]) -> Pattern {
    assert!(!bytes.is_empty() && bytes.len() <= MAX_PATTERN_LEN, "pattern length");
    for (index, slot) in SLOTS.iter().enumerate() {
        if slot.len.load(Ordering::Acquire) != 0 {
            continue;
        }
        for (d, s) in slot.bytes.iter().zip(bytes) {
            d.store(*s, Ordering::Relaxed);
        }
        slot.freed_hits.store(0, Ordering::Relaxed);
        slot.realloc_hits.store(0, Ordering::Relaxed);
        slot.len.store(bytes.len(), Ordering::Release);
        return Pattern(index);
    }
    panic!("too many patterns registered");
}

fn hits(p: Pattern) -> Hits {
    let slot = &SLOTS[p.0];
    Hits {
        freed: slot.freed_hits.load(Ordering::Relaxed),
        realloc: slot.realloc_hits.load(Ordering::Relaxed),
        last_size: slot.last_size.load(Ordering::Relaxed),
        last_offset: slot.last_offset.load(Ordering::Relaxed),
    }
}

/// Whether `bytes` equal registered pattern `p` (read from the slot).
fn pattern_is(p: Pattern, bytes: &[u8]) -> bool {
    let slot = &SLOTS[p.0];
    slot.len.load(Ordering::Acquire) == bytes.len()
        && slot
            .bytes
            .iter()
            .zip(bytes)
            .all(|(a, b)| a.load(Ordering::Relaxed) == *b)
}

/// Unregisters every pattern (between scenarios).
fn clear_patterns() {
    for slot in &SLOTS {
        slot.len.store(0, Ordering::Release);
        for b in &slot.bytes {
            b.store(0, Ordering::Relaxed);
        }
    }
}

/// `Err` naming `what` if any freed block held `p`.
fn expect_clean(what: &str, p: Pattern) -> Result<(), String> {
    let h = hits(p);
    if h.total() == 0 {
        Ok(())
    } else {
        Err(format!("{what} found in freed heap memory: {h}"))
    }
}

/// SplitMix64 output from `seed`: bytes no program writes by accident.
fn pattern<const N: usize>(seed: u64) -> [u8; N] {
    let mut state = seed;
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    out
}

/// Standard padded base64 of a 32-byte key (44 characters), on the stack.
fn base64_key(key: &[u8; 32]) -> [u8; 44] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = [b'='; 44];
    for (chunk, dst) in key.chunks(3).zip(out.chunks_mut(4)) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| ALPHABET[usize::try_from((n >> shift) & 63).unwrap_or(0)];
        dst[0] = sextet(18);
        dst[1] = sextet(12);
        if chunk.len() > 1 {
            dst[2] = sextet(6);
        }
        if chunk.len() > 2 {
            dst[3] = sextet(0);
        }
    }
    out
}

/// A local KEK from a pattern. Takes a reference and copies it in its own
/// frame: a by-value array would be copied into a temporary in the caller's
/// frame, and once that temporary is dead its slot may be reused for a future
/// that is later boxed, carrying the stale key bytes into the heap (a false
/// hit in scenarios that box futures).
#[inline(never)]
fn kek_from(bytes: &[u8; 32]) -> LocalKek {
    hazmat::local_kek_from_bytes(SecretBox::new(Box::new(*bytes)))
}

fn ctx() -> Result<EncryptionContext, String> {
    EncryptionContext::new()
        .with("purpose", "zeroize-check")
        .and_then(|c| c.with_required("tenant", "acme"))
        .map_err(|e| format!("context: {e}"))
}

fn ensure(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_string()) }
}

fn lb<T>(r: Result<T, Error>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// A private, empty directory for key files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("lockbox-zeroize-{}-{tag}", std::process::id()));
        std::fs::create_dir(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `parts` to a new file with mode 0600, straight from the caller's
/// (stack) buffers.
fn write_key_file(path: &Path, parts: &[&[u8]]) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| format!("create key file: {e}"))?;
    for p in parts {
        f.write_all(p).map_err(|e| format!("write key file: {e}"))?;
    }
    Ok(())
}

/// Seal and open one message, checking the round trip.
fn round_trip(kek: &LocalKek) -> Result<(), String> {
    let ctx = ctx()?;
    let env = lb(lockbox::seal(kek, b"zeroize check message", &ctx), "seal")?;
    let pt = lb(lockbox::open(kek, &env, &ctx), "open")?;
    ensure(pt == b"zeroize check message", "round trip returned other bytes")
}

// ---------------------------------------------------------------------------
// A deterministic RNG and a probing provider (scenario b)
// ---------------------------------------------------------------------------

/// Yields `head` first, then SplitMix64 bytes. For this check only: a real
/// RNG must never be deterministic.
struct FixedRng {
    head: [u8; 64],
    drawn: usize,
}

impl TryRng for FixedRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            *d = match self.head.get(self.drawn) {
                Some(b) => *b,
                None => pattern::<1>(u64::try_from(self.drawn).unwrap_or(0))[0],
            };
            self.drawn = self.drawn.saturating_add(1);
        }
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}

/// A local KEK that notes whether an unwrap yielded the registered data-key
/// pattern. It holds the pattern's slot, not its bytes, so that it is no heap
/// copy of the DEK itself.
struct Probe {
    inner: LocalKek,
    expected_dek: Pattern,
    saw_expected: AtomicBool,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ProviderIdentity for Probe {
    fn provider_id(&self) -> &str {
        self.inner.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.inner.matches(wrapped)
    }
}

impl KeyEncryptionProvider for Probe {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.inner.wrap(dek, binding)
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        let dek = self.inner.unwrap(wrapped, binding)?;
        if pattern_is(self.expected_dek, dek.expose_secret()) {
            self.saw_expected.store(true, Ordering::Relaxed);
        }
        Ok(dek)
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// a1: a KEK built from bytes, used, dropped (boxed, so that the `LocalKek`
/// itself, key schedule included, is scanned when freed).
fn kek_from_bytes() -> Result<(), String> {
    let key: [u8; 32] = pattern(0xA1);
    let p = register(&key);
    {
        let kek = Box::new(kek_from(&key));
        ensure(hazmat::local_kek_bytes(&kek) == &key, "KEK does not hold the pattern")?;
        round_trip(&kek)?;
        black_box(&kek);
    }
    expect_clean("KEK bytes", p)
}

/// a2: a KEK exported with `local_kek_to_base64`, export dropped.
fn kek_base64_export() -> Result<(), String> {
    let key: [u8; 32] = pattern(0xA2);
    let text = base64_key(&key);
    let pk = register(&key);
    let pt = register(&text);
    {
        let kek = Box::new(kek_from(&key));
        let exported = hazmat::local_kek_to_base64(&kek);
        ensure(
            exported.expose_secret().as_bytes() == text,
            "export is not the registered base64 text",
        )?;
        let again = lb(hazmat::local_kek_from_base64(exported.expose_secret()), "re-import")?;
        ensure(again.key_id() == kek.key_id(), "re-imported key differs")?;
        black_box(&exported);
    }
    expect_clean("KEK base64 text", pt)?;
    expect_clean("KEK bytes", pk)
}

/// a3: a KEK loaded with `LocalKek::from_file` (base64 and a newline).
fn kek_from_file() -> Result<(), String> {
    let key: [u8; 32] = pattern(0xA3);
    let text = base64_key(&key);
    let pk = register(&key);
    let pt = register(&text);
    let dir = TempDir::new("a3")?;
    let path = dir.path().join("kek.b64");
    write_key_file(&path, &[&text, b"\n"])?;
    {
        let kek = Box::new(lb(LocalKek::from_file(&path), "from_file")?);
        ensure(hazmat::local_kek_bytes(&kek) == &key, "loaded KEK is not the pattern")?;
        round_trip(&kek)?;
        black_box(&kek);
    }
    drop(dir);
    expect_clean("KEK base64 text (key file read buffer)", pt)?;
    expect_clean("KEK bytes", pk)
}

/// a4: a KEK written with `LocalKek::write_new_file`.
fn kek_write_new_file() -> Result<(), String> {
    let key: [u8; 32] = pattern(0xA4);
    let text = base64_key(&key);
    let pk = register(&key);
    let pt = register(&text);
    let dir = TempDir::new("a4")?;
    let path = dir.path().join("kek.b64");
    {
        let kek = kek_from(&key);
        lb(kek.write_new_file(&path), "write_new_file")?;
    }
    // Read back into a stack buffer (no heap copy of our own).
    let mut back = [0u8; 64];
    let n = {
        use std::io::Read as _;
        let mut f = std::fs::File::open(&path).map_err(|e| format!("reopen: {e}"))?;
        f.read(&mut back).map_err(|e| format!("read back: {e}"))?
    };
    ensure(
        n == 45 && back[..44] == text && back[44] == b'\n',
        "file does not hold the base64 key and a newline",
    )?;
    drop(dir);
    expect_clean("KEK base64 text (write_new_file)", pt)?;
    expect_clean("KEK bytes", pk)
}

/// a5: a KEK loaded with `LocalKek::from_env`.
fn kek_from_env() -> Result<(), String> {
    const VAR: &str = "LOCKBOX_ZEROIZE_CHECK_KEK";
    let key: [u8; 32] = pattern(0xA5);
    let text = base64_key(&key);
    let pk = register(&key);
    let pt = register(&text);
    let value = std::str::from_utf8(&text).map_err(|e| format!("base64 text: {e}"))?;
    // SAFETY: this program is single-threaded, so nothing reads the
    // environment concurrently. (The C library's copy of the variable is not
    // on the Rust heap and is not scanned.)
    unsafe { std::env::set_var(VAR, value) };
    let loaded = LocalKek::from_env(VAR).map(|kek| {
        let kek = Box::new(kek);
        let same = hazmat::local_kek_bytes(&kek) == &key;
        black_box(&kek);
        same
    });
    // SAFETY: as above.
    unsafe { std::env::remove_var(VAR) };
    ensure(lb(loaded, "from_env")?, "loaded KEK is not the pattern")?;
    expect_clean("KEK base64 text (environment value)", pt)?;
    expect_clean("KEK bytes", pk)
}

/// b1: a `DataKey` from bytes, boxed and dropped.
fn data_key_dropped() -> Result<(), String> {
    let bytes: [u8; 32] = pattern(0xB1);
    let p = register(&bytes);
    {
        let dk = Box::new(hazmat::data_key_from_bytes(bytes));
        ensure(dk.expose_secret() == &bytes, "DataKey does not hold the pattern")?;
        black_box(&dk);
    }
    expect_clean("data key bytes", p)
}

/// b2: an envelope's DEK (known through a deterministic RNG) after seal and
/// open, including the unwrap by the local KEK inside `lockbox::open`.
fn envelope_dek() -> Result<(), String> {
    let dek: [u8; 32] = pattern(0xB2);
    let message_id: [u8; 32] = pattern(0xB3);
    let kek_bytes: [u8; 32] = pattern(0xB4);
    let pd = register(&dek);
    let pk = register(&kek_bytes);
    let drawn;
    {
        let probe = Box::new(Probe {
            inner: kek_from(&kek_bytes),
            expected_dek: pd,
            saw_expected: AtomicBool::new(false),
        });
        let mut head = [0u8; 64];
        head[..32].copy_from_slice(&dek);
        head[32..].copy_from_slice(&message_id);
        let mut rng = FixedRng { head, drawn: 0 };
        let ctx = ctx()?;
        let msg = b"sealed under a known data key";
        let env = lb(
            Sealer::new(&probe.inner)
                .segment_size(SegmentSize::MIN)
                .seal_with_rng(&mut rng, msg, &ctx),
            "seal_with_rng",
        )?;
        drawn = rng.drawn;
        let info = lb(lockbox::inspect(&env), "inspect")?;
        ensure(
            info.message_id() == &message_id,
            "message id is not bytes 32..64 of the RNG stream",
        )?;
        // The real path: the local KEK unwraps inside `lockbox::open`.
        let pt = lb(lockbox::open(&probe.inner, &env, &ctx), "open")?;
        ensure(pt == msg, "open returned other bytes")?;
        // Proof that the DEK is the registered pattern.
        let pt = lb(Opener::new(&*probe).open(&env, &ctx), "open via probe")?;
        ensure(pt == msg, "probe open returned other bytes")?;
        ensure(
            probe.saw_expected.load(Ordering::Relaxed),
            "the unwrapped DEK is not the registered pattern",
        )?;
        black_box(&probe);
    }
    ensure(drawn == 64, &format!("seal drew {drawn} RNG bytes, expected 64"))?;
    expect_clean("envelope DEK", pd)?;
    expect_clean("KEK bytes", pk)
}

/// A k-of-n key group: a known DEK sealed under a 2-of-3 group, opened by
/// two members (blocking and async shells): no copy of the DEK survives
/// (shares and recombination buffers included).
fn keygroup_dek() -> Result<(), String> {
    use lockbox::keygroup::{AsyncKeyGroup, KeyGroup};
    use std::sync::Arc;
    let dek: [u8; 32] = pattern(0xC1);
    let message_id: [u8; 32] = pattern(0xC2);
    let pd = register(&dek);
    {
        let keks = |picks: &[u64]| -> Vec<Arc<dyn lockbox::KeyEncryptionProvider>> {
            picks.iter().map(|i| Arc::new(kek_from(&pattern(0xC3 + i))) as Arc<dyn lockbox::KeyEncryptionProvider>).collect()
        };
        let id = lb(KeyId::new("zeroize-group"), "key id")?;
        let group = lb(KeyGroup::new(id.clone(), 2, keks(&[0, 1, 2])), "group")?;
        let mut head = [0u8; 64];
        head[..32].copy_from_slice(&dek);
        head[32..].copy_from_slice(&message_id);
        let mut rng = FixedRng { head, drawn: 0 };
        let ctx = ctx()?;
        let msg = b"sealed under a key group";
        let env = lb(Sealer::new(&group).seal_with_rng(&mut rng, msg, &ctx), "seal_with_rng")?;
        let two = lb(KeyGroup::unwrap_only(id.clone(), keks(&[0, 2])), "unwrap-only group")?;
        let pt = lb(lockbox::open(&two, &env, &ctx), "open")?;
        ensure(pt == msg, "open returned other bytes")?;
        let async_members: Vec<Arc<dyn lockbox::AsyncKeyEncryptionProvider>> = [1u64, 2]
            .iter()
            .map(|i| Arc::new(kek_from(&pattern(0xC3 + i))) as Arc<dyn lockbox::AsyncKeyEncryptionProvider>)
            .collect();
        let agroup = lb(AsyncKeyGroup::unwrap_only(id, async_members), "async group")?;
        let opener = lockbox::AsyncOpener::new(&agroup);
        let pt = lb(ready(opener.open(&env, &ctx))?, "async open")?;
        ensure(pt == msg, "async open returned other bytes")?;
        black_box(&group);
    }
    expect_clean("key-group DEK", pd)
}

/// Polls a future that must complete without waiting: lockbox's async seal
/// and open over a sync provider (whose futures are ready at once) do.
fn ready<T>(f: impl std::future::Future<Output = T>) -> Result<T, String> {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => Err("a lockbox future over a sync provider was not ready".into()),
    }
}

/// b3: as b2, through `AsyncSealer` and `AsyncOpener`; with `boxed`, their
/// futures live on the heap (as a spawned task's do), with a second provider
/// so the data key is held across several awaits.
fn envelope_dek_async(boxed: bool) -> Result<(), String> {
    let dek: [u8; 32] = pattern(0xB5);
    let message_id: [u8; 32] = pattern(0xB6);
    let kek_bytes: [u8; 32] = pattern(0xB7);
    let pd = register(&dek);
    let pk = register(&kek_bytes);
    let drawn;
    {
        let probe = Box::new(Probe {
            inner: kek_from(&kek_bytes),
            expected_dek: pd,
            saw_expected: AtomicBool::new(false),
        });
        let mut head = [0u8; 64];
        head[..32].copy_from_slice(&dek);
        head[32..].copy_from_slice(&message_id);
        let mut rng = FixedRng { head, drawn: 0 };
        let ctx = ctx()?;
        let msg = b"sealed under a known data key, asynchronously";
        let second = Box::new(kek_from(&pattern(0xB8)));
        let mut sealer = lockbox::AsyncSealer::new(&probe.inner).segment_size(SegmentSize::MIN);
        if boxed {
            sealer = sealer.also_wrap_with(&*second);
        }
        let seal = sealer.seal_with_rng(&mut rng, msg, &ctx);
        let env = if boxed { ready(Box::pin(seal))? } else { ready(seal)? };
        let env = lb(env, "async seal_with_rng")?;
        drawn = rng.drawn;
        let opener = lockbox::AsyncOpener::new(&*probe);
        let open = opener.open(&env, &ctx);
        let pt = if boxed { ready(Box::pin(open))? } else { ready(open)? };
        let pt = lb(pt, "async open")?;
        ensure(pt == msg, "async open returned other bytes")?;
        ensure(
            probe.saw_expected.load(Ordering::Relaxed),
            "the unwrapped DEK is not the registered pattern",
        )?;
        black_box(&probe);
    }
    ensure(drawn == 64, &format!("seal drew {drawn} RNG bytes, expected 64"))?;
    expect_clean("envelope DEK (async path)", pd)?;
    expect_clean("KEK bytes", pk)
}

/// f3: the async rewrap and re-encrypt paths, their futures boxed (on the
/// heap, as a spawned task's are), with two new providers so the data key is
/// held across several awaits. The first engine draft moved its plans (data
/// key inside) out of such futures; this is the scenario that shows it.
fn async_rewrap_leaves_nothing() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xA1);
    let dek: [u8; 32] = pattern(0xA2);
    let mut patterns = register_plaintext(&pt);
    patterns.push(register(&dek));
    {
        let kek = kek_from(&pattern(0xA3));
        let new = kek_from(&pattern(0xA4));
        let other = kek_from(&pattern(0xA5));
        let ctx = ctx()?;
        let mut head = [0u8; 64];
        head[..32].copy_from_slice(&dek);
        head[32..].copy_from_slice(&pattern::<32>(0xA6));
        let mut rng = FixedRng { head, drawn: 0 };
        let env = lb(
            Sealer::new(&kek)
                .segment_size(SegmentSize::MIN)
                .seal_with_rng(&mut rng, &pt, &ctx),
            "seal_with_rng",
        )?;
        let rw = lockbox::AsyncRewrapper::new(&kek)
            .wrap_with(&new)
            .also_wrap_with(&other)
            .verify_payload(true);
        let out = lb(ready(Box::pin(rw.rewrap(&env, &ctx)))?, "async rewrap")?;
        let header = lb(ready(Box::pin(rw.rewrap_header(&env, &ctx)))?, "async rewrap_header")?;
        ensure(out.len() > env.len(), "a second wrapped key was added")?;
        let re = lockbox::AsyncReencryptor::new(lockbox::AsyncOpener::new(&kek), lockbox::AsyncSealer::new(&new));
        let fresh = lb(ready(Box::pin(re.reencrypt(&env, &ctx)))?, "async reencrypt")?;
        let (_, bad) = sealed_and_tampered(&kek, &pt)?;
        let r = ready(Box::pin(rw.rewrap(&bad, &ctx)))?;
        ensure(
            matches!(r, Err(Error::Authentication)),
            &format!("async rewrap of tampered gave {r:?}"),
        )?;
        black_box((&out, &header, &fresh));
    }
    expect_no_plaintext("async rewrap", &patterns)
}

/// c1: a plain `Vec` holding a pattern, dropped without zeroizing, MUST be
/// reported.
fn self_check_dealloc() -> Result<(), String> {
    let secret: [u8; 32] = pattern(0xC1);
    let p = register(&secret);
    let scanned_before = SCANNED.load(Ordering::Relaxed);
    {
        let mut v = black_box(Vec::with_capacity(100));
        v.extend_from_slice(b"some leading bytes ");
        v.extend_from_slice(&secret);
        black_box(&v);
    }
    let h = hits(p);
    ensure(SCANNED.load(Ordering::Relaxed) > scanned_before, "no block was scanned")?;
    ensure(
        h.freed == 1 && h.last_offset == 19,
        &format!("the scanner missed a pattern left in a freed Vec ({h})"),
    )
}

/// c2: the old block of a growing `Vec` holding a pattern MUST be reported.
fn self_check_realloc() -> Result<(), String> {
    let secret: [u8; 32] = pattern(0xC2);
    let p = register(&secret);
    {
        let mut v = black_box(Vec::with_capacity(32));
        v.extend_from_slice(&secret);
        v.extend_from_slice(&[0u8; 100]); // grows: realloc
        v.fill(0); // the live copy is wiped: only the old block held it
        black_box(&v);
    }
    let h = hits(p);
    ensure(
        h.realloc == 1 && h.freed == 0,
        &format!("the scanner missed a pattern in a realloc'd block ({h})"),
    )
}

/// The plaintext of scenario d: 4 full 64-byte segments and a 20-byte one.
const PT_LEN: usize = 4 * 64 + 20;

/// Registers fragments of every segment of `pt` (two 32-byte halves of each
/// full segment, the whole short one).
fn register_plaintext(pt: &[u8; PT_LEN]) -> Vec<Pattern> {
    pt.chunks(32).map(register).collect()
}

/// `Err` if any plaintext fragment was found.
fn expect_no_plaintext(what: &str, patterns: &[Pattern]) -> Result<(), String> {
    for (i, p) in patterns.iter().enumerate() {
        expect_clean(&format!("{what}: plaintext bytes {}..", i * 32), *p)?;
    }
    Ok(())
}

/// A sealed envelope of `pt` with 64-byte segments, and a copy whose last
/// segment has one ciphertext byte flipped.
fn sealed_and_tampered(kek: &LocalKek, pt: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let ctx = ctx()?;
    let env = lb(Sealer::new(kek).segment_size(SegmentSize::MIN).seal(pt, &ctx), "seal")?;
    let info = lb(lockbox::inspect(&env), "inspect")?;
    ensure(info.segment_count() == 5, "expected 5 segments")?;
    let mut bad = env.clone();
    // The last segment is 20 ciphertext bytes then a 16-byte tag.
    let i = bad.len() - 16 - 10;
    bad[i] ^= 0x01;
    Ok((env, bad))
}

const PREFIX: &[u8] = b"PREFIX:";

/// d0 (control): a successful `open_to`, then the plaintext left in the Vec's
/// capacity (truncate without zeroizing) MUST be reported.
fn control_plaintext_detected() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xD0);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xD1));
        let (env, _) = sealed_and_tampered(&kek, &pt)?;
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(PREFIX);
        lb(Opener::new(&kek).open_to(&env, &ctx()?, &mut out), "open_to")?;
        ensure(out.get(PREFIX.len()..) == Some(&pt[..]), "open_to returned other bytes")?;
        out.truncate(PREFIX.len());
        black_box(&out);
    }
    let missed: Vec<usize> = patterns
        .iter()
        .enumerate()
        .filter(|(_, p)| hits(**p).total() == 0)
        .map(|(i, _)| i)
        .collect();
    ensure(
        missed.is_empty(),
        &format!("plaintext fragments {missed:?} left in a freed Vec were not reported"),
    )
}

/// d1: `open_to` on a tampered envelope.
fn failed_open_to() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xD2);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xD3));
        let (_, bad) = sealed_and_tampered(&kek, &pt)?;
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(PREFIX);
        let r = Opener::new(&kek).open_to(&bad, &ctx()?, &mut out);
        ensure(matches!(r, Err(Error::Authentication)), &format!("open_to gave {r:?}"))?;
        ensure(out == PREFIX, "open_to changed the Vec's contents on failure")?;
        // The plaintext had room in this very block, so earlier segments were
        // decrypted into it before the last one failed.
        ensure(out.capacity() >= PREFIX.len() + PT_LEN, "Vec was reallocated")?;
        black_box(&out);
    }
    expect_no_plaintext("open_to", &patterns)
}

/// e1: `seal_in_place` into a Vec with no spare capacity: the envelope needs
/// a bigger block, and the plaintext must not stay behind in the old one.
fn seal_in_place_growth() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xE1);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xE2));
        let mut buf = Vec::with_capacity(PT_LEN);
        buf.extend_from_slice(&pt);
        lb(
            Sealer::new(&kek)
                .segment_size(SegmentSize::MIN)
                .seal_in_place(&mut buf, &ctx()?),
            "seal_in_place",
        )?;
        ensure(buf.len() > PT_LEN, "seal_in_place did not produce an envelope")?;
        black_box(&buf);
    }
    expect_no_plaintext("seal_in_place", &patterns)
}

/// d2: `open_in_place` on a tampered envelope.
fn failed_open_in_place() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xD4);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xD5));
        let (_, bad) = sealed_and_tampered(&kek, &pt)?;
        let mut buf = bad.clone();
        let r = Opener::new(&kek).open_in_place(&mut buf, &ctx()?);
        ensure(
            matches!(r, Err(Error::Authentication)),
            &format!("open_in_place gave {r:?}"),
        )?;
        ensure(buf == bad, "open_in_place did not restore the envelope byte for byte")?;
        black_box(&buf);
    }
    expect_no_plaintext("open_in_place", &patterns)
}

/// d2b: `open_in_place` on a tampered envelope in a buffer with spare
/// capacity: on AWS-LC the segments go through a scratch in that capacity
/// (and the header is kept there), wiped before the call returns.
fn failed_open_in_place_spare() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xDA);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xDB));
        let (_, bad) = sealed_and_tampered(&kek, &pt)?;
        let mut buf = Vec::with_capacity(bad.len() + 4096);
        buf.extend_from_slice(&bad);
        let r = Opener::new(&kek).open_in_place(&mut buf, &ctx()?);
        ensure(
            matches!(r, Err(Error::Authentication)),
            &format!("open_in_place gave {r:?}"),
        )?;
        ensure(buf == bad, "open_in_place did not restore the envelope byte for byte")?;
        black_box(&buf);
    }
    expect_no_plaintext("open_in_place (spare capacity)", &patterns)
}

/// d3: `lockbox::open` on a tampered envelope.
fn failed_open() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xD6);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xD7));
        let (env, bad) = sealed_and_tampered(&kek, &pt)?;
        let ctx = ctx()?;
        let r = lockbox::open(&kek, &bad, &ctx);
        ensure(matches!(r, Err(Error::Authentication)), &format!("open gave {r:?}"))?;
        // The untampered envelope opens (the failure is the tampering).
        let good = lb(lockbox::open(&kek, &env, &ctx), "open untampered")?;
        ensure(good == pt, "untampered envelope opened to other bytes")?;
        // Wipe our own copy before it is freed: only the failed open is judged.
        let mut good = good;
        good.iter_mut().for_each(|b| *b = 0);
        black_box(&good);
    }
    expect_no_plaintext("open", &patterns)
}

/// f1: rewrap (one-shot, header only, streamed), with payload verification:
/// the DEK (a known pattern) and the plaintext decrypted into the scratch
/// buffer are left nowhere.
fn rewrap_leaves_nothing() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0x91);
    let dek: [u8; 32] = pattern(0x92);
    let mut patterns = register_plaintext(&pt);
    patterns.push(register(&dek));
    {
        let kek = kek_from(&pattern(0xF3));
        let new = kek_from(&pattern(0xF4));
        let ctx = ctx()?;
        let mut head = [0u8; 64];
        head[..32].copy_from_slice(&dek);
        head[32..].copy_from_slice(&pattern::<32>(0xF5));
        let mut rng = FixedRng { head, drawn: 0 };
        let env = lb(
            Sealer::new(&kek)
                .segment_size(SegmentSize::MIN)
                .seal_with_rng(&mut rng, &pt, &ctx),
            "seal_with_rng",
        )?;
        let rw = Rewrapper::new(&kek).wrap_with(&new).verify_payload(true);
        let out = lb(rw.rewrap(&env, &ctx), "rewrap")?;
        let header = lb(rw.rewrap_header(&env, &ctx), "rewrap_header")?;
        let mut streamed = Vec::new();
        rw.rewrap_stream(&env[..], &mut streamed, &ctx)
            .map_err(|e| format!("rewrap_stream: {e}"))?;
        ensure(
            out.len() == env.len() && streamed.len() == env.len(),
            "rewrap changed the length",
        )?;
        ensure(header.replaced_len() == header.header().len(), "header length changed")?;
        // A tampered payload fails verification after earlier segments were
        // decrypted into the scratch buffer.
        let (_, bad) = sealed_and_tampered(&kek, &pt)?;
        let r = rw.rewrap(&bad, &ctx);
        ensure(
            matches!(r, Err(Error::Authentication)),
            &format!("rewrap of tampered gave {r:?}"),
        )?;
        black_box((&out, &streamed, &header));
    }
    expect_no_plaintext("rewrap", &patterns)
}

/// f2: re-encrypt, one-shot and streamed, and a re-encrypt of a tampered
/// envelope: no plaintext left behind.
fn reencrypt_leaves_nothing() -> Result<(), String> {
    let pt: [u8; PT_LEN] = pattern(0xF6);
    let patterns = register_plaintext(&pt);
    {
        let kek = kek_from(&pattern(0xF7));
        let new = kek_from(&pattern(0xF8));
        let ctx = ctx()?;
        let (env, bad) = sealed_and_tampered(&kek, &pt)?;
        let re = Reencryptor::new(Opener::new(&kek), Sealer::new(&new).segment_size(SegmentSize::MIN));
        let out = lb(re.reencrypt(&env, &ctx), "reencrypt")?;
        let streamed = re
            .reencrypt_stream(&env[..], Vec::new(), &ctx)
            .map_err(|e| format!("reencrypt_stream: {e}"))?;
        let r = re.reencrypt(&bad, &ctx);
        ensure(
            matches!(r, Err(Error::Authentication)),
            &format!("reencrypt of tampered gave {r:?}"),
        )?;
        ensure(
            re.reencrypt_stream(&bad[..], Vec::new(), &ctx).is_err(),
            "streamed tampered re-encrypt succeeded",
        )?;
        ensure(out.len() == streamed.len(), "one-shot and streamed lengths differ")?;
        black_box((&out, &streamed));
    }
    expect_no_plaintext("reencrypt", &patterns)
}

/// A local KEK that generates data keys provider-side, each the pattern of
/// the next seed (computed on the stack: the provider holds no key bytes).
struct PatternKeys {
    kek: LocalKek,
    next_seed: AtomicUsize,
}

impl fmt::Debug for PatternKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatternKeys").finish_non_exhaustive()
    }
}

impl ProviderIdentity for PatternKeys {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(wrapped)
    }
}

impl KeyEncryptionProvider for PatternKeys {
    fn wrap(&self, dek: &DataKey, binding: Binding<'_>) -> Result<WrappedKey, ProviderError> {
        self.kek.wrap(dek, binding)
    }

    fn unwrap(&self, wrapped: WrappedKeyRef<'_>, binding: Binding<'_>) -> Result<DataKey, ProviderError> {
        self.kek.unwrap(wrapped, binding)
    }

    fn generate_data_key(
        &self,
        request: lockbox::DataKeyRequest<'_>,
    ) -> Result<Option<(DataKey, WrappedKey)>, ProviderError> {
        let binding = request.binding();
        let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
        let dek = hazmat::data_key_from_bytes(pattern(u64::try_from(seed).unwrap_or(0)));
        let wrapped = self.kek.wrap(&dek, binding)?;
        Ok(Some((dek, wrapped)))
    }
}

/// h1: the data-key cache. Known data keys are cached on the seal side, one
/// is evicted for capacity, then cached on the open side and cleared; each
/// must be gone from the heap as soon as its entry is removed, and every key
/// when the cache is dropped.
fn cache_evictions() -> Result<(), String> {
    use lockbox::cache::{CachingProvider, DataKeyCache};
    let kek_bytes: [u8; 32] = pattern(0xF0);
    let d1: [u8; 32] = pattern(0xF1);
    let d2: [u8; 32] = pattern(0xF2);
    let pk = register(&kek_bytes);
    let p1 = register(&d1);
    let p2 = register(&d2);
    let p3 = register(&pattern::<32>(0xF3));
    {
        let cache = lb(DataKeyCache::new(1), "cache")?;
        let provider = Box::new(lb(
            CachingProvider::builder(
                PatternKeys {
                    kek: kek_from(&kek_bytes),
                    next_seed: AtomicUsize::new(0xF1),
                },
                &cache,
                std::time::Duration::from_secs(3600),
            )
            .build(),
            "build",
        )?);
        let probe = Probe {
            inner: kek_from(&kek_bytes),
            expected_dek: p1,
            saw_expected: AtomicBool::new(false),
        };
        let (c1, c2) = (ctx()?, lb(ctx()?.with("other", "context"), "context")?);
        let a = lb(lockbox::seal(&*provider, b"message a", &c1), "seal a")?;
        let b = lb(lockbox::seal(&*provider, b"message b", &c1), "seal b")?;
        ensure(
            provider.stats().seal_hits == 1,
            "the second seal did not reuse the cached key",
        )?;
        // Proof that the cached key is the registered pattern d1.
        ensure(
            lb(Opener::new(&probe).open(&b, &c1), "probe open")? == b"message b",
            "probe open",
        )?;
        ensure(probe.saw_expected.load(Ordering::Relaxed), "the cached DEK is not d1")?;
        // Capacity 1: sealing under another context evicts d1's entry.
        lb(lockbox::seal(&*provider, b"message c", &c2), "seal c")?;
        ensure(cache.evictions() == 1 && cache.len() == 1, "d1's entry was not evicted")?;
        expect_clean("data key d1 after its seal entry was evicted", p1)?;
        // Open side: d1 comes back as an open entry (evicting d2's), then is cleared.
        ensure(
            lb(lockbox::open(&*provider, &a, &c1), "open a")? == b"message a",
            "open a",
        )?;
        ensure(
            lb(lockbox::open(&*provider, &a, &c1), "open a")? == b"message a",
            "open a",
        )?;
        let st = provider.stats();
        ensure(
            st.open_misses == 1 && st.open_hits == 1,
            "the unwrapped key was not cached",
        )?;
        ensure(cache.evictions() == 2, "d2's entry was not evicted")?;
        expect_clean("data key d2 after its seal entry was evicted", p2)?;
        cache.clear();
        ensure(cache.evictions() == 3 && cache.is_empty(), "clear left entries")?;
        expect_clean("data key d1 after its open entry was cleared", p1)?;
        // Fill it again (with d3), then drop the provider and the cache with the entry in.
        lb(lockbox::seal(&*provider, b"message d", &c1), "seal d")?;
        ensure(cache.len() == 1, "no entry to drop")?;
        black_box(&provider);
    }
    expect_clean("data key d1 after the cache was dropped", p1)?;
    expect_clean("data key d2 after the cache was dropped", p2)?;
    expect_clean("data key d3, cached when the cache was dropped", p3)?;
    expect_clean("KEK bytes", pk)
}

/// An async-only provider (it implements the async trait alone, as AWS KMS
/// and OpenBao do) over a local KEK. Every future returns `Pending` once
/// before it answers, so its callers' futures really suspend at each
/// `.await`; the answer is computed in the poll that returns it (no key in
/// this future's own state). With `generate`, data keys are the patterns of
/// successive seeds (as `PatternKeys`); without it, every data key it is
/// asked to wrap (drawn by its caller) is registered as a pattern, from the
/// caller's memory into the static slots, and its slot kept.
struct AsyncOnly {
    kek: LocalKek,
    generate: bool,
    next_seed: AtomicUsize,
    /// Slot + 1 of the last data key registered by `wrap_async` (0: none).
    wrapped_pattern: AtomicUsize,
}

impl fmt::Debug for AsyncOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncOnly").finish_non_exhaustive()
    }
}

impl AsyncOnly {
    #[inline(never)]
    fn new(kek_bytes: &[u8; 32], generate: bool, first_seed: usize) -> Self {
        Self {
            kek: kek_from(kek_bytes),
            generate,
            next_seed: AtomicUsize::new(first_seed),
            wrapped_pattern: AtomicUsize::new(0),
        }
    }

    fn last_wrapped(&self) -> Option<Pattern> {
        self.wrapped_pattern.load(Ordering::Relaxed).checked_sub(1).map(Pattern)
    }
}

impl ProviderIdentity for AsyncOnly {
    fn provider_id(&self) -> &str {
        self.kek.provider_id()
    }

    fn matches(&self, wrapped: WrappedKeyRef<'_>) -> bool {
        self.kek.matches(wrapped)
    }
}

impl AsyncKeyEncryptionProvider for AsyncOnly {
    fn wrap_async<'a>(
        &'a self,
        dek: &'a DataKey,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<WrappedKey, ProviderError>> {
        once_pending(move || {
            if !self.generate {
                let p = register(dek.expose_secret());
                self.wrapped_pattern.store(p.0.saturating_add(1), Ordering::Relaxed);
            }
            self.kek.wrap(dek, binding)
        })
    }

    fn unwrap_async<'a>(
        &'a self,
        wrapped: WrappedKeyRef<'a>,
        binding: Binding<'a>,
    ) -> BoxFuture<'a, Result<DataKey, ProviderError>> {
        once_pending(move || self.kek.unwrap(wrapped, binding))
    }

    fn generate_data_key_async<'a>(
        &'a self,
        request: DataKeyRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<(DataKey, WrappedKey)>, ProviderError>> {
        once_pending(move || {
            if !self.generate {
                return Ok(None);
            }
            let seed = self.next_seed.fetch_add(1, Ordering::Relaxed);
            let dek = hazmat::data_key_from_bytes(pattern(u64::try_from(seed).unwrap_or(0)));
            let wrapped = self.kek.wrap(&dek, request.binding())?;
            Ok(Some((dek, wrapped)))
        })
    }
}

/// A boxed future that returns `Pending` once (waking itself), then runs `f`
/// in the poll that returns its value.
fn once_pending<'a, T: Send + 'a>(f: impl FnOnce() -> T + Send + 'a) -> BoxFuture<'a, T> {
    let mut f = Some(f);
    let mut yielded = false;
    Box::pin(std::future::poll_fn(move |cx| {
        if !yielded {
            yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match f.take() {
            Some(f) => Poll::Ready(f()),
            None => Poll::Pending,
        }
    }))
}

/// Runs the future `make` builds to completion, boxed (on the heap, as a
/// spawned task is), polling it until it is ready.
///
/// Boxing copies the whole future, including the parts not yet initialized,
/// which hold whatever the stack held there before. The harness itself moves
/// keys by value on the stack (`LocalKek` values, key arrays), so stale stack
/// bytes could carry a key into the box: a false hit. So the future is built
/// in a frame on freshly zeroed stack: `scrub_stack` zeroes the stack below
/// this frame, then `build_and_run`, whose frame lies in that region, builds
/// and boxes the future.
#[inline(never)]
fn run<T, F: Future<Output = T>>(make: impl FnOnce() -> F) -> Result<T, String> {
    scrub_stack();
    build_and_run(make)
}

/// Zeroes 256 KiB of stack below the caller's frame.
#[inline(never)]
fn scrub_stack() {
    let zeros = [0u8; 256 * 1024];
    black_box(&zeros);
}

#[inline(never)]
fn build_and_run<T, F: Future<Output = T>>(make: impl FnOnce() -> F) -> Result<T, String> {
    let mut f = Box::pin(make());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
    }
    Err("a future did not complete".into())
}

/// h2: as h1, through `AsyncCachingProvider` over an async-only provider,
/// sealing with `AsyncSealer` and opening with `AsyncOpener`, every future
/// boxed and suspended at each provider call. Then a second provider that
/// offers no generation: the cache draws the data key itself and holds it
/// across the wrap's `.await`; once the seal is done, the only copy must be
/// the cache entry's, and none once that is cleared.
fn async_cache_evictions() -> Result<(), String> {
    use lockbox::cache::{AsyncCachingProvider, DataKeyCache};
    let kek_bytes: [u8; 32] = pattern(0xE0);
    let pk = register(&kek_bytes);
    let p1 = register(&pattern::<32>(0xE1));
    let p2 = register(&pattern::<32>(0xE2));
    let p3 = register(&pattern::<32>(0xE3));
    let drawn;
    {
        let cache = lb(DataKeyCache::new(1), "cache")?;
        let age = std::time::Duration::from_secs(3600);
        let provider = Box::new(lb(
            AsyncCachingProvider::builder(AsyncOnly::new(&kek_bytes, true, 0xE1), &cache, age).build(),
            "build",
        )?);
        let probe = Probe {
            inner: kek_from(&kek_bytes),
            expected_dek: p1,
            saw_expected: AtomicBool::new(false),
        };
        let (c1, c2) = (ctx()?, lb(ctx()?.with("other", "context"), "context")?);
        let sealer = AsyncSealer::new(&*provider);
        let a = lb(run(|| sealer.seal(b"message a", &c1))?, "seal a")?;
        let b = lb(run(|| sealer.seal(b"message b", &c1))?, "seal b")?;
        ensure(
            provider.stats().seal_hits == 1,
            "the second seal did not reuse the cached key",
        )?;
        ensure(
            lb(Opener::new(&probe).open(&b, &c1), "probe open")? == b"message b",
            "probe open",
        )?;
        ensure(probe.saw_expected.load(Ordering::Relaxed), "the cached DEK is not e1")?;
        // Capacity 1: sealing under another context evicts e1's entry.
        lb(run(|| sealer.seal(b"message c", &c2))?, "seal c")?;
        ensure(cache.evictions() == 1 && cache.len() == 1, "e1's entry was not evicted")?;
        expect_clean("data key e1 after its seal entry was evicted", p1)?;
        // Open side: e1 comes back as an open entry (evicting e2's), then is cleared.
        let opener = AsyncOpener::new(&*provider);
        for _ in 0..2 {
            ensure(lb(run(|| opener.open(&a, &c1))?, "open a")? == b"message a", "open a")?;
        }
        let st = provider.stats();
        ensure(
            st.open_misses == 1 && st.open_hits == 1,
            "the unwrapped key was not cached",
        )?;
        ensure(cache.evictions() == 2, "e2's entry was not evicted")?;
        expect_clean("data key e2 after its seal entry was evicted", p2)?;
        cache.clear();
        expect_clean("data key e1 after its open entry was cleared", p1)?;

        // No provider-side generation: the cache draws the key and wraps it
        // across an await.
        let drawing = Box::new(lb(
            AsyncCachingProvider::builder(AsyncOnly::new(&kek_bytes, false, 0), &cache, age).build(),
            "build",
        )?);
        let drawing_sealer = AsyncSealer::new(&*drawing);
        let d = lb(run(|| drawing_sealer.seal(b"message d", &c1))?, "seal d")?;
        drawn = drawing
            .inner()
            .last_wrapped()
            .ok_or("the cache did not wrap a key it drew")?;
        ensure(cache.len() == 1, "the drawn key was not cached")?;
        expect_clean(
            "a data key the cache drew, after the seal (only the entry holds it)",
            drawn,
        )?;
        let drawing_opener = AsyncOpener::new(&*drawing);
        ensure(
            lb(run(|| drawing_opener.open(&d, &c1))?, "open d")? == b"message d",
            "open d",
        )?;
        cache.clear();
        expect_clean("a data key the cache drew, after its entry was cleared", drawn)?;
        // Fill it again (with e3), then drop the providers and the cache with the entry in.
        lb(run(|| sealer.seal(b"message e", &c1))?, "seal e")?;
        ensure(cache.len() == 1, "no entry to drop")?;
        black_box((&provider, &drawing));
        // Live to here, so its stack slot is never reused for a future.
        black_box(&kek_bytes);
    }
    expect_clean("data key e1 after the cache was dropped", p1)?;
    expect_clean("data key e2 after the cache was dropped", p2)?;
    expect_clean("data key e3, cached when the cache was dropped", p3)?;
    expect_clean("a data key the cache drew, after the cache was dropped", drawn)?;
    expect_clean("KEK bytes", pk)
}

/// i1: a grant and an audit layer (`AsyncLayered`) over an async-only
/// provider that generates data keys, sealing and opening with `AsyncSealer`
/// and `AsyncOpener`, every future suspended at the provider call, plus a
/// direct unwrap through an `OpenOnly` handle: the layers hand keys through
/// without keeping a copy in their futures' state.
fn access_layers() -> Result<(), String> {
    use lockbox::access::{AsyncLayered, Grant, OpenOnly, Operations};
    use lockbox::audit::{Audit, MemorySink};
    let kek_bytes: [u8; 32] = pattern(0xF0);
    let pk = register(&kek_bytes);
    let p1 = register(&pattern::<32>(0xF1));
    let p2 = register(&pattern::<32>(0xF2));
    {
        let log = std::sync::Arc::new(MemorySink::new());
        let grant = lb(
            Grant::builder("g", Operations::ALL)
                .require("purpose", "zeroize-check")
                .build(),
            "grant",
        )?;
        let provider = Box::new(AsyncLayered::new(
            AsyncLayered::new(AsyncOnly::new(&kek_bytes, true, 0xF1), grant),
            Audit::new(log.clone()),
        ));
        let c = ctx()?;
        let sealer = AsyncSealer::new(&*provider);
        let a = lb(run(|| sealer.seal(b"message a", &c))?, "seal a")?;
        let b = lb(run(|| sealer.seal(b"message b", &c))?, "seal b")?;
        let opener = AsyncOpener::new(&*provider);
        ensure(lb(run(|| opener.open(&a, &c))?, "open a")? == b"message a", "open a")?;
        ensure(lb(run(|| opener.open(&b, &c))?, "open b")? == b"message b", "open b")?;
        let handle = OpenOnly::new(AsyncOnly::new(&kek_bytes, true, 0));
        let info = lb(lockbox::inspect(&a), "inspect")?;
        let w = info.wrapped_keys().first().ok_or("no wrapped key")?;
        let binding = BindingBuf::new(info.suite(), &c);
        let dek = lb(
            run(|| handle.unwrap_async(w.as_ref(), binding.as_binding()))?.map_err(Error::from),
            "unwrap",
        )?;
        ensure(pattern_is(p1, dek.expose_secret()), "the handle unwrapped another key")?;
        drop(dek);
        ensure(log.len() == 4, "the audit did not record every call")?;
        black_box((&provider, &handle));
        black_box(&kek_bytes);
    }
    expect_clean("data key f1 after sealing, opening and unwrapping through layers", p1)?;
    expect_clean("data key f2 after sealing and opening through layers", p2)?;
    expect_clean("KEK bytes", pk)
}

/// g3: a keyring under an async-only master: sealed and opened as bytes,
/// saved, loaded, updated and reloaded as a file, used, dropped; every
/// future boxed and suspended at each master call. No version key left.
fn keyring_async_master() -> Result<(), String> {
    let master = AsyncOnly::new(&pattern(0x6C), false, 0);
    let c = ctx()?;
    let dir = TempDir::new("g3")?;
    let path = dir.path().join("ring");
    let patterns = {
        let mut ring = small_keyring()?;
        lb(ring.rotate(UnixTime(2)), "rotate")?;
        let file = lb(run(|| ring.to_sealed_bytes_async(&master))?, "seal")?;
        let patterns = [
            register(&version_key(&master.kek, &file, 0)?),
            register(&version_key(&master.kek, &file, 1)?),
        ];
        let loaded = lb(run(|| Keyring::from_sealed_bytes_async(&file, &master))?, "open")?;
        lb(run(|| ring.save_async(&path, &master))?, "save")?;
        let mut other = lb(run(|| Keyring::load_async(&path, &master))?, "load")?;
        lb(
            run(|| other.update_async(&path, &master, |r| r.add_version(UnixTime(3))))?,
            "update",
        )?;
        lb(run(|| ring.reload_if_changed_async(&path, &master))?, "reload")?;
        let env = lb(lockbox::seal(&loaded, b"x", &c), "seal")?;
        lb(lockbox::open(&ring, &env, &c), "open")?;
        lb(
            lockbox::open(&other.migration_provider(), &env, &c),
            "open via migration",
        )?;
        black_box((&ring, &loaded, &other));
        patterns
    };
    for p in patterns {
        expect_clean("keyring version key", p)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------

struct Runner {
    passed: usize,
    failed: usize,
}

impl Runner {
    fn run(&mut self, name: &str, f: fn() -> Result<(), String>) -> bool {
        clear_patterns();
        let r = f();
        clear_patterns();
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name}");
                true
            }
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
                false
            }
        }
    }
}

/// The key of the `index`-th entry of a keyring file whose id is one byte
/// long and whose entries all hold keys (KEYRING.md §3: entries start at
/// 54 + 1, each 22 + 32 bytes, the key last). The opened contents are wiped
/// before they are freed.
fn version_key(master: &LocalKek, file: &[u8], index: usize) -> Result<[u8; 32], String> {
    // Lenient: the file's stored context (KEYRING.md §2) is not named here.
    let opened = lockbox::Opener::new(master)
        .lenient_context()
        .open(file, &EncryptionContext::new());
    let mut body = lb(opened, "open keyring file")?;
    let at = 55 + index * 54 + 22;
    let key: Result<[u8; 32], String> = body
        .get(at..at + 32)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| "keyring contents too short".to_string());
    for b in body.iter_mut() {
        *b = 0;
    }
    black_box(&body);
    key
}

fn small_keyring() -> Result<Keyring, String> {
    let id = lb(KeyId::new("z"), "key id")?;
    let ring = lb(Keyring::generate(id, UnixTime(1)), "generate")?;
    Ok(ring.with_policy(RotationPolicy::new().min_destruction_delay(0)))
}

/// g1: a version destroyed after use: its key is gone from the heap at once.
fn keyring_destroy() -> Result<(), String> {
    let master = kek_from(&pattern(0x6A));
    let c = ctx()?;
    let p = {
        let mut ring = small_keyring()?;
        let env = lb(lockbox::seal(&ring, b"under v1", &c), "seal")?;
        lb(ring.rotate(UnixTime(2)), "rotate")?;
        let file = lb(ring.to_sealed_bytes(&master), "save")?;
        let p = register(&version_key(&master, &file, 0)?);
        lb(lockbox::open(&ring, &env, &c), "open under v1")?;
        lb(
            ring.schedule_destruction(KeyVersion(1), UnixTime(3), UnixTime(3)),
            "schedule",
        )?;
        lb(ring.destroy(KeyVersion(1), UnixTime(3)), "destroy")?;
        expect_clean("destroyed version's key (right after destroy)", p)?;
        ensure(lockbox::open(&ring, &env, &c).is_err(), "destroyed version still opens")?;
        black_box(&ring);
        p
    };
    expect_clean("destroyed version's key", p)
}

/// g2: a keyring saved, loaded, used and dropped: no version key left behind.
fn keyring_save_load() -> Result<(), String> {
    let master = kek_from(&pattern(0x6B));
    let c = ctx()?;
    let patterns = {
        let mut ring = small_keyring()?;
        lb(ring.rotate(UnixTime(2)), "rotate")?;
        let file = lb(ring.to_sealed_bytes(&master), "save")?;
        let patterns = [
            register(&version_key(&master, &file, 0)?),
            register(&version_key(&master, &file, 1)?),
        ];
        let file = lb(ring.to_sealed_bytes(&master), "save again")?;
        let loaded = lb(Keyring::from_sealed_bytes(&file, &master), "load")?;
        let env = lb(lockbox::seal(&loaded, b"x", &c), "seal")?;
        lb(lockbox::open(&ring, &env, &c), "open")?;
        lb(
            lockbox::open(&loaded.migration_provider(), &env, &c),
            "open via migration",
        )?;
        black_box((&ring, &loaded));
        patterns
    };
    for p in patterns {
        expect_clean("keyring version key", p)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// i: recipients and passphrases
// ---------------------------------------------------------------------------

/// Seals `msg` to `provider` with a known DEK (registered by the caller) and
/// opens it with `opener`.
fn seal_open_known_dek(
    provider: &dyn lockbox::KeyEncryptionProvider,
    opener: &dyn lockbox::KeyEncryptionProvider,
    dek: [u8; 32],
) -> Result<Vec<u8>, String> {
    let mut head = [0u8; 64];
    head[..32].copy_from_slice(&dek);
    head[32..].copy_from_slice(&pattern::<32>(0x1D));
    let mut rng = FixedRng { head, drawn: 0 };
    let ctx = ctx()?;
    let msg = b"sealed to a recipient";
    let env = lb(Sealer::new(provider).seal_with_rng(&mut rng, msg, &ctx), "seal_with_rng")?;
    let pt = lb(Opener::new(opener).open(&env, &ctx), "open")?;
    ensure(pt == msg, "open returned other bytes")?;
    Ok(env)
}

/// 40 characters of an identity string's data part, which no other text
/// contains (on the stack: a heap copy of our own would be reported).
fn identity_text_fragment(text: &str) -> [u8; 40] {
    let start = text.rfind('1').map_or(0, |i| i + 1);
    let mut out = [0u8; 40];
    out.copy_from_slice(&text.as_bytes()[start..start + 40]);
    out
}

/// i1: identities of both kinds built from bytes, turned into their strings
/// and back, used to seal (to their recipient) and open, dropped.
fn identities_in_memory() -> Result<(), String> {
    for (kind, seed) in [(RecipientKind::X25519, 0xE1u64), (RecipientKind::XWing, 0xE2)] {
        clear_patterns();
        let secret: [u8; 32] = pattern(seed);
        let dek: [u8; 32] = pattern(seed + 0x10);
        // X25519 keys are clamped when used: bytes 1..31 are unchanged.
        let ps = register(&secret[1..31]);
        let pd = register(&dek);
        let text_pattern;
        {
            let id = Box::new(lb(
                hazmat::identity_from_bytes(kind, SecretBox::new(Box::new(secret))),
                "identity_from_bytes",
            )?);
            let text = id.to_secret_string();
            text_pattern = register(&identity_text_fragment(text.expose_secret()));
            let again = Box::new(lb(Identity::parse(text.expose_secret()), "parse")?);
            ensure(hazmat::identity_bytes(&again) == &secret, "parsed identity differs")?;
            let recipient: Recipient = lb(id.recipient().to_string().parse(), "recipient")?;
            seal_open_known_dek(&recipient, &*again, dek)?;
            seal_open_known_dek(&*id, &*id, dek)?;
            black_box((&id, &again, &text));
        }
        expect_clean(&format!("{kind} identity text"), text_pattern)?;
        expect_clean(&format!("{kind} secret key bytes"), ps)?;
        expect_clean(&format!("{kind} unwrapped DEK"), pd)?;
    }
    Ok(())
}

/// i2: an identity written to a file, read back, written sealed under a
/// local KEK and read back, and read from the environment.
fn identities_on_disk() -> Result<(), String> {
    const VAR: &str = "LOCKBOX_ZEROIZE_CHECK_IDENTITY";
    let secret: [u8; 32] = pattern(0xE3);
    let ps = register(&secret);
    let dir = TempDir::new("i2")?;
    let (plain, sealed) = (dir.path().join("id"), dir.path().join("id.sealed"));
    let kek = kek_from(&pattern(0xE4));
    let pt;
    {
        let id = lb(
            hazmat::identity_from_bytes(RecipientKind::XWing, SecretBox::new(Box::new(secret))),
            "identity_from_bytes",
        )?;
        let text = id.to_secret_string();
        pt = register(&identity_text_fragment(text.expose_secret()));
        lb(id.write_new_file(&plain), "write_new_file")?;
        lb(id.write_sealed_file(&sealed, &kek), "write_sealed_file")?;
        let a = lb(Identity::from_file(&plain), "from_file")?;
        let b = lb(Identity::from_sealed_file(&sealed, &kek), "from_sealed_file")?;
        // SAFETY: this program is single-threaded (see a5).
        unsafe { std::env::set_var(VAR, text.expose_secret()) };
        let c = Identity::from_env(VAR);
        // SAFETY: as above.
        unsafe { std::env::remove_var(VAR) };
        let c = lb(c, "from_env")?;
        for other in [&a, &b, &c] {
            ensure(hazmat::identity_bytes(other) == &secret, "loaded identity differs")?;
        }
        black_box((&id, &a, &b, &c, &text));
    }
    drop(dir);
    expect_clean("identity text (files, environment)", pt)?;
    expect_clean("identity secret bytes", ps)
}

/// i3: a passphrase seals and opens (a known DEK); neither the passphrase,
/// nor the Argon2id key derived from it, nor the DEK is left in freed memory.
fn passphrase_and_derived_key() -> Result<(), String> {
    let text: [u8; 32] = {
        let mut t = pattern::<32>(0xE5);
        for b in &mut t {
            *b = b'a' + (*b % 26);
        }
        t
    };
    let dek: [u8; 32] = pattern(0xE6);
    let pp = register(&text);
    let pd = register(&dek);
    let env;
    {
        let pass = Box::new(
            lb(
                Passphrase::new(SecretString::from(std::str::from_utf8(&text).map_err(|e| e.to_string())?)),
                "Passphrase::new",
            )?
            .with_params(lb(hazmat::argon2_params_unchecked(256, 2, 1), "params")?),
        );
        env = seal_open_known_dek(&*pass, &*pass, dek)?;
        black_box(&pass);
    }
    // The wrap's salt, and the key Argon2id derived from it (recomputed here,
    // before its pattern is registered, so our own computation is not seen).
    let info = lb(lockbox::inspect(&env), "inspect")?;
    let w = info.wrapped_keys()[0].bytes();
    let mut salt = b"lockbox v1 passphrase wrap".to_vec();
    salt.extend_from_slice(&w[13..45]);
    let mut key = [0u8; 32];
    let params = argon2::Params::new(256, 2, 1, Some(32)).map_err(|e| e.to_string())?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(&text, &salt, &mut key)
        .map_err(|e| e.to_string())?;
    let pk = register(&key);
    // Open again, now that the derived key is registered.
    {
        let pass = Box::new(lb(
            Passphrase::new(SecretString::from(std::str::from_utf8(&text).map_err(|e| e.to_string())?)),
            "Passphrase::new",
        )?);
        let pt = lb(Opener::new(&*pass).open(&env, &ctx()?), "open")?;
        ensure(pt == b"sealed to a recipient", "open returned other bytes")?;
        black_box(&pass);
    }
    expect_clean("Argon2id-derived key", pk)?;
    expect_clean("passphrase text", pp)?;
    expect_clean("unwrapped DEK", pd)
}

/// 64 ASCII hex digits of `bytes`, on the stack: a value a secrets file can
/// hold, and a pattern.
fn hex_text(bytes: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xF)];
    }
    out
}

/// The file key of a secrets file (the payload of its key envelope), opened
/// here into a buffer wiped before it is freed, returned on the stack.
fn file_key_of(envelope: &[u8], kek: &LocalKek, caller: &EncryptionContext) -> Result<[u8; 32], String> {
    let info = lb(lockbox::inspect(envelope), "inspect")?;
    let mut full = caller.clone();
    for (k, v) in info.stored_context() {
        if k.starts_with("lockbox.secrets.") {
            lb(full.insert(k, v), "context")?;
        }
    }
    let mut buf = Vec::with_capacity(envelope.len());
    buf.extend_from_slice(envelope);
    let r = Opener::new(kek).open_in_place(&mut buf, &full);
    let mut key = [0u8; 32];
    let ok = r.is_ok() && buf.len() == 32;
    if ok {
        key.copy_from_slice(&buf);
    }
    buf.iter_mut().for_each(|b| *b = 0);
    black_box(&buf);
    drop(buf);
    ensure(ok, "file key")?;
    Ok(key)
}

/// j1: secrets files (both forms) created, edited (set, set_json with
/// escapes, remove), written, parsed, unlocked, read one by one and loaded,
/// exported as environment variables, merged, rotated; all dropped.
fn secrets_files() -> Result<(), String> {
    use lockbox::secrets::{Form, SecretsFile, Verify};
    let kek = Box::new(kek_from(&pattern(0xF1)));
    let pk = register(&pattern::<32>(0xF1));
    let (a, b) = (hex_text(&pattern(0xF2)), hex_text(&pattern(0xF3)));
    let (pa, pb) = (register(&a), register(&b));
    let (a, b) = (std::str::from_utf8(&a).unwrap_or_default(), std::str::from_utf8(&b).unwrap_or_default());
    let c = ctx()?;
    let mut keys = Vec::new();
    for form in [Form::Dotenv, Form::Json] {
        let (na, nb) = if form == Form::Dotenv { ("A", "B") } else { ("/a", "/b/c") };
        let mut f = lb(SecretsFile::create(form, &Sealer::new(&*kek), &c, Verify::EachProvider), "create")?;
        lb(f.set(na, a), "set a")?;
        if form == Form::Json {
            // A JSON string with escapes, decoded by the strict parser.
            let mut json = [0u8; 70];
            json[0] = b'"';
            json[1..65].copy_from_slice(b.as_bytes());
            json[65..69].copy_from_slice(b"\\u00");
            json[69] = b'"';
            let text = std::str::from_utf8(&json[..]).unwrap_or_default();
            let _ = f.set_json(nb, text);
        }
        lb(f.set(nb, b), "set b")?;
        let key = file_key_of(f.key_envelope(), &kek, &c)?;
        keys.push(register(&key));
        let bytes = lb(f.to_bytes(), "to_bytes")?;
        drop(f);
        let opened = lb(lb(SecretsFile::parse(form, &bytes), "parse")?.unlock(&Opener::new(&*kek), &c), "unlock")?;
        let got = lb(opened.get(na), "get")?;
        ensure(got.as_ref().is_some_and(|g| g.expose_secret() == a), "get a")?;
        let loaded = lb(opened.load(), "load")?;
        let env = lb(loaded.env_vars(), "env_vars")?;
        ensure(env.len() == 2, "env")?;
        let mut ours = lb(lb(SecretsFile::parse(form, &bytes), "parse")?.unlock(&Opener::new(&*kek), &c), "unlock")?;
        lb(ours.set(na, a), "set unchanged")?;
        lb(ours.set(if form == Form::Dotenv { "D" } else { "/d" }, b), "set d")?;
        lb(ours.remove(if form == Form::Dotenv { "D" } else { "/d" }), "remove d")?;
        let merged = lb(lockbox::secrets::merge(&opened, &ours, &opened), "merge")?;
        let rotated = lb(
            lb(SecretsFile::parse(form, &bytes), "parse")?.rotate(&Opener::new(&*kek), &Sealer::new(&*kek), &c, Verify::EachProvider),
            "rotate",
        )?;
        black_box((&got, &loaded, &env, &ours, &merged, &rotated));
    }
    for k in keys {
        expect_clean("a secrets file's file key", k)?;
    }
    expect_clean("secret value a", pa)?;
    expect_clean("secret value b", pb)?;
    expect_clean("KEK bytes", pk)
}

/// j2: the async drivers (create, unlock, update keys, rotate) over an
/// async-only provider whose futures suspend, futures boxed: no value, no
/// file key, no key-envelope data key.
fn secrets_files_async() -> Result<(), String> {
    use lockbox::secrets::{Form, SecretsFile, Verify};
    let kek_bytes: [u8; 32] = pattern(0xF5);
    let pk = register(&kek_bytes);
    let deks: Vec<Pattern> = (0..6u64).map(|i| register(&pattern::<32>(0xF60 + i))).collect();
    let provider = AsyncOnly::new(&kek_bytes, true, 0xF60);
    let second = AsyncOnly::new(&pattern(0xF7), true, 0xF70);
    let a = hex_text(&pattern(0xF8));
    let pa = register(&a);
    let a = std::str::from_utf8(&a).unwrap_or_default();
    let c = ctx()?;
    let plain_kek = kek_from(&kek_bytes);
    let pf;
    {
        let create_with = AsyncSealer::new(&provider);
        let mut f = lb(
            run(|| SecretsFile::create_async(Form::Dotenv, &create_with, &c, Verify::EachProvider))?,
            "create_async",
        )?;
        lb(f.set("A", a), "set")?;
        // From here on, the file key must not be left anywhere either.
        pf = register(&file_key_of(f.key_envelope(), &plain_kek, &c)?);
        let bytes = lb(f.to_bytes(), "to_bytes")?;
        drop(f);
        let opener = AsyncOpener::new(&provider);
        let opened = lb(
            run(|| async { SecretsFile::parse(Form::Dotenv, &bytes)?.unlock_async(&opener, &c).await })?,
            "unlock_async",
        )?;
        let got = lb(opened.get("A"), "get")?;
        ensure(got.as_ref().is_some_and(|g| g.expose_secret() == a), "get a")?;
        let rw = lockbox::AsyncRewrapper::new(&provider).also_wrap_with(&second);
        let updated = lb(
            run(|| async { SecretsFile::parse(Form::Dotenv, &bytes)?.update_keys_async(&rw, &c, Verify::EachProvider).await })?,
            "update_keys_async",
        )?;
        let sealer = AsyncSealer::new(&provider);
        let rotated = lb(
            run(|| async { SecretsFile::parse(Form::Dotenv, &bytes)?.rotate_async(&opener, &sealer, &c, Verify::EachProvider).await })?,
            "rotate_async",
        )?;
        black_box((&got, &opened, &updated, &rotated));
    }
    expect_clean("the file key (after create: unlock, update keys, rotate)", pf)?;
    expect_clean("secret value", pa)?;
    for (i, d) in deks.into_iter().enumerate() {
        expect_clean(&format!("key-envelope data key {i}"), d)?;
    }
    black_box((&provider, &second, &plain_kek));
    drop((provider, second, plain_kek));
    expect_clean("KEK bytes", pk)
}

/// k1: Fernet keys parsed from their text, a MultiFernet opening a token
/// and migrating it to an envelope, a key generated and exported: no key
/// bytes, no key text, no plaintext.
fn fernet_keys() -> Result<(), String> {
    use lockbox::fernet::{FernetKey, MultiFernet, TimeCheck};
    let raw: [u8; 32] = pattern(0xF9);
    let pr = register(&raw);
    let mut text = [0u8; 44];
    {
        let encoded = base64url_padded(&raw);
        text.copy_from_slice(&encoded);
    }
    let pt = register(&text);
    let plain = hex_text(&pattern(0xFA));
    let pp = register(&plain);
    let kek = Box::new(kek_from(&pattern(0xFB)));
    {
        let key = lb(FernetKey::parse(std::str::from_utf8(&text).unwrap_or_default()), "parse key")?;
        let token = lb(key.encrypt(&plain, 1_700_000_000), "encrypt")?;
        let again = lb(FernetKey::parse(std::str::from_utf8(&text).unwrap_or_default()), "parse key")?;
        let multi = MultiFernet::new(vec![lb(FernetKey::generate(), "generate")?, again]);
        let opened = lb(multi.decrypt(&token, TimeCheck::max_age(60, 1_700_000_010)), "decrypt")?;
        ensure(opened.as_slice() == plain, "decrypted")?;
        let c = ctx()?;
        let env = lb(multi.migrate(&token, TimeCheck::none(), &Sealer::new(&*kek), &c), "migrate")?;
        let back = lb(Opener::new(&*kek).open(&env, &c), "open")?;
        ensure(back == plain, "migrated")?;
        let mut back = back;
        back.iter_mut().for_each(|b| *b = 0);
        black_box(&back);
        let exported = key.to_secret_string();
        let fresh = lb(lockbox::token::fernet_key(), "token::fernet_key")?;
        black_box((&key, &multi, &opened, &exported, &fresh));
    }
    expect_clean("Fernet key bytes", pr)?;
    expect_clean("Fernet key text", pt)?;
    expect_clean("Fernet plaintext", pp)
}

/// URL-safe padded base64 of 32 bytes (44 characters), on the stack.
fn base64url_padded(key: &[u8; 32]) -> [u8; 44] {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = [b'='; 44];
    for (i, chunk) in key.chunks(3).enumerate() {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let emit = chunk.len() + 1;
        for j in 0..emit {
            out[4 * i + j] = A[((n >> (18 - 6 * j)) & 63) as usize];
        }
    }
    out
}

fn main() {
    if std::env::var_os("ZEROIZE_BACKTRACE").is_some_and(|v| v == "1") {
        BACKTRACE_ON_HIT.store(true, Ordering::Relaxed);
    }
    let mut r = Runner { passed: 0, failed: 0 };

    let ok1 = r.run(
        "c1 self-check: a pattern left in a freed Vec is detected",
        self_check_dealloc,
    );
    let ok2 = r.run(
        "c2 self-check: a pattern in a realloc'd-away block is detected",
        self_check_realloc,
    );
    let ok3 = r.run(
        "d0 control: plaintext left in a Vec's spare capacity is detected",
        control_plaintext_detected,
    );
    if !(ok1 && ok2 && ok3) {
        println!("the scanner does not detect what it must: the results below prove nothing");
    }

    r.run(
        "a1 LocalKek from bytes, used to seal and open, dropped: no KEK bytes",
        kek_from_bytes,
    );
    r.run(
        "a2 local_kek_to_base64 export dropped: no base64 text",
        kek_base64_export,
    );
    r.run("a3 LocalKek::from_file: no base64 text, no KEK bytes", kek_from_file);
    r.run(
        "a4 LocalKek::write_new_file: no base64 text, no KEK bytes",
        kek_write_new_file,
    );
    r.run("a5 LocalKek::from_env: no base64 text, no KEK bytes", kek_from_env);
    r.run("b1 DataKey from bytes dropped: no DEK bytes", data_key_dropped);
    r.run(
        "b2 envelope DEK after seal_with_rng and open: no DEK bytes",
        envelope_dek,
    );
    r.run(
        "b3 envelope DEK after AsyncSealer::seal_with_rng and AsyncOpener::open: no DEK bytes",
        || envelope_dek_async(false),
    );
    r.run("b4 as b3, futures boxed, two providers: no DEK bytes", || {
        envelope_dek_async(true)
    });
    r.run(
        "b5 key group (2 of 3): seal, blocking and async open: no DEK bytes",
        keygroup_dek,
    );
    r.run(
        "d1 open_to, last segment tampered: Err, Vec == prefix, no plaintext",
        failed_open_to,
    );
    r.run(
        "d2 open_in_place, last segment tampered: Err, envelope restored, no plaintext",
        failed_open_in_place,
    );
    r.run(
        "d2b open_in_place with spare capacity, last segment tampered: Err, envelope restored, no plaintext",
        failed_open_in_place_spare,
    );
    r.run("d3 open, last segment tampered: Err, no plaintext", failed_open);
    r.run(
        "e1 seal_in_place growing a full Vec: no plaintext left in the old block",
        seal_in_place_growth,
    );

    r.run(
        "f1 rewrap (one-shot, header, streamed, verifying the payload): no DEK, no plaintext",
        rewrap_leaves_nothing,
    );
    r.run(
        "f3 async rewrap and re-encrypt, futures boxed, two new providers: no DEK, no plaintext",
        async_rewrap_leaves_nothing,
    );
    r.run(
        "f2 re-encrypt (one-shot, streamed, tampered): no plaintext",
        reencrypt_leaves_nothing,
    );
    r.run(
        "g1 keyring version destroyed after use: no key bytes, at once",
        keyring_destroy,
    );
    r.run(
        "g2 keyring saved, loaded, used, dropped: no version key bytes",
        keyring_save_load,
    );
    r.run(
        "g3 keyring under an async master, futures suspended: no version key bytes",
        keyring_async_master,
    );
    r.run(
        "h1 data-key cache: evicted, cleared and dropped entries leave no DEK bytes",
        cache_evictions,
    );
    r.run(
        "h2 async data-key cache over an async-only provider: no DEK bytes, drawn keys included",
        async_cache_evictions,
    );
    r.run(
        "i1 grant and audit layers and an open-only handle over an async-only provider: no DEK bytes",
        access_layers,
    );

    r.run(
        "i1 X25519 and X-Wing identities: from bytes, to and from strings, seal and open: no secret, no identity text, no DEK",
        identities_in_memory,
    );
    r.run(
        "i2 identity files, sealed identity files, identity from the environment: no secret, no identity text",
        identities_on_disk,
    );
    r.run(
        "i3 passphrase seal and open: no passphrase, no Argon2id-derived key, no DEK",
        passphrase_and_derived_key,
    );

    r.run(
        "j1 secrets files (dotenv, JSON): create, edit, write, unlock, get, load, env, merge, rotate: no value, no file key, no KEK",
        secrets_files,
    );
    r.run(
        "j2 secrets files through the async drivers, futures boxed and suspended: no value, no file key, no envelope data key",
        secrets_files_async,
    );
    r.run(
        "k1 Fernet keys parsed, a token opened and migrated, a key generated: no key bytes, no key text, no plaintext",
        fernet_keys,
    );

    println!("{} passed, {} failed", r.passed, r.failed);
    if r.failed != 0 {
        std::process::exit(1);
    }
}
