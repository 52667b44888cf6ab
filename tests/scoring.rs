//! The incremental scoring engine: repeat policies, caps, decay, thresholds with
//! hysteresis, wake-ups, explanations, and exactness against an independent oracle.

use nurture::scoring::{
    Bounds, Crossing, Decay, Group, PointRule, Rearm, Repeat, ScoreError, ScoreModel, ScoreScratch, Scorer,
    Threshold,
};
use nurture::{Contact, Duration, Event, Schema, Timestamp, Type};
use proptest::prelude::*;

const T0: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

fn schema() -> Schema {
    Schema::builder()
        .contact_field("job_title", Type::String)
        .contact_field("company_size", Type::Int)
        .event_type("page_visit", [("url", Type::String)])
        .event_type("email_clicked", [("campaign", Type::String)])
        .build()
        .unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(T0 + secs, 0).unwrap()
}

fn visit(schema: &Schema, n: usize, secs: i64, url: &str) -> Event {
    schema.event(format!("e{n}"), "c", "page_visit", at(secs)).unwrap().set("url", url).unwrap().build()
}

fn click(schema: &Schema, n: usize, secs: i64) -> Event {
    schema
        .event(format!("e{n}"), "c", "email_clicked", at(secs))
        .unwrap()
        .set("campaign", "x")
        .unwrap()
        .build()
}

fn contact(schema: &Schema, title: &str) -> Contact {
    schema.contact("c").set("job_title", title).unwrap().set("company_size", 500i64).unwrap().build()
}

/// Engagement: pricing +10 every time, docs +2 at most twice a day, any click +3 at least
/// an hour apart, first visit ever +5 once; 30-day half-life; cap 100. Fit: VP +15.
fn scorer(schema: &Schema) -> Scorer {
    let visit_type = schema.event_type_index("page_visit").unwrap();
    let click_type = schema.event_type_index("email_clicked").unwrap();
    let cond = |src: &str| {
        Some(nurture::condition::ConditionNames::default().compile(schema, Some("page_visit"), src).unwrap())
    };
    let model = ScoreModel::new("engagement")
        .with_decay(Decay::HalfLife { half_life: Duration::from_days(30).unwrap() })
        .with_bounds(Bounds { floor: None, cap: Some(100.0) })
        .with_rule(PointRule::on_event("pricing", visit_type, cond("event.url == '/pricing'"), 10.0))
        .with_rule(
            PointRule::on_event("docs", visit_type, cond("event.url.startsWith('/docs')"), 2.0)
                .repeat(Repeat::AtMost { max: 2, per: Duration::from_days(1).unwrap() }),
        )
        .with_rule(PointRule::on_event("careers", visit_type, cond("event.url == '/careers'"), -5.0))
        .with_rule(
            PointRule::on_event("click", click_type, None, 3.0)
                .min_interval(Duration::from_hours(1).unwrap()),
        )
        .with_rule(PointRule::on_event("first-visit", visit_type, None, 5.0).repeat(Repeat::Once))
        .with_rule(PointRule::fit(
            "vp",
            nurture::condition::ConditionNames::default()
                .compile(schema, None, "contact.job_title.contains('VP')")
                .unwrap(),
            15.0,
        ))
        .with_threshold("mql", Threshold { enter: 40.0, exit: 30.0, rearm: Rearm::EveryCrossing })
        .with_band("cold", 0.0)
        .with_band("warm", 20.0)
        .with_band("hot", 40.0);
    Scorer::new(vec![model], schema.event_types().count()).unwrap()
}

