//! Replays the real CDNOW purchase stream (69,659 purchases by 23,570 customers)
//! through a decaying engagement score, and measures how well the score at the end of
//! the calibration period predicts who buys again.
//!
//! ```text
//! cargo run --release --example cdnow_replay [-- path/to/CDNOW_master.txt]
//! ```
//!
//! Each row is a `purchase {cds, usd}` event for contact `customer_id` at midnight UTC
//! of its date. Purchases up to and including 1997-09-30 are replayed in time order, one
//! scorer state per customer; every score is read at 1997-09-30T23:59:59Z with decay
//! applied. The outcome is whether the customer buys again after 1997-09-30 (up to
//! 1998-06-30, the end of the data). The data is read at run time from
//! `../shared/data/cdnow/CDNOW_master.txt` and is not part of the repository; without
//! it the example says so and exits successfully.

#[path = "common/metrics.rs"]
mod metrics;

use std::collections::HashMap;
use std::time::Instant;

use nurture::scoring::{Decay, PointRule, ScoreModel, ScoreScratch, Scorer};
use nurture::{Contact, Duration, Event, Schema, Timestamp, Type};

/// The last calibration day (inclusive) and the last holdout day, as `YYYYMMDD`.
#[allow(clippy::inconsistent_digit_grouping)]
const CALIBRATION_END: u32 = 1997_09_30;
#[allow(clippy::inconsistent_digit_grouping)]
const HOLDOUT_END: u32 = 1998_06_30;

/// Half-lives tried, in days; the first is the headline.
const HALF_LIVES: &[i64] = &[90, 30, 180];

/// Points per purchase: 10 for buying at all, plus a little for value, at most 20 in
/// all. The value steps sit near the quartiles of purchase value ($14.49, $25.98,
/// $43.70; 90th percentile $71.45), looked at without the outcome.
const VALUE_POINTS: &[(f64, f64)] = &[(25.0, 2.0), (50.0, 3.0), (100.0, 5.0)];
const BASE_POINTS: f64 = 10.0;

/// How many times each replay is timed (the median is reported).
const TIMING_RUNS: usize = 7;

struct Purchase {
    customer: usize,
    date: u32,
    cds: i64,
    usd: f64,
}

fn parse(text: &str) -> Result<(Vec<String>, Vec<Purchase>), String> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut names = Vec::new();
    let mut purchases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || (n == 0 && cols[0] == "customer_id") {
            continue;
        }
        let bad = || format!("line {}: expected `customer_id [n] date number_of_cds dollar_value`", n + 1);
        // `CDNOW_sample.txt` has a second column (a new customer number) and no header.
        let (id, date, cds, usd) = match cols[..] {
            [id, date, cds, usd] | [id, _, date, cds, usd] => (id, date, cds, usd),
            _ => return Err(bad()),
        };
        let customer = *ids.entry(id).or_insert_with(|| {
            names.push(id.to_string());
            names.len() - 1
        });
        purchases.push(Purchase {
            customer,
            date: date.parse().map_err(|_| bad())?,
            cds: cds.parse().map_err(|_| bad())?,
            usd: usd.parse().map_err(|_| bad())?,
        });
    }
    Ok((names, purchases))
}

fn midnight(date: u32) -> Result<Timestamp, nurture::TimeError> {
    Timestamp::from_ymd_hms((date / 10_000) as i32, date / 100 % 100, date % 100, 0, 0, 0)
}

fn model(schema: &Schema, decay: Decay, name: &str) -> Result<ScoreModel, nurture::CompileError> {
    let purchase = schema.event_type_index("purchase").expect("declared");
    let mut model = ScoreModel::new(name).with_decay(decay).with_rule(PointRule::on_event(
        "purchase",
        purchase,
        None,
        BASE_POINTS,
    ));
    for &(usd, points) in VALUE_POINTS {
        let cond = nurture::condition::ConditionNames::default().compile(
            schema,
            Some("purchase"),
            &format!("event.usd >= {usd:.1}"),
        )?;
        model = model.with_rule(PointRule::on_event(format!("usd_{usd}_plus"), purchase, Some(cond), points));
    }
    Ok(model)
}

struct Replay {
    scores: Vec<f64>,
    events_per_sec: f64,
    seconds: f64,
}

