//! Automatic binning: numeric columns into ranges (monotone in the outcome rate where
//! the data supports it), categorical columns into their frequent levels plus one
//! group for rare ones, and missing values as a bin of their own.

use std::collections::HashMap;

/// One bin of a feature.
#[derive(Clone, Debug, PartialEq)]
pub enum Bin {
    /// The value is missing.
    Missing,
    /// `lo <= x < hi`; an open end is `None`.
    Range {
        /// Inclusive lower bound.
        lo: Option<f64>,
        /// Exclusive upper bound.
        hi: Option<f64>,
    },
    /// One categorical level.
    Level(String),
    /// Any present level not listed here (the rare levels seen, and unseen ones).
    Other(Vec<String>),
}

/// A cell as the binner sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Missing.
    Missing,
    /// A number.
    Number(f64),
    /// A categorical level.
    Text(&'a str),
}

/// A binned column.
#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    /// The CSV column.
    pub column: String,
    /// The contact field it becomes in the exported document.
    pub field: String,
    /// Whether the field is a number (else a string).
    pub numeric: bool,
    /// The bins, in order: ranges ascending or levels by frequency, then `Other`, then `Missing`.
    pub bins: Vec<Bin>,
    /// Whether the ranges' outcome rates are monotone (numeric only).
    pub monotone: bool,
    /// Information value on the rows it was binned from.
    pub iv: f64,
}

/// Binning settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinOptions {
    /// Fine classes before merging (numeric).
    pub fine_bins: usize,
    /// The most bins a numeric feature keeps.
    pub max_bins: usize,
    /// The least share of present rows in a numeric bin.
    pub min_share: f64,
    /// The least rows for a categorical level to keep its own bin.
    pub min_level_rows: usize,
    /// The most categorical levels kept (most frequent first); the rest are `Other`.
    pub max_levels: usize,
    /// Adjacent numeric bins whose rates differ by a chi-square below this are merged.
    pub merge_chi2: f64,
    /// The monotone binning is used when it keeps at least this share of the free one's IV.
    pub monotone_keep: f64,
}

impl Default for BinOptions {
    fn default() -> BinOptions {
        BinOptions {
            fine_bins: 20,
            max_bins: 10,
            min_share: 0.02,
            min_level_rows: 20,
            max_levels: 40,
            merge_chi2: 1.0,
            monotone_keep: 0.95,
        }
    }
}

impl Feature {
    /// The bin a cell falls in; `None` when no bin holds it (a missing value where the
    /// fit saw none).
    pub fn assign(&self, cell: Cell<'_>) -> Option<usize> {
        self.bins.iter().position(|b| match (b, cell) {
            (Bin::Missing, Cell::Missing) => true,
            (Bin::Range { lo, hi }, Cell::Number(x)) => {
                lo.is_none_or(|lo| x >= lo) && hi.is_none_or(|hi| x < hi)
            }
            (Bin::Level(l), Cell::Text(t)) => l == t,
            (Bin::Other(known), Cell::Text(t)) => !known.iter().any(|k| k == t),
            _ => false,
        })
    }
}

/// (positives, negatives)
type Counts = (f64, f64);

fn iv(bins: &[Counts]) -> f64 {
    let tp: f64 = bins.iter().map(|b| b.0).sum::<f64>().max(1.0);
    let tn: f64 = bins.iter().map(|b| b.1).sum::<f64>().max(1.0);
    bins.iter()
        .map(|&(p, n)| {
            let (dp, dn) = ((p + 0.5) / tp, (n + 0.5) / tn);
            (dp - dn) * (dp / dn).ln()
        })
        .sum()
}

fn chi2(a: Counts, b: Counts) -> f64 {
    let total = a.0 + a.1 + b.0 + b.1;
    let (cp, cn) = (a.0 + b.0, a.1 + b.1);
    let mut s = 0.0;
    for (row, rt) in [(a, a.0 + a.1), (b, b.0 + b.1)] {
        for (obs, ct) in [(row.0, cp), (row.1, cn)] {
            let exp = rt * ct / total;
            if exp > 0.0 {
                s += (obs - exp).powi(2) / exp;
            }
        }
    }
    s
}

/// A run of fine bins: `(first distinct value, counts)`.
#[derive(Clone, Copy, Debug)]
struct Run {
    lo: f64,
    counts: Counts,
}

fn merge(runs: &mut Vec<Run>, i: usize) {
    let next = runs.remove(i + 1);
    runs[i].counts.0 += next.counts.0;
    runs[i].counts.1 += next.counts.1;
}

/// Merges adjacent runs until at most `max` remain and every neighbouring pair differs
/// by a chi-square of at least `threshold`; the most similar pair goes first.
fn chi_merge(mut runs: Vec<Run>, max: usize, threshold: f64) -> Vec<Run> {
    while runs.len() > 1 {
        let (i, c) = (0..runs.len() - 1)
            .map(|i| (i, chi2(runs[i].counts, runs[i + 1].counts)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f64::INFINITY));
        if runs.len() <= max && c >= threshold {
            break;
        }
        merge(&mut runs, i);
    }
    runs
}

