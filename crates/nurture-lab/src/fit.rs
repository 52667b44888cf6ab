//! Cross-validated fitting: the scorecard is fitted on each training fold, exported,
//! compiled by nurture and scored by nurture's `Scorer` on the held-out fold; the
//! out-of-fold integer scores give the reported AUC, the MQL threshold and the plots.
//! A final scorecard is then fitted on every row and exported.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::logit::{fit_valued, stratified_folds};
use crate::metrics::{auc, choose_threshold, mean_std, AtThreshold, Target};
use crate::scorecard::{Dataset, FitOptions, NurtureScorer, Scorecard};
use crate::table::Column;

/// Everything `fit` measured.
#[derive(Clone, Debug)]
pub struct FitResult {
    /// The final scorecard, fitted on all rows.
    pub card: Scorecard,
    /// The exported rule-set document.
    pub document: serde_json::Value,
    /// Out-of-fold integer scores, as nurture computed them.
    pub oof_scores: Vec<f64>,
    /// Out-of-fold probabilities the scores stand for under the scaling.
    pub oof_probabilities: Vec<f64>,
    /// AUC of the exported integer scorecard on each held-out fold.
    pub fold_auc: Vec<f64>,
    /// AUC of the floating-point scorecard model on each held-out fold.
    pub fold_auc_float: Vec<f64>,
    /// AUC of plain one-hot logistic regression on each held-out fold (same folds).
    pub fold_auc_baseline: Vec<f64>,
    /// The MQL threshold and the out-of-fold counts at it.
    pub mql: AtThreshold,
    /// Interactions kept in each fold's card (for the report).
    pub fold_interactions: Vec<usize>,
    /// Bands exported: (name, from).
    pub bands: Vec<(String, f64)>,
}

impl FitResult {
    /// Mean and standard deviation of the integer scorecard's held-out AUC.
    pub fn cv_auc(&self) -> (f64, f64) {
        mean_std(&self.fold_auc)
    }
}

/// Fits with `folds`-fold stratified cross-validation under `seed`.
///
/// # Errors
///
/// A fold with one class, or a document nurture refuses (a bug worth reporting).
pub fn cross_validate(
    data: &Dataset,
    folds: usize,
    seed: u64,
    options: &FitOptions,
    target: Target,
    name: &str,
) -> Result<FitResult> {
    let fold = stratified_folds(&data.labels, folds, seed);
    let n = data.rows();
    let mut oof_scores = vec![0.0; n];
    let mut oof_probabilities = vec![0.0; n];
    let (mut fold_auc, mut fold_auc_float, mut fold_auc_baseline, mut fold_interactions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 0..folds.max(2) {
        let (train, test): (Vec<usize>, Vec<usize>) = (0..n).partition(|&r| fold[r] != k);
        let card = Scorecard::fit(
            data,
            &train,
            &FitOptions { seed: seed.wrapping_add(k as u64), ..options.clone() },
        )?;
        let (lo, _) = card.range();
        let doc = card.document(name, lo as f64, &[]);
        let scorer = NurtureScorer::new(&doc.to_string(), data, None)?;
        let labels: Vec<bool> = test.iter().map(|&r| data.labels[r]).collect();
        let mut scores = Vec::with_capacity(test.len());
        let mut floats = Vec::with_capacity(test.len());
        for &r in &test {
            let s = scorer.score(data, r)?;
            oof_scores[r] = s;
            oof_probabilities[r] = card.score_probability(s);
            scores.push(s);
            floats.push(card.probability(data, r));
        }
        fold_auc.push(auc(&scores, &labels).unwrap_or(f64::NAN));
        fold_auc_float.push(auc(&floats, &labels).unwrap_or(f64::NAN));
        fold_auc_baseline.push(baseline_auc(data, &train, &test, options.lambda));
        fold_interactions.push(card.interactions.len());
    }
    let mql = choose_threshold(&oof_scores, &data.labels, target);
    let all: Vec<usize> = (0..n).collect();
    let card = Scorecard::fit(data, &all, &FitOptions { seed, ..options.clone() })?;
    let in_sample: Vec<f64> = all.iter().map(|&r| card.score(data, r) as f64).collect();
    let bands = decile_bands(&in_sample, card.range().0 as f64);
    let document = card.document(name, mql.threshold, &bands);
    Ok(FitResult {
        card,
        document,
        oof_scores,
        oof_probabilities,
        fold_auc,
        fold_auc_float,
        fold_auc_baseline,
        mql,
        fold_interactions,
        bands,
    })
}

/// One band per decile of `scores` (`decile_01` the lowest), the first starting at
/// `lowest` so that every reachable score is in a band; deciles that share a cut point
/// (ties) are merged.
pub fn decile_bands(scores: &[f64], lowest: f64) -> Vec<(String, f64)> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut cuts: BTreeMap<i64, usize> = BTreeMap::new();
    for d in 1..10 {
        if let Some(&s) = sorted.get(d * sorted.len() / 10) {
            cuts.entry(s.round() as i64).or_insert(d);
        }
    }
    let mut out = vec![("decile_01".to_string(), lowest.min(sorted.first().copied().unwrap_or(lowest)))];
    for (cut, d) in cuts {
        if (cut as f64) > out.last().map_or(f64::NEG_INFINITY, |b| b.1) {
            out.push((format!("decile_{:02}", d + 1), cut as f64));
        }
    }
    out
}

