//! Ranking and classification metrics: ROC AUC, the ROC curve, cumulative gains,
//! calibration and precision and recall at a threshold.

/// The area under the ROC curve: the probability that a random positive scores above a
/// random negative, ties counting one half (Mann-Whitney U over `positives * negatives`).
/// `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let (mut wins, mut below, mut i) = (0.0f64, 0.0f64, 0);
    while i < pairs.len() {
        let (mut j, mut pos, mut neg) = (i, 0.0f64, 0.0f64);
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            if pairs[j].1 {
                pos += 1.0;
            } else {
                neg += 1.0;
            }
            j += 1;
        }
        wins += pos * below + 0.5 * pos * neg;
        below += neg;
        i = j;
    }
    Some(wins / (positives * negatives))
}

/// The ROC curve as `(false positive rate, true positive rate)` points from (0, 0) to
/// (1, 1), one point per distinct score, highest score first.
pub fn roc(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let p = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let n = (labels.len() as f64 - labels.iter().filter(|&&l| l).count() as f64).max(1.0);
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp, mut i) = (0.0, 0.0, 0);
    while i < pairs.len() {
        let s = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == s {
            if pairs[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push((fp / n, tp / p));
    }
    out
}

/// Counts at a threshold: flagged means `score >= threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtThreshold {
    /// The threshold.
    pub threshold: f64,
    /// Flagged and positive.
    pub true_positives: usize,
    /// Flagged.
    pub flagged: usize,
    /// Positive.
    pub positives: usize,
}

impl AtThreshold {
    /// Counts `scores >= threshold` against `labels`.
    pub fn new(scores: &[f64], labels: &[bool], threshold: f64) -> AtThreshold {
        let mut c = AtThreshold { threshold, true_positives: 0, flagged: 0, positives: 0 };
        for (&s, &l) in scores.iter().zip(labels) {
            let flagged = s >= threshold;
            c.flagged += usize::from(flagged);
            c.positives += usize::from(l);
            c.true_positives += usize::from(flagged && l);
        }
        c
    }

    /// The share of flagged that are positive (0 when nothing is flagged).
    pub fn precision(&self) -> f64 {
        if self.flagged == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.flagged as f64
        }
    }

    /// The share of positives flagged (0 without positives).
    pub fn recall(&self) -> f64 {
        if self.positives == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.positives as f64
        }
    }
}

/// What the MQL threshold is chosen for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The lowest threshold whose precision is at least this.
    Precision(f64),
    /// The highest threshold whose recall is at least this.
    Recall(f64),
}

/// The threshold (one of the scores) meeting `target`: for precision, the lowest score
/// at which flagging `score >= t` reaches the precision (the most leads at that
/// quality); for recall, the highest score that still reaches the recall. When no
/// score meets a precision target, the score with the best precision.
pub fn choose_threshold(scores: &[f64], labels: &[bool], target: Target) -> AtThreshold {
    let mut distinct: Vec<f64> = scores.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let all: Vec<AtThreshold> = distinct.iter().map(|&t| AtThreshold::new(scores, labels, t)).collect();
    let fallback = AtThreshold::new(scores, labels, distinct.first().copied().unwrap_or(0.0));
    match target {
        Target::Precision(p) => all
            .iter()
            .find(|a| a.flagged >= 1 && a.precision() >= p)
            .copied()
            .or_else(|| all.iter().copied().max_by(|a, b| a.precision().total_cmp(&b.precision())))
            .unwrap_or(fallback),
        Target::Recall(r) => all.iter().rev().find(|a| a.recall() >= r).copied().unwrap_or(fallback),
    }
}

/// One decile of a ranking, best first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decile {
    /// Rows in the decile.
    pub rows: usize,
    /// Positives in it.
    pub positives: usize,
    /// Share of all positives captured by this decile and the ones above it.
    pub cumulative_gain: f64,
    /// The decile's positive rate over the overall rate.
    pub lift: f64,
    /// The lowest score in the decile.
    pub min_score: f64,
}

/// Gains and lift by decile, highest scores first (ties are split by input order).
pub fn deciles(scores: &[f64], labels: &[bool]) -> Vec<Decile> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let total_pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let rate = total_pos / scores.len().max(1) as f64;
    let n = scores.len();
    let (mut out, mut cum) = (Vec::new(), 0usize);
    for d in 0..10 {
        let (lo, hi) = (d * n / 10, (d + 1) * n / 10);
        if hi == lo {
            continue;
        }
        let pos = order[lo..hi].iter().filter(|&&i| labels[i]).count();
        cum += pos;
        out.push(Decile {
            rows: hi - lo,
            positives: pos,
            cumulative_gain: cum as f64 / total_pos,
            lift: (pos as f64 / (hi - lo) as f64) / rate,
            min_score: scores[order[hi - 1]],
        });
    }
    out
}

/// Calibration: rows grouped into (up to) ten groups by predicted probability, each as
/// `(mean predicted, observed rate, rows)`.
pub fn calibration(probabilities: &[f64], labels: &[bool]) -> Vec<(f64, f64, usize)> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]).then(a.cmp(&b)));
    let n = order.len();
    (0..10)
        .filter_map(|d| {
            let group = &order[d * n / 10..(d + 1) * n / 10];
            (!group.is_empty()).then(|| {
                let mean = group.iter().map(|&i| probabilities[i]).sum::<f64>() / group.len() as f64;
                let rate = group.iter().filter(|&&i| labels[i]).count() as f64 / group.len() as f64;
                (mean, rate, group.len())
            })
        })
        .collect()
}

/// Mean and sample standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}
