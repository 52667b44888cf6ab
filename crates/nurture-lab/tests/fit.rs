//! The lab's fitting pipeline on small committed fixtures.

use std::path::Path;

use nurture_lab::binning::{bin_categorical, bin_numeric, Bin, BinOptions, Cell};
use nurture_lab::fit::cross_validate;
use nurture_lab::logit::{fit, stratified_folds};
use nurture_lab::metrics::{auc, choose_threshold, AtThreshold, Target};
use nurture_lab::scorecard::{Dataset, FitOptions, NurtureScorer, Scorecard};
use nurture_lab::table::Table;
use nurture_lab::LabError;

fn fixture() -> Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contacts.csv");
    Table::read(&path, b';', &["Select".to_string()]).expect("fixture reads")
}

#[test]
fn auc_matches_a_hand_computed_case() {
    // Positives score 0.8, 0.4, 0.4; negatives 0.4, 0.1. Pairs (pos, neg):
    // (0.8,0.4)=1 (0.8,0.1)=1 (0.4,0.4)=0.5 (0.4,0.1)=1 (0.4,0.4)=0.5 (0.4,0.1)=1 -> 5/6.
    let scores = [0.8, 0.4, 0.4, 0.4, 0.1];
    let labels = [true, true, true, false, false];
    let a = auc(&scores, &labels).expect("both classes");
    assert!((a - 5.0 / 6.0).abs() < 1e-12, "{a}");
    assert_eq!(auc(&[1.0, 2.0], &[true, true]), None);
}

#[test]
fn logistic_fit_recovers_the_closed_form_solution() {
    // One binary feature: the maximum-likelihood fit is the log-odds of each group.
    // Group 0: 30 of 100 positive; group 1: 60 of 80 positive.
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for i in 0..100 {
        rows.push(vec![]);
        y.push(i < 30);
    }
    for i in 0..80 {
        rows.push(vec![0u32]);
        y.push(i < 60);
    }
    let m = fit(&rows, &y, 1, 0.0);
    let logit = |p: f64| (p / (1.0 - p)).ln();
    assert!((m.intercept - logit(0.3)).abs() < 1e-6, "{}", m.intercept);
    assert!((m.coefficients[0] - (logit(0.75) - logit(0.3))).abs() < 1e-6, "{:?}", m.coefficients);
    // A penalty shrinks the coefficient toward 0.
    let shrunk = fit(&rows, &y, 1, 50.0);
    assert!(shrunk.coefficients[0] > 0.0 && shrunk.coefficients[0] < m.coefficients[0]);
}

#[test]
fn numeric_binning_is_monotone_and_keeps_missing_apart() {
    // The rate rises with x in steps; the missing rows are mostly positive.
    let present: Vec<(f64, bool)> = (0..300).map(|i| (f64::from(i), (i * 7) % 10 < i / 30)).collect();
    let missing = vec![true; 20];
    let f = bin_numeric("x", "x", &present, &missing, &BinOptions::default());
    assert!(f.monotone);
    assert_eq!(f.bins.last(), Some(&Bin::Missing));
    let ranges: Vec<&Bin> = f.bins.iter().filter(|b| matches!(b, Bin::Range { .. })).collect();
    assert!(ranges.len() >= 2, "{:?}", f.bins);
    // Ranges tile the line: every value falls in exactly one.
    for x in [-5.0, 0.0, 17.5, 150.0, 299.0, 1e9] {
        assert_eq!(f.bins.iter().filter(|b| matches!(b, Bin::Range { lo, hi } if lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x < h))).count(), 1);
    }
    assert_eq!(f.assign(Cell::Missing), Some(f.bins.len() - 1));
    // Rates per range rise.
    let rate = |b: usize| {
        let rows: Vec<bool> =
            present.iter().filter(|(x, _)| f.assign(Cell::Number(*x)) == Some(b)).map(|p| p.1).collect();
        rows.iter().filter(|&&y| y).count() as f64 / rows.len() as f64
    };
    for b in 1..ranges.len() {
        assert!(rate(b) >= rate(b - 1), "bin {b}: {} < {}", rate(b), rate(b - 1));
    }
}

