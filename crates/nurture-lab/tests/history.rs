//! Replay and shadow diff on a small committed history.

use std::path::PathBuf;
use std::sync::Arc;

use nurture::{Program, Timestamp};
use nurture_lab::history::{diff, replay, History};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history").join(name)
}

fn program(name: &str) -> Arc<Program> {
    let text = std::fs::read_to_string(path(name)).expect("fixture");
    Arc::new(Program::from_json(&text).expect("compiles"))
}

fn history() -> History {
    History::read(Some(&path("contacts.jsonl")), &path("events.jsonl")).expect("reads")
}

#[test]
fn replay_summarises_effects() {
    let h = history();
    assert_eq!(h.contacts.len(), 3);
    assert!(h.events.windows(2).all(|w| w[0].at <= w[1].at), "events in time order");
    let r = replay(program("live.json"), &h, None).expect("replays");
    assert_eq!(r.events, (5, 1), "the undeclared `webinar` event is skipped");
    let counts = r.counts();
    // b's demo form crosses mql (30) at once; a reaches 20 (two pricing visits), not 30.
    assert_eq!(counts.get("threshold:lead/mql/up"), Some(&1));
    assert_eq!(counts.get("action:mql-alert"), Some(&1));
    assert_eq!(counts.get("enter:engaged"), Some(&2));
    let a = &r.contacts.iter().find(|(id, _)| id == "a").expect("a").1;
    assert_eq!(a.scores.get("lead"), Some(&20.0));
    assert!(a.segments.contains("engaged"));
}

#[test]
fn replay_stops_at_the_cut_off() {
    let until = Timestamp::parse("2026-01-01T23:59:59Z").expect("time");
    let r = replay(program("live.json"), &history(), Some(until)).expect("replays");
    let a = &r.contacts.iter().find(|(id, _)| id == "a").expect("a").1;
    assert_eq!(a.scores.get("lead"), Some(&10.0));
}

#[test]
fn diff_shows_what_a_candidate_changes() {
    let h = history();
    let live = replay(program("live.json"), &h, None).expect("replays");
    let cand = replay(program("candidate.json"), &h, None).expect("replays");
    let d = diff(&live, &cand);
    // With 15 points a visit and the MQL at 25, `a` becomes an MQL at its second pricing visit.
    assert!(
        d.effects.iter().any(|(l, x, y)| l == "action:mql-alert" && *x == 1 && *y == 2),
        "{:?}",
        d.effects
    );
    assert_eq!(d.effect_contacts.get("action:mql-alert"), Some(&vec!["a".to_string()]));
    let moved: Vec<_> = d.crossings.iter().filter(|c| c.1 == "a").collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].2, None);
    assert_eq!(moved[0].3, Some(Timestamp::parse("2026-01-02T10:00:00Z").expect("time")));
    let lead = d.scores.iter().find(|s| s.0 == "lead").expect("lead");
    assert_eq!(lead.5, 1, "only a's score changes");
    let same = diff(&live, &live);
    assert!(same.effects.is_empty() && same.crossings.is_empty() && same.segments.is_empty(), "{same:?}");
    assert!(same.scores.iter().all(|s| s.5 == 0), "a program against itself changes nothing");
}

#[test]
fn engagement_features_come_from_nurture_counters_at_the_cut_off() {
    use nurture_lab::binning::Cell;
    use nurture_lab::engagement::{features, HistoryTarget};
    let target =
        HistoryTarget { cutoff: Timestamp::parse("2026-01-02T00:00:00Z").expect("time"), until: None };
    let d = features(&history(), target).expect("features");
    // `c` has no event before the cut-off; `a` comes back after it, `b` does not.
    assert_eq!(d.rows(), 2);
    assert_eq!(d.labels, vec![true, false]);
    let col = |name: &str| d.columns.iter().position(|c| c.1 == name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(d.cell(col("page_visit_7d"), 0), Cell::Number(2.0));
    assert_eq!(d.cell(col("page_visit_all"), 1), Cell::Number(0.0));
    assert_eq!(d.cell(col("form_submit_30d"), 1), Cell::Number(1.0));
    assert_eq!(d.cell(col("days_since_last"), 0), Cell::Number(0.0));
    assert!(
        d.columns.iter().all(|c| c.1 != "webinar_all"),
        "types seen only after the cut-off are not features: {:?}",
        d.columns.iter().map(|c| &c.1).collect::<Vec<_>>()
    );
}

#[test]
fn backtest_scores_at_the_cut_off_against_what_happened_after() {
    let cutoff = Timestamp::parse("2026-01-02T00:00:00Z").expect("time");
    let (ids, scores, labels) =
        nurture_lab::history::backtest(program("live.json"), &history(), cutoff, None, None)
            .expect("backtest");
    // `c` had no event by the cut-off; `a` (one pricing visit, one docs visit) comes back, `b` does not.
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(scores, [10.0, 30.0]);
    assert_eq!(labels, [true, false]);
    assert!(
        nurture_lab::history::backtest(program("live.json"), &history(), cutoff, None, Some("nope")).is_err()
    );
}
