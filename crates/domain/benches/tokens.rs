//! Sign and verify throughput of confirmation tokens for a typical address.
//!
//! `cargo bench -p domain --bench tokens`. Each benchmark handles one token per iteration, so
//! criterion's `thrpt` line is tokens per second.
//!
//! - `sign`: `ConfirmationTokens::issue` (JSON, zlib attempt, base64, HMAC-SHA1);
//! - `verify/primary`: `check` of a token signed with the only key;
//! - `verify/rotated-primary`: two keys configured, token signed with the newest (primary)
//!   one, which is tried first: the best case with a fallback;
//! - `verify/rotated-fallback`: two keys configured, token signed with the older (fallback)
//!   one: one HMAC mismatch before the match, the worst case;
//! - `verify/bad-signature`: two keys configured, a forged token: every key is tried.
#![expect(clippy::expect_used, reason = "a benchmark's setup may fail loudly")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::{ConfirmationTokens, EmailAddress};

const NOW: i64 = 1_700_000_000;
const MAX_AGE: Option<u64> = Some(3600);
const PRIMARY: &str = "a-long-random-primary-secret-key-0123456789";
const FALLBACK: &str = "the-previous-secret-key-kept-for-rotation-42";

fn tokens(c: &mut Criterion) {
    let email = EmailAddress::parse("someone@example.com").expect("a valid address");
    let primary = ConfirmationTokens::new(&[PRIMARY]).expect("one key");
    // Oldest first: FALLBACK only verifies, PRIMARY signs.
    let rotated = ConfirmationTokens::new(&[FALLBACK, PRIMARY]).expect("two keys");
    let old = ConfirmationTokens::new(&[FALLBACK]).expect("one key");

    let by_primary = primary.issue(&email, NOW);
    let by_fallback = old.issue(&email, NOW);
    let forged = format!("{}A", &by_primary[..by_primary.len() - 1]);
    let now = NOW + 60;
    assert!(primary.check(&by_primary, MAX_AGE, now).is_ok());
    assert!(rotated.check(&by_primary, MAX_AGE, now).is_ok());
    assert!(rotated.check(&by_fallback, MAX_AGE, now).is_ok());
    assert!(rotated.check(&forged, MAX_AGE, now).is_err());

    let mut sign = c.benchmark_group("sign");
    sign.throughput(Throughput::Elements(1));
    sign.bench_function("primary", |b| {
        b.iter(|| primary.issue(black_box(&email), black_box(NOW)));
    });
    sign.bench_function("rotated", |b| {
        b.iter(|| rotated.issue(black_box(&email), black_box(NOW)));
    });
    sign.finish();

    let mut verify = c.benchmark_group("verify");
    verify.throughput(Throughput::Elements(1));
    let cases = [
        ("primary", &primary, &by_primary),
        ("rotated-primary", &rotated, &by_primary),
        ("rotated-fallback", &rotated, &by_fallback),
        ("bad-signature", &rotated, &forged),
    ];
    for (name, codec, token) in cases {
        verify.bench_function(name, |b| {
            b.iter(|| codec.check(black_box(token), MAX_AGE, black_box(now)));
        });
    }
    verify.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
