//! When decay alone next moves a score below a level: estimated from the score's shape
//! (a constant plus exponential terms) or by a search with the platform's fast
//! functions, then settled with the exact arithmetic, so that the answer is the same
//! on every machine.

use smallvec::SmallVec;

use crate::time::{Duration, Timestamp};

/// How far ahead a wake-up is searched: about 12,700 years, past every timestamp.
const MAX_SECONDS: i64 = 400_000_000_000;

/// A value of the form `constant + Σ amount · 2^(-t / half_life)`, with `t` in seconds
/// from now.
#[derive(Clone, Debug, Default)]
pub(crate) struct DecayForm {
    pub(crate) constant: f64,
    /// (amount, half-life in seconds), one per distinct half-life.
    terms: SmallVec<[(f64, f64); 2]>,
}

impl DecayForm {
    /// Adds `amount · 2^(-t / half_life)`.
    pub(crate) fn add_term(&mut self, amount: f64, half_life: f64) {
        match self.terms.iter_mut().find(|(_, h)| *h == half_life) {
            Some(term) => term.0 += amount,
            None => self.terms.push((amount, half_life)),
        }
    }

    /// Adds `weight` times another form.
    pub(crate) fn add_scaled(&mut self, other: &DecayForm, weight: f64) {
        self.constant += weight * other.constant;
        for &(amount, half_life) in &other.terms {
            self.add_term(weight * amount, half_life);
        }
    }

    /// Estimated seconds from now until the value falls below `target`; `None` when it
    /// never does (or the form is not one the estimate handles). The caller settles the
    /// instant exactly.
    pub(crate) fn crossing(&self, target: f64) -> Option<i64> {
        let excess = target - self.constant;
        let total: f64 = self.terms.iter().map(|(a, _)| a).sum();
        if !(excess > 0.0 && total > excess) || self.terms.iter().any(|(a, h)| *a < 0.0 || *h <= 0.0) {
            return None;
        }
        let ratio = (total / excess).log2();
        let shortest = self.terms.iter().map(|(_, h)| *h).fold(f64::INFINITY, f64::min);
        // Every term decays at least as fast as the slowest, at most as fast as the
        // fastest: the crossing lies at or after `shortest · ratio`. From there Newton's
        // method on log2 of the decaying part (convex and decreasing, and linear for a
        // single half-life) climbs to the crossing without overshooting, in a few steps.
        let mut t = shortest * ratio;
        if self.terms.len() > 1 {
            let goal = excess.log2();
            for _ in 0..60 {
                let (mut sum, mut rate) = (0.0, 0.0);
                for &(amount, half_life) in &self.terms {
                    let term = amount * (-t / half_life).exp2();
                    sum += term;
                    rate += term / half_life;
                }
                let gap = sum.log2() - goal;
                if !(gap > 0.0 && rate > 0.0) {
                    break;
                }
                // d/dt log2(sum) = -rate / sum.
                let step = gap * sum / rate;
                t += step;
                if step < 0.25 {
                    break;
                }
            }
        }
        (0.0..MAX_SECONDS as f64).contains(&t).then(|| t.ceil() as i64)
    }
}

/// Where a search for a crossing starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    /// The instant searched from.
    pub(crate) since: Timestamp,
    /// Whether the value is known to be at or above the target at `since` (else it is
    /// checked first).
    pub(crate) above: bool,
}

/// The first whole second after `start.since` at which the non-increasing `exact`
/// value is below `target`, searched no further than `horizon` (`None`: not before
/// then, or never). Both functions take seconds after `since`. `guess` or else `fast`,
/// a cheap approximation of `exact`, narrows the search; the answer is settled with
/// `exact` alone.
pub(crate) fn first_below(
    fast: impl Fn(i64) -> f64,
    exact: impl Fn(i64) -> f64,
    guess: Option<i64>,
    target: f64,
    start: Start,
    horizon: Option<Timestamp>,
) -> Option<Timestamp> {
    let since = start.since;
    let at = |secs: i64| Duration::from_secs(secs).ok().and_then(|d| since.checked_add(d));
    let limit = horizon
        .map(|h| {
            h.unix_seconds().saturating_sub(since.unix_seconds())
                - i64::from(h.subsec_nanos() < since.subsec_nanos())
        })
        .unwrap_or(MAX_SECONDS)
        .min(MAX_SECONDS);
    // Past the end of time every value counts as fallen.
    let exact_below = |secs: i64| at(secs).is_none() || exact(secs) < target;
    if !start.above && exact_below(0) {
        return None;
    }
    let guess = match guess {
        Some(g) => g.clamp(1, limit.max(1)),
        None => search(|secs| at(secs).is_none() || fast(secs) < target, limit),
    };
    // Widen a bracket around the estimate until it holds the crossing, then bisect.
    let (mut lo, mut hi) = (guess - 1, guess);
    let mut step = 1i64;
    while lo > 0 && exact_below(lo) {
        hi = lo;
        step = step.saturating_mul(2);
        lo = (guess - step).max(0);
    }
    let mut step = 1i64;
    while !exact_below(hi) {
        if hi >= limit {
            return None;
        }
        lo = hi;
        step = step.saturating_mul(2);
        hi = guess.saturating_add(step).min(limit);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exact_below(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}

/// The first second in `1..=limit` at which the monotone `below` holds (or `limit`):
/// exponential search, then bisection.
fn search(below: impl Fn(i64) -> bool, limit: i64) -> i64 {
    let mut hi: i64 = 1;
    while !below(hi) && hi < limit {
        hi = hi.saturating_mul(2).min(limit);
    }
    let mut lo = 0;
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value(form: &DecayForm, t: f64) -> f64 {
        form.constant + form.terms.iter().map(|(a, h)| a * (-t / h).exp2()).sum::<f64>()
    }

    #[test]
    fn one_half_life_is_solved_in_closed_form() {
        let mut form = DecayForm::default();
        form.add_term(80.0, 100.0);
        // 80 · 2^(-t/100) < 40 from t = 100 on.
        assert_eq!(form.crossing(40.0), Some(100));
        assert_eq!(form.crossing(90.0), None);
    }

    proptest! {
        #[test]
        fn newton_lands_on_the_crossing(
            a in 0.5f64..500.0, b in 0.5f64..500.0, c in 0.0f64..50.0,
            ha in 60.0f64..1e8, hb in 60.0f64..1e8, share in 0.05f64..0.95,
        ) {
            let mut form = DecayForm { constant: c, ..DecayForm::default() };
            form.add_term(a, ha);
            form.add_term(b, hb);
            let target = c + share * (a + b);
            let t = form.crossing(target).expect("a crossing");
            prop_assert!(value(&form, t as f64) <= target * (1.0 + 1e-9));
            prop_assert!(value(&form, (t - 2) as f64) >= target * (1.0 - 1e-9));
        }
    }
}
