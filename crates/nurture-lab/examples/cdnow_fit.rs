//! Fits a repeat-purchase scorecard on the real CDNOW purchase stream: engagement
//! features from nurture's counters at the end of the calibration period
//! (1997-09-30), outcome "buys again afterwards" (to 1998-06-30), 5 stratified folds,
//! AUC of the exported integer scorecard as nurture scores it.
//!
//! ```text
//! cargo run --release -p nurture-lab --example cdnow_fit [-- path/to/CDNOW_master.txt [OUT_DIR]]
//! ```
//!
//! Without the data (it lives outside the repository, in `../shared/data/cdnow/`), the
//! example says so and exits successfully.

use std::path::PathBuf;

use nurture::Timestamp;
use nurture_lab::engagement::{features, HistoryTarget};
use nurture_lab::fit::cross_validate;
use nurture_lab::history::{History, HistoryContact, HistoryEvent};
use nurture_lab::metrics::Target;
use nurture_lab::scorecard::FitOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cdnow/CDNOW_master.txt")
    });
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: the CDNOW data is not at {} (it is kept outside the repository)", path.display());
        return Ok(());
    };
    let out = std::env::args().nth(2).map(PathBuf::from);
    let mut history = History::default();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() != 4 || cols[0] == "customer_id" {
            continue;
        }
        let bad = || format!("line {}: expected `customer_id date number_of_cds dollar_value`", n + 1);
        let date = cols[1];
        if date.len() != 8 {
            return Err(bad().into());
        }
        let at = Timestamp::parse(&format!("{}-{}-{}T00:00:00Z", &date[..4], &date[4..6], &date[6..]))?;
        let cds: f64 = cols[2].parse().map_err(|_| bad())?;
        let usd: f64 = cols[3].parse().map_err(|_| bad())?;
        if seen.insert(cols[0].to_string()) {
            history.contacts.push(HistoryContact { id: cols[0].to_string(), attributes: Default::default() });
        }
        let mut properties = serde_json::Map::new();
        properties.insert("cds".into(), cds.into());
        properties.insert("usd".into(), usd.into());
        history.events.push(HistoryEvent {
            id: format!("p{n}"),
            contact: cols[0].to_string(),
            event_type: "purchase".into(),
            at,
            properties,
        });
    }
    history.events.sort_by_key(|e| e.at);
    let target = HistoryTarget {
        cutoff: Timestamp::parse("1997-09-30T23:59:59Z")?,
        until: Some(Timestamp::parse("1998-06-30T23:59:59Z")?),
    };
    let started = std::time::Instant::now();
    let data = features(&history, target)?;
    let fit = cross_validate(&data, 5, 1, &FitOptions::default(), Target::Precision(0.6), "cdnow-repeat")?;
    let (cv, sd) = fit.cv_auc();
    let (bl, _) = nurture_lab::metrics::mean_std(&fit.fold_auc_baseline);
    let positives = data.labels.iter().filter(|&&l| l).count();
    println!("customers: {} ({} buy again after 1997-09-30)", data.rows(), positives);
    println!("features: {} from nurture counters and the purchase values", data.columns.len());
    println!("cross-validated AUC of the exported integer scorecard: {cv:.4} ± {sd:.4} (5 stratified folds, seed 1)");
    println!("plain logistic regression on the same features and folds: {bl:.4}");
    println!(
        "MQL-style threshold {} for precision 0.6: precision {:.3}, recall {:.3}",
        fit.mql.threshold,
        fit.mql.precision(),
        fit.mql.recall()
    );
    println!("took {:.1}s", started.elapsed().as_secs_f64());
    if let Some(dir) = out {
        nurture_lab::report::write_fit(
            &dir,
            &data,
            &fit,
            "cargo run --release -p nurture-lab --example cdnow_fit",
        )?;
        println!("wrote {}", dir.display());
    }
    println!(
        "{{\"customers\": {}, \"positives\": {positives}, \"cv_auc\": {cv:.4}, \"cv_auc_std\": {sd:.4}, \"baseline_auc\": {bl:.4}}}",
        data.rows()
    );
    Ok(())
}
