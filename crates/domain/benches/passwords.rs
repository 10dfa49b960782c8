//! Argon2id with the service's parameters (OWASP: 19 MiB, 2 iterations, 1 lane), one core.
//!
//! `cargo bench -p domain --bench passwords`. One hash or one verification per iteration, so
//! criterion's `thrpt` line is hashes per second; its time is what one sign-in's check costs.
//!
//! - `hash`: a fresh hash with a random salt (registration, a password change);
//! - `verify/match`, `verify/mismatch`: a sign-in with the right and a wrong password;
//! - `verify/no-account`: the dummy hash checked in its place, which must cost the same.
#![expect(clippy::expect_used, reason = "a benchmark's setup may fail loudly")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::{Password, Passwords};

fn passwords(c: &mut Criterion) {
    let passwords = Passwords::new().expect("the parameters are valid");
    let password = Password::new("correct horse battery staple").expect("long enough");
    let stored = passwords.hash(&password).expect("hashes");
    let mut group = c.benchmark_group("argon2id");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| passwords.hash(black_box(&password)).expect("hashes"));
    });
    group.bench_function("verify/match", |b| {
        b.iter(|| passwords.verify(black_box("correct horse battery staple"), Some(&stored)));
    });
    group.bench_function("verify/mismatch", |b| {
        b.iter(|| passwords.verify(black_box("correct horse battery stapler"), Some(&stored)));
    });
    group.bench_function("verify/no-account", |b| {
        b.iter(|| passwords.verify(black_box("correct horse battery staple"), None));
    });
    group.finish();
}

criterion_group!(benches, passwords);
criterion_main!(benches);
