//! Small evaluation helpers shared by the real-data examples (included with `#[path]`):
//! ROC AUC by the Mann-Whitney statistic, precision and recall at a threshold, and the
//! location of the project's shared real-data directory.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data/<relative>` seen from the crate root, or the first command-line
/// argument when one is given.
pub fn data_path(relative: &str) -> PathBuf {
    match std::env::args().nth(1) {
        Some(arg) if !arg.starts_with('-') => PathBuf::from(arg),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(relative),
    }
}

/// The area under the ROC curve of `scores` for `labels`: the probability that a random
/// positive scores above a random negative, ties counting one half (the Mann-Whitney U
/// statistic divided by `positives * negatives`). `None` without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len());
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Walk groups of equal scores upward: each positive beats every negative below its
    // group and ties with the negatives inside it.
    let mut wins = 0.0f64;
    let mut negatives_below = 0.0f64;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        let (mut pos, mut neg) = (0.0f64, 0.0f64);
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            if pairs[j].1 {
                pos += 1.0;
            } else {
                neg += 1.0;
            }
            j += 1;
        }
        wins += pos * negatives_below + 0.5 * pos * neg;
        negatives_below += neg;
        i = j;
    }
    Some(wins / (positives * negatives))
}

/// Counts at a threshold: flagged means `score >= threshold`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AtThreshold {
    /// Flagged and positive.
    pub true_positives: usize,
    /// Flagged.
    pub flagged: usize,
    /// Positive.
    pub positives: usize,
}

impl AtThreshold {
    pub fn new(scores: &[f64], labels: &[bool], threshold: f64) -> AtThreshold {
        let mut c = AtThreshold { true_positives: 0, flagged: 0, positives: 0 };
        for (&s, &l) in scores.iter().zip(labels) {
            let flagged = s >= threshold;
            c.flagged += usize::from(flagged);
            c.positives += usize::from(l);
            c.true_positives += usize::from(flagged && l);
        }
        c
    }

    /// Share of flagged that are positive (0 when nothing is flagged).
    pub fn precision(&self) -> f64 {
        if self.flagged == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.flagged as f64
        }
    }

    /// Share of positives that are flagged (0 without positives).
    pub fn recall(&self) -> f64 {
        if self.positives == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.positives as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(auc(&[1.0, 2.0], &[false, true]), Some(1.0));
        assert_eq!(auc(&[2.0, 1.0], &[false, true]), Some(0.0));
        assert_eq!(auc(&[1.0, 1.0], &[false, true]), Some(0.5));
        assert_eq!(auc(&[1.0, 2.0, 2.0, 3.0], &[false, true, false, true]), Some(0.875));
        assert_eq!(auc(&[1.0], &[true]), None);
    }
}