#[test]
fn categorical_binning_groups_rare_levels() {
    let mut present = Vec::new();
    for i in 0..100 {
        present.push(("common", i % 2 == 0));
    }
    for i in 0..40 {
        present.push(("second", i % 4 == 0));
    }
    present.push(("rare", true));
    present.push(("rarer", false));
    let f = bin_categorical("c", "c", &present, &[], &BinOptions::default());
    assert_eq!(f.bins[0], Bin::Level("common".into()));
    assert_eq!(f.bins[1], Bin::Level("second".into()));
    assert!(matches!(&f.bins[2], Bin::Other(k) if k.len() == 2));
    assert_eq!(f.assign(Cell::Text("rare")), Some(2));
    assert_eq!(f.assign(Cell::Text("never seen")), Some(2));
    assert_eq!(f.assign(Cell::Missing), None);
}

#[test]
fn csv_reading_handles_quotes_separators_and_missing_cells() {
    let t = fixture();
    assert_eq!(t.rows(), 400);
    let src = t.column("Lead Source").expect("column");
    assert!(t.columns[src].iter().flatten().any(|v| v == "O'Brien \"quoted\", inc"));
    let occ = t.column("Occupation").expect("column");
    assert!(t.columns[occ].iter().any(Option::is_none), "Select and empty cells are missing");
    assert!(!t.columns[occ].iter().flatten().any(|v| v == "Select"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let t = fixture();
    let e = Dataset::from_table(&t, "Nope", "yes", &[]).expect_err("no such column");
    assert!(e.to_string().contains("no column `Nope`") && e.to_string().contains("`Outcome`"), "{e}");
    let e = Dataset::from_table(&t, "Outcome", "maybe", &[]).expect_err("one class");
    assert!(e.to_string().contains("one class"), "{e}");
    let e = Dataset::from_table(&t, "Outcome", "yes", &["Missing Col".into()]).expect_err("bad drop");
    assert!(matches!(e, LabError::Data(_)));
    // A numeric column with one stray word.
    let text = (0..50).map(|i| format!("{i},{}\n", i % 2)).collect::<String>();
    let text = format!("x,y\n{text}oops,1\n");
    let t = Table::from_reader(text.as_bytes(), b',', &[]).expect("reads");
    let e = Dataset::from_table(&t, "y", "1", &[]).expect_err("stray value");
    assert!(e.to_string().contains("`oops`") && e.to_string().contains("line 52"), "{e}");
    // A ragged record names its line.
    let e = Table::from_reader("a,b\n1,2\n3\n".as_bytes(), b',', &[]).expect_err("ragged");
    assert!(e.to_string().contains("line: 3"), "{e}");
}

#[test]
fn identifiers_are_left_out() {
    let t = fixture();
    let d = Dataset::from_table(&t, "Outcome", "yes", &[]).expect("dataset");
    assert!(d.skipped.iter().any(|(n, why)| n == "Contact ID" && format!("{why:?}") == "Identifier"));
    assert_eq!(d.columns.len(), 4);
}

#[test]
fn exported_document_scores_like_the_lab() {
    let t = fixture();
    let d = Dataset::from_table(&t, "Outcome", "yes", &[]).expect("dataset");
    let all: Vec<usize> = (0..d.rows()).collect();
    let card = Scorecard::fit(&d, &all, &FitOptions::default()).expect("fit");
    let doc = card.document("fixture", 100.0, &[("low".into(), card.range().0 as f64)]).to_string();
    let scorer = NurtureScorer::new(&doc, &d, None).expect("nurture compiles the export");
    for r in 0..d.rows() {
        let lab = card.score(&d, r) as f64;
        let nurture = scorer.score(&d, r).expect("scores");
        assert_eq!(lab, nurture, "row {r}");
    }
    // The integer card ranks nearly as the floating-point model does.
    let ints: Vec<f64> = all.iter().map(|&r| card.score(&d, r) as f64).collect();
    let floats: Vec<f64> = all.iter().map(|&r| card.probability(&d, r)).collect();
    let (ai, af) = (auc(&ints, &d.labels).expect("auc"), auc(&floats, &d.labels).expect("auc"));
    assert!((ai - af).abs() < 0.01, "{ai} vs {af}");
    assert!(ai > 0.7, "the fixture has signal: {ai}");
}

#[test]
fn cross_validation_is_deterministic_for_a_seed() {
    let t = fixture();
    let d = Dataset::from_table(&t, "Outcome", "yes", &[]).expect("dataset");
    let o = FitOptions::default();
    let a = cross_validate(&d, 4, 11, &o, Target::Precision(0.7), "f").expect("cv");
    let b = cross_validate(&d, 4, 11, &o, Target::Precision(0.7), "f").expect("cv");
    assert_eq!(a.document, b.document);
    assert_eq!(a.fold_auc, b.fold_auc);
    assert_eq!(a.oof_scores, b.oof_scores);
    let c = cross_validate(&d, 4, 12, &o, Target::Precision(0.7), "f").expect("cv");
    assert_ne!(a.oof_scores, c.oof_scores);
    // The MQL threshold meets the target on the out-of-fold scores.
    assert!(a.mql.precision() >= 0.7 || a.mql.flagged == 0);
}

#[test]
fn folds_are_stratified() {
    let labels: Vec<bool> = (0..103).map(|i| i % 3 == 0).collect();
    let folds = stratified_folds(&labels, 5, 3);
    for k in 0..5 {
        let pos = (0..103).filter(|&i| folds[i] == k && labels[i]).count();
        assert!((6..=7).contains(&pos), "fold {k}: {pos}");
    }
}

#[test]
fn threshold_for_a_target_precision() {
    let scores = [10.0, 9.0, 8.0, 7.0, 6.0, 5.0];
    let labels = [true, true, false, true, false, false];
    let t = choose_threshold(&scores, &labels, Target::Precision(0.75));
    assert_eq!(t, AtThreshold::new(&scores, &labels, 7.0));
    let t = choose_threshold(&scores, &labels, Target::Recall(0.6));
    assert_eq!(t.threshold, 9.0);
}

#[test]
fn scoring_a_new_batch_keeps_constant_columns_and_text_fields() {
    let t = fixture();
    let d = Dataset::from_table(&t, "Outcome", "yes", &[]).expect("dataset");
    let all: Vec<usize> = (0..d.rows()).collect();
    let card = Scorecard::fit(&d, &all, &FitOptions::default()).expect("fit");
    let doc = card.document("fixture", 100.0, &[]).to_string();
    let program = nurture::Program::from_json(&doc).expect("compiles");
    // A batch where `Lead Source` is the same everywhere: the fit would drop it as a
    // constant, but scoring must still fill the field.
    let batch = "Visits;Minutes on site;Lead Source;Occupation;Outcome\n3;12.5;Referral;Student;yes\n1;2.0;Referral;;no\n";
    let table = Table::from_reader(batch.as_bytes(), b';', &[]).expect("reads");
    let b = Dataset::for_scoring(&table, "Outcome", "yes", program.schema()).expect("dataset");
    let scorer = NurtureScorer::new(&doc, &b, None).expect("scorer");
    let with = scorer.score(&b, 0).expect("scores");
    let table = Table::from_reader(batch.replace("Referral", "").as_bytes(), b';', &[]).expect("reads");
    let missing = Dataset::for_scoring(&table, "Outcome", "yes", program.schema()).expect("dataset");
    let without =
        NurtureScorer::new(&doc, &missing, None).expect("scorer").score(&missing, 0).expect("scores");
    let referral = card.features.iter().position(|f| f.column == "Lead Source").expect("a feature");
    let bin = card.features[referral].assign(Cell::Text("Referral")).expect("a bin");
    let missing_points =
        card.features[referral].assign(Cell::Missing).map_or(0, |b| card.points[referral][b]);
    assert_eq!(with - without, (card.points[referral][bin] - missing_points) as f64);
}