/// Plain logistic regression on one-hot categorical columns (every level seen in
/// training, missing as its own column) and standardised numeric columns (missing set
/// to the mean, with an indicator), fitted on `train` and measured on `test`.
pub fn baseline_auc(data: &Dataset, train: &[usize], test: &[usize], lambda: f64) -> f64 {
    let mut layout: Vec<BaselineColumn> = Vec::new();
    let mut next = 0u32;
    for (_, _, col) in &data.columns {
        match col {
            Column::Numeric(v) => {
                let xs: Vec<f64> = train.iter().filter_map(|&r| v[r]).collect();
                let (mean, std) = mean_std(&xs);
                let std = if std.is_finite() && std > 0.0 { std } else { 1.0 };
                let mean = if mean.is_finite() { mean } else { 0.0 };
                layout.push(BaselineColumn::Numeric { at: next, mean, std });
                next += 2;
            }
            Column::Categorical(v) => {
                let mut levels: BTreeMap<Option<&str>, u32> = BTreeMap::new();
                for &r in train {
                    let len = levels.len() as u32;
                    levels.entry(v[r].as_deref()).or_insert(next + len);
                }
                next += levels.len() as u32;
                layout.push(BaselineColumn::Levels(
                    levels.into_iter().map(|(k, j)| (k.map(str::to_string), j)).collect(),
                ));
            }
        }
    }
    let row = |r: usize| -> Vec<(u32, f64)> {
        let mut out = Vec::new();
        for ((_, _, col), l) in data.columns.iter().zip(&layout) {
            match (col, l) {
                (Column::Numeric(v), BaselineColumn::Numeric { at, mean, std }) => match v[r] {
                    Some(x) => out.push((*at, (x - mean) / std)),
                    None => out.push((at + 1, 1.0)),
                },
                (Column::Categorical(v), BaselineColumn::Levels(levels)) => {
                    if let Some(&j) = levels.get(&v[r]) {
                        out.push((j, 1.0));
                    }
                }
                _ => {}
            }
        }
        out
    };
    let rows: Vec<Vec<(u32, f64)>> = train.iter().map(|&r| row(r)).collect();
    let y: Vec<bool> = train.iter().map(|&r| data.labels[r]).collect();
    let model = fit_valued(&rows, &y, next as usize, lambda);
    let scores: Vec<f64> = test.iter().map(|&r| model.log_odds_valued(&row(r))).collect();
    let labels: Vec<bool> = test.iter().map(|&r| data.labels[r]).collect();
    auc(&scores, &labels).unwrap_or(f64::NAN)
}

enum BaselineColumn {
    Numeric { at: u32, mean: f64, std: f64 },
    Levels(BTreeMap<Option<String>, u32>),
}
