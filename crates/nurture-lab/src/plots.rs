//! Plots as small, self-contained SVG files, written by hand (no plotting crate): ROC,
//! cumulative gains, calibration and the score distribution by outcome.

use std::fmt::Write as _;

use crate::metrics::{calibration, deciles, roc};

const W: f64 = 480.0;
const H: f64 = 360.0;
const L: f64 = 56.0;
const R: f64 = 16.0;
const T: f64 = 36.0;
const B: f64 = 48.0;
const BLUE: &str = "#1f6fb4";
const ORANGE: &str = "#e0701e";
const GREY: &str = "#999999";

/// A chart frame mapping data `[x0, x1] x [y0, y1]` onto the plot area.
struct Frame {
    svg: String,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Frame {
    fn new(title: &str, xlabel: &str, ylabel: &str, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> Frame {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = write!(
            svg,
            r#"<text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
            W / 2.0,
            esc(title)
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            L + (W - L - R) / 2.0,
            H - 10.0,
            esc(xlabel)
        );
        let _ = write!(
            svg,
            r#"<text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
            T + (H - T - B) / 2.0,
            T + (H - T - B) / 2.0,
            esc(ylabel)
        );
        let mut f = Frame { svg, x0, x1, y0, y1 };
        let _ = write!(
            f.svg,
            r#"<rect x="{L}" y="{T}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            W - L - R,
            H - T - B
        );
        for i in 0..=5 {
            let (vx, vy) = (x0 + (x1 - x0) * i as f64 / 5.0, y0 + (y1 - y0) * i as f64 / 5.0);
            let (px, py) = (f.px(vx), f.py(vy));
            let _ = write!(
                f.svg,
                r#"<line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="black"/>"#,
                H - B,
                H - B + 4.0
            );
            let _ = write!(
                f.svg,
                r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - B + 16.0,
                fmt_tick(vx)
            );
            let _ = write!(
                f.svg,
                r#"<line x1="{}" y1="{py:.1}" x2="{L}" y2="{py:.1}" stroke="black"/>"#,
                L - 4.0
            );
            let _ = write!(
                f.svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                L - 6.0,
                py + 4.0,
                fmt_tick(vy)
            );
        }
        f
    }

    fn px(&self, x: f64) -> f64 {
        L + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (W - L - R)
    }

    fn py(&self, y: f64) -> f64 {
        H - B - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (H - T - B)
    }

    fn line(&mut self, points: &[(f64, f64)], color: &str, dashed: bool) {
        let d: Vec<String> =
            points.iter().map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y))).collect();
        let dash = if dashed { r#" stroke-dasharray="4 3""# } else { "" };
        let _ = write!(
            self.svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            d.join(" ")
        );
    }

    fn dots(&mut self, points: &[(f64, f64)], color: &str) {
        for &(x, y) in points {
            let _ = write!(
                self.svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                self.px(x),
                self.py(y)
            );
        }
    }

    fn legend(&mut self, items: &[(&str, &str)]) {
        for (i, (name, color)) in items.iter().enumerate() {
            let y = T + 14.0 + 16.0 * i as f64;
            let _ = write!(
                self.svg,
                r#"<rect x="{}" y="{}" width="12" height="4" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                L + 10.0,
                y - 4.0,
                L + 26.0,
                y,
                esc(name)
            );
        }
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The ROC curve, with the AUC in the title.
pub fn roc_svg(scores: &[f64], labels: &[bool], auc: f64) -> String {
    let mut f = Frame::new(
        &format!("ROC (AUC {auc:.3})"),
        "false positive rate",
        "true positive rate",
        (0.0, 1.0),
        (0.0, 1.0),
    );
    f.line(&[(0.0, 0.0), (1.0, 1.0)], GREY, true);
    f.line(&roc(scores, labels), BLUE, false);
    f.finish()
}

/// Cumulative gains by decile: the share of positives found in the top x% of scores.
pub fn gains_svg(scores: &[f64], labels: &[bool]) -> String {
    let mut f = Frame::new(
        "Cumulative gains",
        "share of contacts, best scores first",
        "share of positives found",
        (0.0, 1.0),
        (0.0, 1.0),
    );
    f.line(&[(0.0, 0.0), (1.0, 1.0)], GREY, true);
    let d = deciles(scores, labels);
    let mut pts = vec![(0.0, 0.0)];
    let mut rows = 0;
    for x in &d {
        rows += x.rows;
        pts.push((rows as f64 / scores.len().max(1) as f64, x.cumulative_gain));
    }
    f.line(&pts, BLUE, false);
    f.dots(&pts[1..], BLUE);
    f.finish()
}

/// Calibration: observed positive rate against the probability the score stands for,
/// by tenth of the predictions.
pub fn calibration_svg(probabilities: &[f64], labels: &[bool]) -> String {
    let mut f = Frame::new(
        "Calibration",
        "predicted probability (from the points)",
        "observed rate",
        (0.0, 1.0),
        (0.0, 1.0),
    );
    f.line(&[(0.0, 0.0), (1.0, 1.0)], GREY, true);
    let pts: Vec<(f64, f64)> =
        calibration(probabilities, labels).into_iter().map(|(p, o, _)| (p, o)).collect();
    f.line(&pts, BLUE, false);
    f.dots(&pts, BLUE);
    f.finish()
}

/// Histograms of the score, positives and negatives, each as a share of its class,
/// with the MQL threshold marked.
pub fn distribution_svg(scores: &[f64], labels: &[bool], threshold: f64) -> String {
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let bins = 30usize;
    let width = (hi - lo) / bins as f64;
    let mut hist = [vec![0.0; bins], vec![0.0; bins]];
    let counts = [
        labels.iter().filter(|&&l| !l).count().max(1) as f64,
        labels.iter().filter(|&&l| l).count().max(1) as f64,
    ];
    for (&s, &l) in scores.iter().zip(labels) {
        let b = (((s - lo) / width) as usize).min(bins - 1);
        hist[usize::from(l)][b] += 1.0 / counts[usize::from(l)];
    }
    let top = hist.iter().flatten().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let mut f = Frame::new("Score by outcome", "score", "share of the class", (lo, hi), (0.0, top));
    for (class, color) in [(0usize, ORANGE), (1, BLUE)] {
        let mut pts = Vec::new();
        for (b, &v) in hist[class].iter().enumerate() {
            let x = lo + width * b as f64;
            pts.push((x, v));
            pts.push((x + width, v));
        }
        f.line(&pts, color, false);
    }
    if threshold.is_finite() && threshold >= lo && threshold <= hi {
        f.line(&[(threshold, 0.0), (threshold, top)], GREY, true);
    }
    f.legend(&[("converted", BLUE), ("not converted", ORANGE), ("MQL threshold (dashed)", GREY)]);
    f.finish()
}
