//! Compiling rule sets: 10,000 rules with CEL conditions and structured filters.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nurture::{Limits, Program};

/// A rule set of `n` rules over 20 event types mixing CEL and filters.
pub fn rule_set(n: usize) -> String {
    let events: Vec<String> = (0..20)
        .map(|t| format!(r#""t{t}": {{"url": "string", "form": "string", "minutes": "int"}}"#))
        .collect();
    let rules: Vec<String> = (0..n)
        .map(|i| {
            let t = i % 20;
            match i % 4 {
                0 => format!(r#"{{"id": "r{i}", "on": "t{t}", "when": "event.url == '/p{i}' && contact.company_size >= {}"}}"#, i % 1000),
                1 => format!(r#"{{"id": "r{i}", "on": "t{t}", "when": "event.url.startsWith('/docs/{i}') || contact.country in ['US', 'CA', 'GB']"}}"#),
                2 => format!(
                    r#"{{"id": "r{i}", "on": "t{t}", "filter": {{"all": [{{"field": "event.form", "op": "equals", "value": "f{i}"}}, {{"field": "contact.job_title", "op": "contains", "value": "VP"}}]}}}}"#
                ),
                _ => format!(r#"{{"id": "r{i}", "on": "t{t}", "when": "event.minutes >= {} && has(contact.job_title) && contact.job_title.matches('(?i)director|vp')"}}"#, i % 60),
            }
        })
        .collect();
    format!(
        r#"{{"version": 1, "schema": {{"contact": {{"company_size": "int", "country": "string", "job_title": "string"}}, "events": {{{}}}}}, "rules": [{}]}}"#,
        events.join(","),
        rules.join(",\n")
    )
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in [100usize, 10_000] {
        let doc = rule_set(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("rules", n), &doc, |b, doc| {
            b.iter(|| Program::from_json_with_limits(doc, &Limits::default()).expect("valid rule set"))
        });
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