/// Pool-adjacent-violators: merges runs until their rates are monotone in `increasing`.
fn pava(mut runs: Vec<Run>, increasing: bool) -> Vec<Run> {
    let rate = |r: &Run| r.counts.0 / (r.counts.0 + r.counts.1).max(1e-12);
    let mut i = 0;
    while i + 1 < runs.len() {
        let violates = if increasing {
            rate(&runs[i]) > rate(&runs[i + 1])
        } else {
            rate(&runs[i]) < rate(&runs[i + 1])
        };
        if violates {
            merge(&mut runs, i);
            i = i.saturating_sub(1);
        } else {
            i += 1;
        }
    }
    runs
}

/// Bins a numeric column from `(value, outcome)` of the present rows and the outcomes
/// of the missing ones.
pub fn bin_numeric(
    column: &str,
    field: &str,
    present: &[(f64, bool)],
    missing: &[bool],
    o: &BinOptions,
) -> Feature {
    let mut sorted: Vec<(f64, bool)> = present.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Distinct values with their counts.
    let mut distinct: Vec<Run> = Vec::new();
    for &(x, y) in &sorted {
        match distinct.last_mut() {
            Some(r) if r.lo == x => {
                if y {
                    r.counts.0 += 1.0
                } else {
                    r.counts.1 += 1.0
                }
            }
            _ => distinct.push(Run { lo: x, counts: if y { (1.0, 0.0) } else { (0.0, 1.0) } }),
        }
    }
    // Fine classes of about equal size, never splitting a value.
    let n = sorted.len() as f64;
    let target = (n / o.fine_bins as f64).max(n * o.min_share).max(1.0);
    let mut fine: Vec<Run> = Vec::new();
    for r in distinct {
        match fine.last_mut() {
            Some(f) if f.counts.0 + f.counts.1 < target => {
                f.counts.0 += r.counts.0;
                f.counts.1 += r.counts.1;
            }
            _ => fine.push(r),
        }
    }
    if fine.len() > 1 {
        let last = fine.len() - 1;
        if fine[last].counts.0 + fine[last].counts.1 < n * o.min_share {
            merge(&mut fine, last - 1);
        }
    }
    let free = chi_merge(fine.clone(), o.max_bins, o.merge_chi2);
    // The direction of the trend: the sign of the rank correlation of bin and rate.
    let rates: Vec<f64> = fine.iter().map(|r| r.counts.0 / (r.counts.0 + r.counts.1).max(1e-12)).collect();
    let m = (rates.len() as f64 - 1.0) / 2.0;
    let slope: f64 = rates.iter().enumerate().map(|(i, r)| (i as f64 - m) * r).sum();
    let mono = chi_merge(pava(fine, slope >= 0.0), o.max_bins, o.merge_chi2);
    let counts = |runs: &[Run]| runs.iter().map(|r| r.counts).collect::<Vec<_>>();
    let (iv_free, iv_mono) = (iv(&counts(&free)), iv(&counts(&mono)));
    let monotone = iv_mono >= o.monotone_keep * iv_free;
    let runs = if monotone { mono } else { free };
    let mut bins: Vec<Bin> = (0..runs.len())
        .map(|i| Bin::Range { lo: (i > 0).then(|| runs[i].lo), hi: runs.get(i + 1).map(|r| r.lo) })
        .collect();
    let mut all = counts(&runs);
    if !missing.is_empty() {
        bins.push(Bin::Missing);
        let p = missing.iter().filter(|&&y| y).count() as f64;
        all.push((p, missing.len() as f64 - p));
    }
    Feature { column: column.into(), field: field.into(), numeric: true, bins, monotone, iv: iv(&all) }
}

/// Bins a categorical column from `(level, outcome)` of the present rows and the
/// outcomes of the missing ones.
pub fn bin_categorical(
    column: &str,
    field: &str,
    present: &[(&str, bool)],
    missing: &[bool],
    o: &BinOptions,
) -> Feature {
    let mut levels: HashMap<&str, Counts> = HashMap::new();
    for &(l, y) in present {
        let c = levels.entry(l).or_default();
        if y {
            c.0 += 1.0
        } else {
            c.1 += 1.0
        }
    }
    let mut by_count: Vec<(&str, Counts)> = levels.into_iter().collect();
    by_count.sort_by(|a, b| (b.1 .0 + b.1 .1).total_cmp(&(a.1 .0 + a.1 .1)).then(a.0.cmp(b.0)));
    let mut bins = Vec::new();
    let mut all = Vec::new();
    let mut other: Counts = (0.0, 0.0);
    let mut kept = Vec::new();
    let mut rare = false;
    for (i, &(l, c)) in by_count.iter().enumerate() {
        if i < o.max_levels && (c.0 + c.1) as usize >= o.min_level_rows {
            bins.push(Bin::Level(l.to_string()));
            kept.push(l.to_string());
            all.push(c);
        } else {
            rare = true;
            other.0 += c.0;
            other.1 += c.1;
        }
    }
    if rare || kept.is_empty() {
        bins.push(Bin::Other(kept));
        all.push(other);
    }
    if !missing.is_empty() {
        bins.push(Bin::Missing);
        let p = missing.iter().filter(|&&y| y).count() as f64;
        all.push((p, missing.len() as f64 - p));
    }
    Feature {
        column: column.into(),
        field: field.into(),
        numeric: false,
        bins,
        monotone: false,
        iv: iv(&all),
    }
}
