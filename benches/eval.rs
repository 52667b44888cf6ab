//! Evaluation: one condition (fused and general paths), and matching events against the
//! quickstart's B2B rule set.

#[path = "../examples/common/workload.rs"]
mod workload;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nurture::expr::{Activation, Env};
use nurture::{MatchScratch, Program, Type};
use std::hint::black_box;

fn condition(c: &mut Criterion) {
    let env = Env::new()
        .with_variable("url", Type::String)
        .and_then(|e| e.with_variable("size", Type::Int))
        .and_then(|e| e.with_variable("country", Type::String))
        .and_then(|e| e.with_variable("title", Type::String))
        .expect("distinct names");
    let source = "url == '/pricing' && size >= 100 && country in ['US', 'CA', 'GB'] && title.contains('VP')";
    let expr = env.compile(source).expect("valid");
    let hit = env
        .bind([
            ("url", "/pricing".into()),
            ("size", 500i64.into()),
            ("country", "CA".into()),
            ("title", "VP Sales".into()),
        ])
        .expect("typed");
    let miss = env
        .bind([
            ("url", "/blog".into()),
            ("size", 500i64.into()),
            ("country", "CA".into()),
            ("title", "VP Sales".into()),
        ])
        .expect("typed");
    let mut group = c.benchmark_group("condition4");
    for (name, vars) in [("holds", &hit), ("first_fails", &miss)] {
        let act = Activation::new().with_variables(vars);
        group.bench_function(format!("fused/{name}"), |b| {
            b.iter(|| black_box(expr.eval_bool(black_box(&act))))
        });
        group.bench_function(format!("general/{name}"), |b| b.iter(|| black_box(expr.eval(black_box(&act)))));
    }
    group.finish();
}

fn match_events(c: &mut Criterion) {
    let program = Program::from_json(workload::RULES_JSON).expect("valid rule set");
    let schema = program.schema();
    let mut rng = workload::Rng::new(7);
    let contacts = workload::contacts(schema, 10_000, &mut rng);
    let events = workload::events(schema, 10_000, 4096, &mut rng);
    let pairs: Vec<_> = events
        .iter()
        .map(|e| {
            let i: usize = e.contact().as_str()[1..].parse().expect("c<N>");
            (&contacts[i], e)
        })
        .collect();
    let mut group = c.benchmark_group("b2b_rules");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    let mut scratch = MatchScratch::default();
    group.bench_function("match_event", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for (contact, event) in &pairs {
                matched += program.match_event(contact, event, event.at(), &mut scratch).rules.len();
            }
            black_box(matched)
        })
    });
    group.finish();
}

criterion_group!(benches, condition, match_events);
criterion_main!(benches);
