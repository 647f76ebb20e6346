//! Access control and audit at 32 B: seal and open through a `LocalKek`
//! behind an `Audit` layer writing to the JSON-lines file sink (on its
//! writer thread, by default; inline; with an HMAC key), behind an audit to
//! a sink that drops everything (the layer's own cost), and behind a grant,
//! with the plain provider in the same group, so each cost reads as a ratio
//! (`python3 benches/audit_ratios.py` prints them).
//!
//! The file sink's numbers are sustained ones: the writer thread keeps up
//! or the bounded queue fills and `record` waits, never drops.
//!
//! `cargo bench --bench audit`; a quick run:
//! `cargo bench --bench audit -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::access::{Grant, Layered, Operations};
use lockbox::audit::{Audit, AuditKey, JsonLinesSink, NoAudit};
use lockbox::{EncryptionContext, KeyEncryptionProvider, LocalKek, Opener, Sealer};

const SIZE: usize = 32;

fn audited(kek: &Arc<LocalKek>, sink: JsonLinesSink) -> Layered<Arc<LocalKek>, Audit> {
    Layered::new(kek.clone(), Audit::builder(Arc::new(sink)).principal("bench").build())
}

fn audit(c: &mut Criterion) {
    let ctx = EncryptionContext::new()
        .with("tenant", "acme")
        .unwrap()
        .with_required("user", "u-1")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap());
    let file = audited(
        &kek,
        JsonLinesSink::builder(dir.path().join("a.jsonl")).build().unwrap(),
    );
    let inline = audited(
        &kek,
        JsonLinesSink::builder(dir.path().join("b.jsonl"))
            .inline()
            .build()
            .unwrap(),
    );
    let hmac = audited(
        &kek,
        JsonLinesSink::builder(dir.path().join("c.jsonl"))
            .hmac_key(AuditKey::generate().unwrap())
            .build()
            .unwrap(),
    );
    let null = Layered::new(kek.clone(), Audit::new(Arc::new(NoAudit)));
    let granted = Layered::new(
        kek.clone(),
        Grant::builder("bench", Operations::ALL)
            .require("tenant", "acme")
            .build()
            .unwrap(),
    );
    let providers: [(&str, &dyn KeyEncryptionProvider); 6] = [
        ("plain", &*kek),
        ("audit-file", &file),
        ("audit-file-inline", &inline),
        ("audit-file-hmac", &hmac),
        ("audit-null-sink", &null),
        ("grant", &granted),
    ];
    let pt = [7u8; SIZE];
    let envelope = lockbox::seal(&*kek, &pt, &ctx).unwrap();

    let mut g = c.benchmark_group("audit/seal");
    g.throughput(Throughput::Bytes(u64::try_from(SIZE).unwrap()));
    for (name, p) in providers {
        let sealer = Sealer::new(p);
        let mut out = Vec::with_capacity(512);
        g.bench_with_input(BenchmarkId::new(name, SIZE), &pt, |b, pt| {
            b.iter(|| {
                out.clear();
                sealer.seal_to(black_box(pt), &ctx, &mut out).unwrap();
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("audit/open");
    g.throughput(Throughput::Bytes(u64::try_from(SIZE).unwrap()));
    for (name, p) in providers {
        let opener = Opener::new(p);
        let mut out = Vec::with_capacity(64);
        g.bench_with_input(BenchmarkId::new(name, SIZE), &envelope, |b, env| {
            b.iter(|| {
                out.clear();
                opener.open_to(black_box(env), &ctx, &mut out).unwrap();
            });
        });
    }
    g.finish();
    // Dropping the providers closes the logs; everything written verifies.
    drop((file, inline, hmac));
    for name in ["a", "b"] {
        let report = lockbox::audit::LogVerifier::new()
            .require_closed()
            .verify_file(dir.path().join(format!("{name}.jsonl")))
            .unwrap();
        assert!(report.records > 2);
    }
}

criterion_group!(benches, audit);
criterion_main!(benches);
