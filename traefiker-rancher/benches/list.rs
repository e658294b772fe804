//! Listing 10,000 narratives from the fake Rancher: calls made and time taken.
//!
//! `cargo bench -p traefiker-rancher --bench list` prints, per page size, the number of
//! listing calls (which must be ceil(10,000 / page size)) and the time of one listing, then
//! lets criterion measure it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use traefiker_core::ContainerManager;
use traefiker_rancher::testing::{FakeRancher, STACK_ID};
use traefiker_rancher::RancherManager;

const SERVICES: usize = 10_000;

fn list(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let fake = rt.block_on(FakeRancher::start());
    // The fake's stack already holds `traefik`: the stack has SERVICES services in all.
    for i in 0..SERVICES - 1 {
        let session = format!("{:032x}", i + 1);
        fake.add_service(
            &format!("narrativepre-{}", &session[26..]),
            "docker:kbase/narrative:5.4.3",
            Some(&session),
            "healthy",
        );
    }
    let in_stack = fake
        .services()
        .iter()
        .filter(|s| s.stack_id == STACK_ID)
        .count();
    assert_eq!(
        in_stack, SERVICES,
        "the stack holds exactly {SERVICES} services"
    );
    let mut group = c.benchmark_group("list_10000");
    group.sample_size(10);
    for page_size in [100u32, 1000, 3000] {
        let mut config = fake.config();
        config.page_size = page_size;
        let manager = RancherManager::new(config).expect("a complete configuration");
        fake.reset_calls();
        let started = Instant::now();
        let listed = rt.block_on(manager.list()).expect("listing works");
        let took = started.elapsed();
        let calls = fake.calls().len();
        let expected = SERVICES.div_ceil(page_size as usize);
        println!(
            "page size {page_size}: {SERVICES} services, {} narratives, {calls} calls \
             (ceil({SERVICES}/{page_size}) = {expected}), {took:?}",
            listed.len()
        );
        assert_eq!(listed.len(), SERVICES - 1, "every narrative, not traefik");
        assert_eq!(calls, expected, "one call per page");
        group.bench_function(format!("page_size_{page_size}"), |b| {
            b.iter(|| rt.block_on(manager.list()).expect("listing works"))
        });
    }
    group.finish();
}

criterion_group!(benches, list);
criterion_main!(benches);