/// Replays the events through one scorer, [`TIMING_RUNS`] times from fresh states, and
/// reads every customer's score at `read_at`.
fn replay(
    scorer: &Scorer,
    contacts: &[Contact],
    events: &[(usize, Event)],
    start: Timestamp,
    read_at: Timestamp,
) -> Result<Replay, nurture::scoring::ScoreError> {
    let mut timings = Vec::with_capacity(TIMING_RUNS);
    let mut scores = Vec::new();
    for _ in 0..TIMING_RUNS {
        let mut states: Vec<_> = contacts.iter().map(|_| scorer.new_state(start)).collect();
        let started = Instant::now();
        for (customer, event) in events {
            let _ = scorer
                .handle_event(
                    &mut states[*customer],
                    &contacts[*customer],
                    event,
                    &mut ScoreScratch::default(),
                )
                .cloned()?;
        }
        timings.push(started.elapsed().as_secs_f64());
        scores = states.iter().map(|s| scorer.value(s, 0, read_at).unwrap_or(0.0)).collect();
    }
    timings.sort_by(f64::total_cmp);
    let seconds = timings[timings.len() / 2];
    Ok(Replay { scores, events_per_sec: events.len() as f64 / seconds, seconds })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = metrics::data_path("cdnow/CDNOW_master.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            println!(
                "The CDNOW data is not available ({}: {e}); nothing to replay. It is real data kept \
                 outside the repository (see shared/data/README.md); pass its path as the first \
                 argument or place it at ../shared/data/cdnow/CDNOW_master.txt.",
                path.display()
            );
            return Ok(());
        }
    };
    let (names, purchases) = parse(&text)?;
    let n = names.len();
    println!("purchases: {} ({} rows, {n} customers)", path.display(), purchases.len());

    let schema =
        Schema::builder().event_type("purchase", [("cds", Type::Int), ("usd", Type::Double)]).build()?;
    let contacts: Vec<Contact> = names.iter().map(|id| schema.contact(id.as_str()).build()).collect();

    // Calibration events in time order (a stable sort keeps same-day rows in file order),
    // and per customer: calibration purchase count, last calibration day, holdout repeat.
    let mut frequency = vec![0u32; n];
    let mut last_day: Vec<Option<u32>> = vec![None; n];
    let mut repeats = vec![false; n];
    let mut events = Vec::new();
    for (row, p) in purchases.iter().enumerate() {
        if p.date <= CALIBRATION_END {
            frequency[p.customer] += 1;
            last_day[p.customer] = last_day[p.customer].max(Some(p.date));
            let event = schema
                .event(format!("row{row}"), names[p.customer].as_str(), "purchase", midnight(p.date)?)?
                .set("cds", p.cds)?
                .set("usd", p.usd)?
                .build();
            events.push((p.customer, event));
        } else if p.date <= HOLDOUT_END {
            repeats[p.customer] = true;
        }
    }
    events.sort_by_key(|(_, e)| e.at());
    let start = events.first().map(|(_, e)| e.at()).ok_or("no calibration purchases")?;
    let read_at = Timestamp::from_ymd_hms(1997, 9, 30, 23, 59, 59)?;
    let calibrated = frequency.iter().filter(|&&f| f > 0).count();
    let repeaters = repeats.iter().filter(|&&r| r).count();
    println!(
        "calibration: {} purchase events up to 1997-09-30 by {calibrated} customers; holdout: \
         {repeaters} of {n} customers ({:.1}%) buy again between 1997-10-01 and 1998-06-30",
        events.len(),
        100.0 * repeaters as f64 / n as f64
    );
    println!(
        "score: {BASE_POINTS} points per purchase, plus {} (at most {} per purchase); no cap on \
         the total; halves every half-life; read at {read_at}",
        VALUE_POINTS.iter().map(|(usd, p)| format!("+{p} from ${usd}")).collect::<Vec<_>>().join(", "),
        BASE_POINTS + VALUE_POINTS.iter().map(|(_, p)| p).sum::<f64>()
    );

    // Baselines: calibration purchase count; recency as minus the days since the last
    // calibration purchase (read at the end of 1997-09-30).
    let day_secs = 86_400.0;
    let recency: Vec<f64> = last_day
        .iter()
        .map(|d| match d {
            Some(d) => midnight(*d).map_or(f64::NEG_INFINITY, |t| {
                -((read_at.unix_seconds() - t.unix_seconds()) as f64 / day_secs).floor()
            }),
            None => f64::NEG_INFINITY,
        })
        .collect();
    let frequency: Vec<f64> = frequency.iter().map(|&f| f64::from(f)).collect();
    let auc_frequency = metrics::auc(&frequency, &repeats).ok_or("one outcome class is empty")?;
    let auc_recency = metrics::auc(&recency, &repeats).ok_or("one outcome class is empty")?;

    println!();
    println!("AUC for \"buys again in the holdout\" (Mann-Whitney, ties count half):");
    println!("  {:<38} {:>7} {:>14} {:>10}", "score", "AUC", "events/s", "replay");
    let mut headline = None;
    let runs = HALF_LIVES
        .iter()
        .map(|&d| {
            (
                format!("engagement, half-life {d} days"),
                Decay::HalfLife { half_life: Duration::from_days(d).unwrap() },
            )
        })
        .chain([("engagement, no decay (comparison)".to_string(), Decay::None)]);
    for (i, (label, decay)) in runs.enumerate() {
        let scorer = Scorer::new(vec![model(&schema, decay, "engagement")?], schema.event_types().count())?;
        let r = replay(&scorer, &contacts, &events, start, read_at)?;
        let auc = metrics::auc(&r.scores, &repeats).ok_or("one outcome class is empty")?;
        println!(
            "  {label:<38} {auc:>7.4} {:>14.0} {:>8.1}ms{}",
            r.events_per_sec,
            r.seconds * 1e3,
            if i == 0 { "  <- headline" } else { "" }
        );
        if i == 0 {
            headline = Some((auc, r.events_per_sec));
        }
    }
    println!("  {:<38} {auc_frequency:>7.4}", "baseline: purchase count");
    println!("  {:<38} {auc_recency:>7.4}", "baseline: recency (-days since last)");
    println!(
        "events/s: median of {TIMING_RUNS} replays of all calibration events through `handle_event` \
         (one state per customer, single thread); building the events is not timed"
    );

    let (auc, events_per_sec) = headline.ok_or("no half-life configured")?;
    println!(
        "{{\"customers\": {n}, \"events\": {}, \"auc\": {auc:.4}, \"auc_frequency\": {auc_frequency:.4}, \
         \"auc_recency\": {auc_recency:.4}, \"events_per_sec\": {events_per_sec:.0}}}",
        events.len()
    );
    Ok(())
}