#[test]
fn points_repeat_policies_and_fit() {
    let schema = schema();
    let scorer = scorer(&schema);
    let c = contact(&schema, "VP Marketing");
    let mut state = scorer.new_state(at(0));
    let _ = scorer.handle_attributes(&mut state, &c, at(0)).unwrap();
    assert_eq!(scorer.value(&state, 0, at(0)), Some(15.0));

    // First visit ever (+5) to pricing (+10).
    let u = scorer
        .handle_event(&mut state, &c, &visit(&schema, 0, 0, "/pricing"), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let rules: Vec<&str> = u.changes.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(rules, ["pricing", "first-visit"]);
    assert_eq!(scorer.value(&state, 0, at(0)), Some(30.0));

    // Docs: only two awards in any day.
    for (n, s) in [(1, 10), (2, 20), (3, 30)] {
        let _ = scorer
            .handle_event(&mut state, &c, &visit(&schema, n, s, "/docs/api"), &mut ScoreScratch::default())
            .cloned()
            .unwrap();
    }
    let explained = scorer.explain(&state, 0, at(30)).unwrap();
    let docs: f64 = explained.rules.iter().filter(|(r, _)| r.as_str() == "docs").map(|(_, p)| p).sum();
    assert!((docs - 4.0).abs() < 1e-3, "{docs}");
    // A day later the window has room again.
    let _ = scorer
        .handle_event(&mut state, &c, &visit(&schema, 4, DAY + 10, "/docs/api"), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    assert_eq!(state_changes_for(&scorer, &state, "docs"), 3);

    // Clicks at least an hour apart.
    let u1 = scorer
        .handle_event(&mut state, &c, &click(&schema, 5, DAY + 100), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let u2 = scorer
        .handle_event(&mut state, &c, &click(&schema, 6, DAY + 200), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let u3 = scorer
        .handle_event(&mut state, &c, &click(&schema, 7, DAY + 4000), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    assert_eq!((u1.changes.len(), u2.changes.len(), u3.changes.len()), (1, 0, 1));
}

fn state_changes_for(scorer: &Scorer, state: &nurture::scoring::ContactScores, rule: &str) -> usize {
    scorer.explain(state, 0, at(10 * DAY)).unwrap().ledger.iter().filter(|e| e.rule.as_str() == rule).count()
}

#[test]
fn caps_hold_and_negative_points_subtract() {
    let schema = schema();
    let scorer = scorer(&schema);
    let c = contact(&schema, "Engineer");
    let mut state = scorer.new_state(at(0));
    for n in 0..20 {
        let _ = scorer
            .handle_event(
                &mut state,
                &c,
                &visit(&schema, n, n as i64, "/pricing"),
                &mut ScoreScratch::default(),
            )
            .cloned()
            .unwrap();
    }
    // Points past the cap are not kept: the score sits at (a hair under, by decay) 100.
    let full = scorer.value(&state, 0, at(20)).unwrap();
    assert!((99.99..=100.0).contains(&full), "{full}");
    let _ = scorer
        .handle_event(&mut state, &c, &visit(&schema, 99, 30, "/careers"), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let v = scorer.value(&state, 0, at(30)).unwrap();
    assert!((v - (full - 5.0)).abs() < 0.01, "a penalty counts at once: {v}");
}

#[test]
fn thresholds_cross_up_and_decay_crosses_down_at_the_woken_instant() {
    let schema = schema();
    let scorer = scorer(&schema);
    let c = contact(&schema, "Engineer");
    let mut state = scorer.new_state(at(0));
    let mut crossings = Vec::new();
    let mut wake = None;
    for n in 0..5 {
        let u = scorer
            .handle_event(
                &mut state,
                &c,
                &visit(&schema, n, n as i64 * 60, "/pricing"),
                &mut ScoreScratch::default(),
            )
            .cloned()
            .unwrap();
        crossings.extend(u.crossings.iter().map(|(_, name, c)| (name.clone(), *c)));
        wake = u.next_wake;
    }
    // 5 (first visit) + 50 (pricing) = 55: MQL entered once.
    assert_eq!(crossings, [("mql".to_string(), Crossing::Up)]);
    // Decay alone takes 55 below the `hot` band floor (40), then below the MQL exit
    // (30). The scorer says when each happens; one second earlier nothing has.
    let mut events = Vec::new();
    let mut wake = wake.expect("a decaying score above a threshold must wake");
    if scorer.value(&state, 0, wake).unwrap() >= 40.0 {
        // Kept from before later visits raised the score: a lower bound that finds
        // nothing to do and re-arms with the exact wake-up.
        let u = scorer.handle_timeout(&mut state, wake).unwrap();
        assert!(u.crossings.is_empty() && u.band_changes.is_empty());
        wake = u.next_wake.expect("still decaying above a threshold");
    }
    for target in [40.0, 30.0, 20.0] {
        let before =
            scorer.value(&state, 0, Timestamp::from_unix(wake.unix_seconds() - 1, 0).unwrap()).unwrap();
        let after = scorer.value(&state, 0, wake).unwrap();
        assert!(before >= target && after < target, "{target}: {before} {after}");
        let u = scorer.handle_timeout(&mut state, wake).unwrap();
        events.push((u.band_changes.len(), u.crossings.iter().map(|c| c.2).collect::<Vec<_>>()));
        wake = match u.next_wake {
            Some(w) => w,
            None => break,
        };
    }
    assert_eq!(
        events,
        [(1, vec![]), (0, vec![Crossing::Down]), (1, vec![])],
        "hot -> warm, then the MQL exit, then warm -> cold"
    );
}

#[test]
fn late_events_are_credited_at_their_own_instant() {
    let schema = schema();
    let scorer = scorer(&schema);
    let c = contact(&schema, "Engineer");
    let mut late = scorer.new_state(at(0));
    let mut scratch = ScoreScratch::default();
    scorer.handle_event(&mut late, &c, &visit(&schema, 0, 100, "/pricing"), &mut scratch).unwrap();
    scorer.handle_event(&mut late, &c, &visit(&schema, 1, 50, "/pricing"), &mut scratch).unwrap();
    assert_eq!(late.last_change(), at(100), "a late event does not move the state back");
    // The late pricing visit earns its 10 points at 50 s, decayed since; the once-only
    // first-visit rule had already fired at 100 s, as of the last change.
    let mut single = scorer.new_state(at(0));
    scorer.handle_event(&mut single, &c, &visit(&schema, 0, 100, "/pricing"), &mut scratch).unwrap();
    let late_points = 10.0 * 0.5f64.powf(150.0 / (30.0 * 86_400.0));
    let (a, b) = (scorer.value(&late, 0, at(200)).unwrap(), scorer.value(&single, 0, at(200)).unwrap());
    assert!((a - (b + late_points)).abs() <= 1e-9, "late {a} vs {b} + {late_points}");
    // A history that is not in time order is still refused by recomputation.
    let history = [visit(&schema, 0, 100, "/pricing"), visit(&schema, 1, 50, "/pricing")];
    assert_eq!(scorer.recompute(&c, &history, at(0)).map(|_| ()), Err(ScoreError::OutOfOrder));
}

#[test]
fn invalid_models_are_refused() {
    let model = ScoreModel::new("s").with_rule(PointRule::on_event(
        "r",
        schema().event_type_index("page_visit").unwrap(),
        None,
        f64::NAN,
    ));
    assert!(Scorer::new(vec![model], 2).is_err());
    let model =
        ScoreModel::new("s").with_threshold("t", Threshold { enter: 10.0, exit: 20.0, rearm: Rearm::Once });
    assert!(Scorer::new(vec![model], 2).is_err());
    let model = ScoreModel::new("s").with_groups(vec![Group::new("a")]).with_rule(
        PointRule::on_event("r", schema().event_type_index("page_visit").unwrap(), None, 1.0).in_group(3),
    );
    assert!(Scorer::new(vec![model], 2).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// For random histories: the incremental value at random read times equals an
    /// independent recomputation (every applied award decayed on its own from its own
    /// instant), the cap is never exceeded, decay never raises the score, no NaN appears,
    /// and recomputing from the history gives the same state.
    #[test]
    fn incremental_scores_equal_recomputation(
        steps in prop::collection::vec((0u8..4, 1i64..(5 * DAY)), 1..60),
        reads in prop::collection::vec(0i64..(200 * DAY), 1..10),
    ) {
        let schema = schema();
        let scorer = scorer(&schema);
        let c = contact(&schema, "Engineer");
        let mut state = scorer.new_state(at(0));
        let mut now = 0;
        let mut history = Vec::new();
        // Oracle: (instant, applied points) of every award; decayed independently.
        let mut awards: Vec<(i64, f64)> = Vec::new();
        let oracle = |awards: &[(i64, f64)], t: i64| -> f64 {
            awards.iter().map(|(s, p)| p * 0.5f64.powf((t - s) as f64 / (30.0 * DAY as f64))).sum()
        };
        for (n, (kind, gap)) in steps.into_iter().enumerate() {
            now += gap;
            let event = match kind {
                0 => visit(&schema, n, now, "/pricing"),
                1 => visit(&schema, n, now, "/docs/x"),
                2 => visit(&schema, n, now, "/careers"),
                _ => click(&schema, n, now),
            };
            let before = scorer.value(&state, 0, at(now)).unwrap();
            prop_assert!((before - oracle(&awards, now).clamp(0.0, 100.0)).abs() < 1e-6 * before.abs().max(1.0));
            let update = scorer.handle_event(&mut state, &c, &event, &mut ScoreScratch::default()).cloned().unwrap();
            for (_, _, delta) in &update.changes {
                awards.push((now, *delta));
            }
            let after = scorer.value(&state, 0, at(now)).unwrap();
            prop_assert!(after.is_finite() && (0.0..=100.0).contains(&after), "{after}");
            history.push(event);
        }
        let mut reads = reads;
        reads.sort_unstable();
        let mut last = f64::INFINITY;
        for r in reads {
            let t = now + r;
            let v = scorer.value(&state, 0, at(t)).unwrap();
            prop_assert!(v <= last, "decay raised the score: {last} -> {v}");
            prop_assert!((v - oracle(&awards, t)).abs() < 1e-6 * v.abs().max(1.0), "{v} vs {}", oracle(&awards, t));
            last = v;
        }
        let again = scorer.recompute(&c, &history, at(0)).unwrap();
        prop_assert_eq!(scorer.value(&again, 0, at(now)), scorer.value(&state, 0, at(now)));
    }
}

/// Two groups with different half-lives (so wake-ups are estimated by Newton's method
/// and settled), two thresholds and three bands.
fn two_speed_scorer(schema: &Schema) -> (Scorer, Vec<(String, Threshold)>, Vec<f64>) {
    let visit_type = schema.event_type_index("page_visit").unwrap();
    let click_type = schema.event_type_index("email_clicked").unwrap();
    let cond = |src: &str| {
        Some(nurture::condition::ConditionNames::default().compile(schema, Some("page_visit"), src).unwrap())
    };
    let thresholds = vec![
        ("mql".to_string(), Threshold { enter: 40.0, exit: 30.0, rearm: Rearm::EveryCrossing }),
        ("sales".to_string(), Threshold { enter: 70.0, exit: 55.0, rearm: Rearm::Once }),
    ];
    let bands = vec![0.0, 20.0, 50.0];
    let mut model = ScoreModel::new("engagement")
        .with_groups(vec![
            Group::new("slow")
                .bounds(Bounds { floor: None, cap: Some(80.0) })
                .decay(Decay::HalfLife { half_life: Duration::from_days(30).unwrap() }),
            Group::new("fast")
                .bounds(Bounds { floor: None, cap: Some(60.0) })
                .decay(Decay::HalfLife { half_life: Duration::from_hours(60).unwrap() }),
        ])
        .with_bounds(Bounds { floor: Some(0.0), cap: Some(100.0) })
        .with_rule(PointRule::on_event("pricing", visit_type, cond("event.url == '/pricing'"), 12.0))
        .with_rule(
            PointRule::on_event("docs", visit_type, cond("event.url.startsWith('/docs')"), 4.0).in_group(1),
        )
        .with_rule(PointRule::on_event("careers", visit_type, cond("event.url == '/careers'"), -6.0))
        .with_rule(PointRule::on_event("click", click_type, None, 7.0).in_group(1));
    for (name, t) in &thresholds {
        model = model.with_threshold(name.clone(), *t);
    }
    for (i, from) in bands.iter().enumerate() {
        model = model.with_band(format!("b{i}"), *from);
    }
    (Scorer::new(vec![model], schema.event_types().count()).unwrap(), thresholds, bands)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Events between wake-ups skip the threshold check; that must never lose or invent a
    /// crossing. The crossings reported equal those of checking the value after every
    /// event and every timeout, whether or not the host honours the wake-ups; and
    /// wake-ups are exact to the second: nothing crosses a second before one. An event
    /// that only raised scores may keep an earlier wake-up (a lower bound of the exact
    /// one, which may find nothing to do), but a wake-up computed at a timeout is the
    /// exact one: something crosses at it.
    #[test]
    fn skipped_checks_lose_no_crossing_and_wake_ups_are_exact(
        steps in prop::collection::vec((0u8..6, 1i64..(6 * DAY), any::<bool>()), 1..50),
    ) {
        let schema = schema();
        let (scorer, thresholds, bands) = two_speed_scorer(&schema);
        let c = contact(&schema, "Engineer");
        let mut state = scorer.new_state(at(0));
        let mut reference: Vec<ReferenceThreshold> = vec![Default::default(); thresholds.len()];
        let mut band: Option<usize> = None;
        // What checking the value at `t` reports: (threshold crossings, band change).
        let mut check = |state: &nurture::scoring::ContactScores, t: i64, reference: &mut Vec<ReferenceThreshold>| {
            let v = scorer.value(state, 0, at(t)).unwrap();
            let crossings: Vec<(String, Crossing)> = thresholds
                .iter()
                .zip(reference.iter_mut())
                .filter_map(|((name, th), s)| s.observe(th, v).map(|c| (name.clone(), c)))
                .collect();
            let now_band = bands.iter().rposition(|b| v >= *b);
            let changed = now_band != band;
            band = now_band;
            (crossings, changed)
        };
        let mut now = 0;
        let mut wake: Option<Timestamp> = None;
        // Whether `wake` was computed at a timeout (then exact) or kept by an event.
        let mut woken = false;
        for (n, (kind, gap, honour)) in steps.into_iter().enumerate() {
            let next = now + gap;
            while let Some(w) = wake.filter(|w| honour && w.unix_seconds() - T0 <= next) {
                let ws = w.unix_seconds() - T0;
                let mut early = state.clone();
                let u = scorer.handle_timeout(&mut early, at(ws - 1)).unwrap();
                prop_assert!(u.crossings.is_empty() && u.band_changes.is_empty(), "crossed before the wake-up");
                let u = scorer.handle_timeout(&mut state, w).unwrap();
                let (expected, band_changed) = check(&state, ws, &mut reference);
                prop_assert!(
                    !woken || !u.crossings.is_empty() || !u.band_changes.is_empty(),
                    "an exact wake-up with nothing to do"
                );
                let got: Vec<(String, Crossing)> = u.crossings.iter().map(|(_, n, c)| (n.clone(), *c)).collect();
                prop_assert_eq!(got, expected);
                prop_assert_eq!(!u.band_changes.is_empty(), band_changed);
                prop_assert_eq!(u.next_wake, scorer.next_wake(&state, w));
                wake = u.next_wake;
                woken = true;
            }
            now = next;
            let event = match kind {
                0 => visit(&schema, n, now, "/pricing"),
                1 => visit(&schema, n, now, "/docs/x"),
                2 => visit(&schema, n, now, "/careers"),
                3 => click(&schema, n, now),
                // Events no rule awards: only the threshold check can report anything.
                _ => visit(&schema, n, now, "/about"),
            };
            let u = scorer.handle_event(&mut state, &c, &event, &mut ScoreScratch::default()).cloned().unwrap();
            let (expected, band_changed) = check(&state, now, &mut reference);
            let got: Vec<(String, Crossing)> = u.crossings.iter().map(|(_, n, c)| (n.clone(), *c)).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(!u.band_changes.is_empty(), band_changed);
            // The event's wake-up is the exact one or an earlier one, never later.
            let exact = scorer.next_wake(&state, at(now));
            prop_assert!(
                u.next_wake.map_or(exact.is_none(), |w| w > at(now) && exact.is_none_or(|e| w <= e)),
                "wake-up {:?} after the exact {:?}", u.next_wake, exact
            );
            woken = u.next_wake == exact;
            wake = u.next_wake;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// The batch API gives the states and the updates of one call per event.
    #[test]
    fn batches_equal_one_event_at_a_time(
        steps in prop::collection::vec((0u8..6, 0i64..(2 * DAY), 0usize..3), 1..80),
        cuts in prop::collection::vec(1usize..20, 1..10),
    ) {
        use nurture::scoring::{BatchEvent, ScoreScratch, ScoreUpdate};
        let schema = schema();
        let (scorer, _, _) = two_speed_scorer(&schema);
        let contacts: Vec<Contact> = (0..3).map(|_| contact(&schema, "Engineer")).collect();
        let mut now = 0;
        let mut events = Vec::new();
        for (n, (kind, gap, who)) in steps.iter().copied().enumerate() {
            now += gap;
            let event = match kind {
                0 => visit(&schema, n, now, "/pricing"),
                1 => visit(&schema, n, now, "/docs/x"),
                2 => visit(&schema, n, now, "/careers"),
                3 => click(&schema, n, now),
                _ => visit(&schema, n, now, "/about"),
            };
            events.push((who, event));
        }
        let mut one: Vec<_> = (0..3).map(|_| scorer.new_state(at(0))).collect();
        let expected: Vec<ScoreUpdate> = events
            .iter()
            .map(|(who, e)| scorer.handle_event(&mut one[*who], &contacts[*who], e, &mut ScoreScratch::default()).cloned().unwrap())
            .collect();
        let mut many: Vec<_> = (0..3).map(|_| scorer.new_state(at(0))).collect();
        let mut scratch = ScoreScratch::default();
        let mut start = 0;
        for cut in cuts.iter().cycle() {
            if start >= events.len() {
                break;
            }
            let end = (start + cut).min(events.len());
            let batch: Vec<BatchEvent<'_>> = events[start..end]
                .iter()
                .map(|(who, event)| BatchEvent { state: *who, contact: &contacts[*who], event })
                .collect();
            let mut seen = vec![false; batch.len()];
            scorer.handle_batch(&mut many, &batch, &mut scratch, |i, update| {
                let update = update.expect("in order");
                let want = &expected[start + i];
                assert_eq!(update.changes, want.changes);
                assert_eq!(update.crossings, want.crossings);
                assert_eq!(update.band_changes, want.band_changes);
                assert_eq!(update.next_wake, want.next_wake);
                seen[i] = true;
            });
            prop_assert!(seen.iter().all(|s| *s), "every event reported once");
            start = end;
        }
        prop_assert_eq!(many, one);
    }
}

#[test]
fn foreign_states_and_bad_batch_indexes_are_errors_not_panics() {
    use nurture::scoring::{BatchEvent, ScoreScratch};
    let schema = schema();
    let (two, _, _) = two_speed_scorer(&schema);
    let one = scorer(&schema);
    let c = contact(&schema, "Engineer");
    let mut state = two.new_state(at(0));
    let before = state.clone();
    let e = visit(&schema, 0, 10, "/pricing");
    assert_eq!(
        one.handle_event(&mut state, &c, &e, &mut ScoreScratch::default()).cloned(),
        Err(ScoreError::ForeignState)
    );
    assert_eq!(one.handle_timeout(&mut state, at(20)), Err(ScoreError::ForeignState));
    assert_eq!(one.value(&state, 0, at(20)), None);
    assert!(one.explain(&state, 0, at(20)).is_none());
    assert_eq!(state, before);

    let mut states = vec![two.new_state(at(0))];
    let batch =
        [BatchEvent { state: 0, contact: &c, event: &e }, BatchEvent { state: 7, contact: &c, event: &e }];
    let mut results = Vec::new();
    two.handle_batch(&mut states, &batch, &mut ScoreScratch::default(), |i, u| results.push((i, u.err())));
    results.sort_by_key(|r| r.0);
    assert_eq!(results, [(0, None), (1, Some(ScoreError::NoSuchState))]);
}

#[test]
fn adjustments_are_explained_under_their_own_name() {
    let schema = schema();
    let scorer = scorer(&schema);
    let c = contact(&schema, "Engineer");
    let mut state = scorer.new_state(at(0));
    let _ = scorer
        .handle_event(&mut state, &c, &visit(&schema, 1, 0, "/pricing"), &mut ScoreScratch::default())
        .cloned()
        .unwrap();
    let _ = scorer.adjust(&mut state, 0, 7.0, at(10)).unwrap();
    let e = scorer.explain(&state, 0, at(10)).unwrap();
    let adjusted: f64 = e.rules.iter().filter(|(r, _)| r.as_str() == "adjust_score").map(|(_, p)| p).sum();
    assert!((adjusted - 7.0).abs() < 1e-12, "{:?}", e.rules);
    let total: f64 = e.rules.iter().map(|(_, p)| p).sum::<f64>() + e.fit;
    assert!((total - e.value).abs() < 1e-9, "{total} vs {}", e.value);
    assert_eq!(e.ledger.last().map(|l| l.rule.as_str()), Some("adjust_score"));
}

/// An independent model of a threshold with hysteresis and re-arm, for the properties.
#[derive(Clone, Copy, Debug, Default)]
struct ReferenceThreshold {
    inside: bool,
    ever_entered: bool,
}

impl ReferenceThreshold {
    fn observe(&mut self, threshold: &Threshold, value: f64) -> Option<Crossing> {
        if !self.inside && value >= threshold.enter {
            self.inside = true;
            let report = threshold.rearm != Rearm::Once || !self.ever_entered;
            self.ever_entered = true;
            return report.then_some(Crossing::Up);
        }
        if self.inside && value < threshold.exit {
            self.inside = false;
            return Some(Crossing::Down);
        }
        None
    }
}
