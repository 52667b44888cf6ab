//! Writing a fit's outputs: the rule set, the plots and an HTML report.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{LabError, Result};
use crate::fit::FitResult;
use crate::metrics::{auc, deciles, mean_std, AtThreshold};
use crate::plots;
use crate::scorecard::Dataset;

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| LabError::Input(format!("cannot write {}: {e}", path.display())))
}

/// Writes the four plots of `scores` against `labels` into `dir`; returns their file names.
///
/// # Errors
///
/// A file that cannot be written.
pub fn write_plots(
    dir: &Path,
    scores: &[f64],
    probabilities: &[f64],
    labels: &[bool],
    threshold: f64,
) -> Result<Vec<&'static str>> {
    let a = auc(scores, labels).unwrap_or(f64::NAN);
    write(dir, "roc.svg", &plots::roc_svg(scores, labels, a))?;
    write(dir, "gains.svg", &plots::gains_svg(scores, labels))?;
    write(dir, "calibration.svg", &plots::calibration_svg(probabilities, labels))?;
    write(dir, "score_distribution.svg", &plots::distribution_svg(scores, labels, threshold))?;
    Ok(vec!["roc.svg", "gains.svg", "calibration.svg", "score_distribution.svg"])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A table of gains by decile, as HTML.
pub fn deciles_html(scores: &[f64], labels: &[bool]) -> String {
    let mut h = String::from("<table><tr><th>decile</th><th>rows</th><th>positives</th><th>rate</th><th>lift</th><th>cumulative gain</th><th>lowest score</th></tr>");
    for (i, d) in deciles(scores, labels).iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.2}</td><td>{:.3}</td><td>{}</td></tr>",
            i + 1,
            d.rows,
            d.positives,
            d.positives as f64 / d.rows.max(1) as f64,
            d.lift,
            d.cumulative_gain,
            d.min_score
        );
    }
    h.push_str("</table>");
    h
}

/// Precision and recall at a few thresholds, as HTML.
pub fn thresholds_html(scores: &[f64], labels: &[bool], thresholds: &[f64]) -> String {
    let mut h =
        String::from("<table><tr><th>threshold</th><th>flagged</th><th>precision</th><th>recall</th></tr>");
    for &t in thresholds {
        let a = AtThreshold::new(scores, labels, t);
        let _ = write!(
            h,
            "<tr><td>{t}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            a.flagged,
            a.precision(),
            a.recall()
        );
    }
    h.push_str("</table>");
    h
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}img{margin:4px}code{background:#f4f4f4}";

/// Writes `model.json`, the plots and `report.html` for a fit into `dir`.
///
/// # Errors
///
/// A directory or file that cannot be written.
pub fn write_fit(dir: &Path, data: &Dataset, fit: &FitResult, command: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LabError::Input(format!("cannot create {}: {e}", dir.display())))?;
    let doc = serde_json::to_string_pretty(&fit.document).map_err(|e| LabError::Data(e.to_string()))?;
    write(dir, "model.json", &(doc + "\n"))?;
    let images = write_plots(dir, &fit.oof_scores, &fit.oof_probabilities, &data.labels, fit.mql.threshold)?;
    let (cv, cv_std) = fit.cv_auc();
    let (fl, fl_std) = mean_std(&fit.fold_auc_float);
    let (bl, bl_std) = mean_std(&fit.fold_auc_baseline);
    let mut h = String::new();
    let _ = write!(h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>nurture-lab fit</title><style>{STYLE}</style></head><body>");
    let _ = write!(h, "<h1>Scorecard fit</h1><p><code>{}</code></p>", esc(command));
    let positives = data.labels.iter().filter(|&&l| l).count();
    let _ = write!(
        h,
        "<p>{} rows, {} positives ({:.1}%), {} features, {} rules (one per bin, plus <code>base</code>).</p>",
        data.rows(),
        positives,
        100.0 * positives as f64 / data.rows().max(1) as f64,
        fit.card.features.len(),
        fit.card.rule_count()
    );
    let _ = write!(h, "<h2>Cross-validated AUC ({} stratified folds)</h2><table><tr><th>model</th><th>mean AUC</th><th>std</th><th>per fold</th></tr>", fit.fold_auc.len());
    for (name, m, s, v) in [
        ("exported integer scorecard, scored by nurture", cv, cv_std, &fit.fold_auc),
        ("the same scorecard before rounding to points", fl, fl_std, &fit.fold_auc_float),
        ("plain logistic regression on one-hot columns", bl, bl_std, &fit.fold_auc_baseline),
    ] {
        let per: Vec<String> = v.iter().map(|a| format!("{a:.4}")).collect();
        let _ = write!(h, "<tr><td>{name}</td><td>{m:.4}</td><td>{s:.4}</td><td>{}</td></tr>", per.join(" "));
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<p>MQL threshold <b>{}</b> (chosen on the out-of-fold scores): {} flagged, precision {:.3}, recall {:.3}.</p>",
        fit.mql.threshold,
        fit.mql.flagged,
        fit.mql.precision(),
        fit.mql.recall()
    );
    h.push_str("<h2>Plots (out-of-fold scores)</h2>");
    for i in &images {
        let _ = write!(h, "<img src=\"{i}\" alt=\"{i}\">");
    }
    h.push_str("<h2>Gains by decile (out-of-fold)</h2>");
    h.push_str(&deciles_html(&fit.oof_scores, &data.labels));
    let _ = write!(
        h,
        "<h2>The scorecard</h2><p>Scaling: {} points at even odds; every {} points double the odds. Each feature's lowest bin is worth 0.</p>",
        fit.card.base, fit.card.pdo
    );
    h.push_str("<table><tr><th>rule</th><th>meaning</th><th>points</th></tr>");
    for (id, _, points, label) in fit.card.rules() {
        let _ =
            write!(h, "<tr><td><code>{}</code></td><td>{}</td><td>{points}</td></tr>", esc(&id), esc(&label));
    }
    h.push_str("</table><h2>Columns not used</h2><ul>");
    for (name, why) in &data.skipped {
        let _ = write!(h, "<li>{}: {why:?}</li>", esc(name));
    }
    h.push_str("</ul><h2>Bands</h2><ul>");
    for (name, from) in &fit.bands {
        let _ = write!(h, "<li>{name}: from {from}</li>");
    }
    h.push_str("</ul></body></html>\n");
    write(dir, "report.html", &h)
}
