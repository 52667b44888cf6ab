//! Score decay arithmetic that gives the same bits on every platform.
//!
//! Whether a score crossed a threshold must not depend on the machine. `f64::powf`,
//! `exp2` and `powi` come from the platform's math library (or LLVM intrinsics) and may
//! differ in the last bit between platforms; a value that sits exactly at a threshold
//! could then cross on one machine and not on another. The functions here use only
//! IEEE-754 addition, multiplication and division (correctly rounded everywhere) in a
//! fixed order, and no fused multiply-add, so their results are bit-for-bit portable.

use crate::time::{Duration, TimeZone, Timestamp};

/// `2^-x` for `x >= 0`, deterministically: the integer part scales by an exact power of
/// two; the fraction splits into a multiple of 1/64, looked up in a table computed at
/// compile time, and a remainder below 1/64, for a short Taylor series of `e^-y`.
///
/// Relative error below 1e-15 for results above the subnormal range; 0 for `x` past
/// the range of doubles; NaN and negative inputs give NaN.
pub(crate) fn exp2_neg(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x >= 1075.0 {
        return 0.0;
    }
    // `x` is in [0, 1075): truncation is the floor, without a libm call.
    let whole = x as i64;
    let frac = x - whole as f64;
    let k = (frac * 64.0) as usize;
    // The remainder is below 1/64, so y < 0.0109 and 7 terms leave less than 1e-18.
    // Horner's scheme with the series' coefficients multiplied, not divided: the
    // reciprocals are constants, rounded once at compile time, the same everywhere.
    let y = (frac - k as f64 / 64.0) * std::f64::consts::LN_2;
    let mut series = 1.0f64;
    for reciprocal in RECIPROCALS[1..].iter().rev() {
        series = 1.0 - series * y * reciprocal;
    }
    let table = EXP2_NEG_64[k.min(63)];
    scale_by_power_of_two(table * series, -(whole as i32))
}

/// `1/n` for the series' terms.
const RECIPROCALS: [f64; 8] = [0.0, 1.0, 1.0 / 2.0, 1.0 / 3.0, 1.0 / 4.0, 1.0 / 5.0, 1.0 / 6.0, 1.0 / 7.0];

/// `2^(-k/64)` for `k` in `0..64`, computed at compile time by a 24-term series (const
/// evaluation uses the same IEEE arithmetic as run time, so the table is portable).
const EXP2_NEG_64: [f64; 64] = {
    let mut table = [0.0f64; 64];
    let mut k = 0;
    while k < 64 {
        let y = (k as f64 / 64.0) * std::f64::consts::LN_2;
        let mut series = 1.0f64;
        let mut n = 24u32;
        while n >= 1 {
            series = 1.0 - series * y / (n as f64);
            n -= 1;
        }
        table[k] = series;
        k += 1;
    }
    table
};

/// `value * 2^exp`, exactly while the result stays normal (the multiplication by a
/// power of two only changes the exponent); split in steps so that intermediate powers
/// stay representable.
fn scale_by_power_of_two(mut value: f64, mut exp: i32) -> f64 {
    while exp < -1000 {
        value *= f64::from_bits(((1023 - 1000) as u64) << 52); // 2^-1000
        exp += 1000;
    }
    while exp > 1000 {
        value *= f64::from_bits(((1023 + 1000) as u64) << 52); // 2^1000
        exp -= 1000;
    }
    value * f64::from_bits(((1023 + exp) as u64) << 52)
}

/// `base^n` by repeated squaring in a fixed order: portable, unlike `powi`.
pub(crate) fn pow_int(base: f64, mut n: u64) -> f64 {
    let mut result = 1.0f64;
    let mut square = base;
    while n > 0 {
        if n & 1 == 1 {
            result *= square;
        }
        square *= square;
        n >>= 1;
    }
    result
}

/// How a score (or a group's points) loses value over time.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Decay {
    /// No decay.
    None,
    /// Exponential decay: the value halves every `half_life`.
    HalfLife {
        /// The half-life; positive.
        half_life: Duration,
    },
    /// Step decay: the value loses `fraction` (0 to 1) after each full `period` without
    /// activity, counted from the last change.
    Step {
        /// The share lost per period, in `(0, 1]`.
        fraction: f64,
        /// The period; positive.
        period: Duration,
    },
    /// Calendar step decay: the value loses `fraction` at each start of a calendar day,
    /// week (Monday) or month in `zone` since the last change.
    Calendar {
        /// The share lost per period, in `(0, 1]`.
        fraction: f64,
        /// The calendar period.
        period: CalendarPeriod,
        /// The time zone whose calendar counts.
        zone: TimeZone,
    },
}

/// A calendar period for [`Decay::Calendar`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalendarPeriod {
    /// Midnight.
    Day,
    /// Monday midnight.
    Week,
    /// The first of the month, midnight.
    Month,
}

impl CalendarPeriod {
    /// How many period starts lie in `(since, now]`, in `zone`.
    pub fn boundaries(self, since: Timestamp, now: Timestamp, zone: TimeZone) -> u64 {
        use chrono::Datelike;
        if now <= since {
            return 0;
        }
        let (a, b) = (zone.local_date(since), zone.local_date(now));
        let index = |d: chrono::NaiveDate| -> i64 {
            match self {
                CalendarPeriod::Day => i64::from(d.num_days_from_ce()),
                CalendarPeriod::Week => (i64::from(d.num_days_from_ce())
                    - i64::from(d.weekday().num_days_from_monday()))
                .div_euclid(7),
                CalendarPeriod::Month => i64::from(d.year()) * 12 + i64::from(d.month0()),
            }
        };
        u64::try_from(index(b) - index(a)).unwrap_or(0)
    }
}

impl Decay {
    /// The factor by which a value shrinks over `elapsed` (1 for no time or no decay).
    /// Deterministic across platforms; never above 1, never negative.
    pub fn factor(&self, elapsed: Duration) -> f64 {
        if elapsed <= Duration::ZERO {
            return 1.0;
        }
        match i64::try_from(elapsed.as_nanos()) {
            Ok(nanos) => self.factor_nanos(nanos),
            // Spans beyond 292 years: the slow, exact path.
            Err(_) => self.factor_wide(elapsed.as_nanos()),
        }
    }

    /// [`Decay::factor`] for a positive span in nanoseconds (the common case, in `i64`).
    pub(crate) fn factor_nanos(&self, e: i64) -> f64 {
        match *self {
            Decay::None | Decay::Calendar { .. } => 1.0,
            Decay::HalfLife { half_life } => {
                let Ok(h) = i64::try_from(half_life.as_nanos()) else {
                    return self.factor_wide(i128::from(e));
                };
                if h <= 0 {
                    return 1.0;
                }
                // Whole half-lives exactly in integers; the remainder as a fraction.
                let whole = e / h;
                if whole >= 1075 {
                    return 0.0;
                }
                exp2_neg(whole as f64 + (e % h) as f64 / h as f64)
            }
            Decay::Step { .. } => self.factor_wide(i128::from(e)),
        }
    }

    /// [`Decay::factor`] in 128-bit arithmetic, for any span.
    fn factor_wide(&self, e: i128) -> f64 {
        match *self {
            Decay::None | Decay::Calendar { .. } => 1.0,
            Decay::HalfLife { half_life } => {
                let h = half_life.as_nanos();
                if h <= 0 {
                    return 1.0;
                }
                if e / h >= 1075 {
                    0.0
                } else {
                    exp2_neg((e / h) as f64 + (e % h) as f64 / h as f64)
                }
            }
            Decay::Step { fraction, period } => {
                let p = period.as_nanos();
                if p <= 0 || !(fraction > 0.0 && fraction <= 1.0) {
                    return 1.0;
                }
                pow_int(1.0 - fraction, u64::try_from(e / p).unwrap_or(u64::MAX))
            }
        }
    }

    /// The decay factor from `since` to `now` with the platform's fast `exp2` / `powi`:
    /// close to [`Decay::apply`]'s but not bit-for-bit portable, so only for narrowing
    /// searches whose answer is then settled exactly.
    pub(crate) fn factor_approx(&self, since: Timestamp, now: Timestamp) -> f64 {
        let elapsed = (now.unix_seconds() - since.unix_seconds()) as f64
            + (f64::from(now.subsec_nanos()) - f64::from(since.subsec_nanos())) * 1e-9;
        if elapsed <= 0.0 {
            return 1.0;
        }
        match *self {
            Decay::None => 1.0,
            Decay::HalfLife { half_life } => (-elapsed / half_life.as_secs_f64()).exp2(),
            Decay::Step { fraction, period } => {
                let p = period.as_secs_f64();
                if p <= 0.0 {
                    return 1.0;
                }
                (1.0 - fraction).powf((elapsed / p).floor())
            }
            Decay::Calendar { .. } => self.apply(1.0, since, now),
        }
    }

    /// `value` after decaying from `since` to `now`.
    pub fn apply(&self, value: f64, since: Timestamp, now: Timestamp) -> f64 {
        if let Decay::Calendar { fraction, period, zone } = *self {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return value;
            }
            return value * pow_int(1.0 - fraction, period.boundaries(since, now, zone));
        }
        if now <= since {
            return value;
        }
        // The span in `i64` nanoseconds when it fits (about 292 years): no 128-bit
        // division on the hot path.
        let nanos = now
            .unix_seconds()
            .checked_sub(since.unix_seconds())
            .and_then(|s| s.checked_mul(1_000_000_000))
            .and_then(|n| n.checked_add(i64::from(now.subsec_nanos()) - i64::from(since.subsec_nanos())));
        match nanos {
            Some(e) => value * self.factor_nanos(e),
            None => now.duration_since(since).map_or(value, |elapsed| value * self.factor(elapsed)),
        }
    }

    /// The first instant, at or after `since`, at which `value` (held since `since`)
    /// has decayed strictly below `threshold`, to the second; `None` when it never will
    /// (no decay, a value already below, or a non-positive threshold that decay toward
    /// zero never passes).
    ///
    /// The answer agrees with [`Decay::apply`] exactly: at the returned instant the
    /// decayed value is below the threshold, one second earlier it is not.
    pub fn next_crossing_below(&self, value: f64, threshold: f64, since: Timestamp) -> Option<Timestamp> {
        if !(value.is_finite() && threshold.is_finite()) || threshold <= 0.0 || value <= 0.0 {
            return if value < threshold { Some(since) } else { None };
        }
        if value < threshold {
            return Some(since);
        }
        if matches!(self, Decay::None) {
            return None;
        }
        let below = |secs: i64| -> bool {
            Duration::from_secs(secs)
                .ok()
                .and_then(|d| since.checked_add(d))
                .is_none_or(|t| self.apply(value, since, t) < threshold)
        };
        // Exponential search for an upper bound, then bisection: monotone, so exact.
        let mut hi: i64 = 1;
        while !below(hi) {
            hi = hi.checked_mul(2)?;
            if hi > 315_576_000_000 {
                return None;
            }
        }
        let mut lo: i64 = 0; // not below at `lo` (value >= threshold at since)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if below(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        since.checked_add(Duration::from_secs(hi).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i64) -> Duration {
        Duration::from_days(n).expect("in range")
    }

    #[test]
    fn exp2_neg_matches_known_values() {
        assert_eq!(exp2_neg(0.0), 1.0);
        assert_eq!(exp2_neg(1.0), 0.5);
        assert_eq!(exp2_neg(10.0), 1.0 / 1024.0);
        assert!((exp2_neg(0.5) - std::f64::consts::FRAC_1_SQRT_2).abs() <= 1.2e-16);
        assert_eq!(exp2_neg(2000.0), 0.0);
        assert!(exp2_neg(-1.0).is_nan());
    }

    #[test]
    fn half_life_halves() {
        let d = Decay::HalfLife { half_life: day(30) };
        assert_eq!(d.factor(day(30)), 0.5);
        assert_eq!(d.factor(day(60)), 0.25);
        assert_eq!(d.factor(Duration::ZERO), 1.0);
        assert!((d.factor(day(15)) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
    }

    #[test]
    fn step_decay_counts_full_periods() {
        let d = Decay::Step { fraction: 0.25, period: day(30) };
        assert_eq!(d.factor(day(29)), 1.0);
        assert_eq!(d.factor(day(30)), 0.75);
        assert_eq!(d.factor(day(60)), 0.5625);
    }

    #[test]
    fn calendar_decay_counts_period_starts_in_the_zone() {
        let zone = TimeZone::parse("Europe/Paris").unwrap();
        let monthly = Decay::Calendar { fraction: 0.5, period: CalendarPeriod::Month, zone };
        // 2026-01-31 22:30 UTC is already February 1st in Paris.
        let jan31 = Timestamp::parse("2026-01-31T22:00:00Z").unwrap();
        let feb = Timestamp::parse("2026-01-31T23:30:00Z").unwrap();
        let april = Timestamp::parse("2026-04-15T12:00:00Z").unwrap();
        assert_eq!(monthly.apply(80.0, jan31, feb), 40.0);
        assert_eq!(monthly.apply(80.0, jan31, april), 10.0);
        let weekly = Decay::Calendar { fraction: 0.25, period: CalendarPeriod::Week, zone: TimeZone::UTC };
        let sunday = Timestamp::parse("2026-11-29T23:00:00Z").unwrap();
        let monday = Timestamp::parse("2026-11-30T00:00:01Z").unwrap();
        assert_eq!(weekly.apply(100.0, sunday, monday), 75.0);
        let at = weekly.next_crossing_below(100.0, 80.0, sunday).unwrap();
        assert_eq!(at, Timestamp::parse("2026-11-30T00:00:00Z").unwrap());
    }

    #[test]
    fn crossing_instants_are_exact() {
        let since = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        let d = Decay::HalfLife { half_life: day(10) };
        // 100 points fall below 50 just after one half-life.
        let at = d.next_crossing_below(100.0, 50.0, since).unwrap();
        assert_eq!(at.unix_seconds() - since.unix_seconds(), 10 * 86_400 + 1);
        assert_eq!(d.next_crossing_below(40.0, 50.0, since), Some(since));
        assert_eq!(Decay::None.next_crossing_below(100.0, 50.0, since), None);
        let step = Decay::Step { fraction: 0.5, period: day(7) };
        let at = step.next_crossing_below(100.0, 60.0, since).unwrap();
        assert_eq!(at.unix_seconds() - since.unix_seconds(), 7 * 86_400);
    }

    proptest! {
        #[test]
        fn exp2_neg_is_close_to_the_platform_and_monotone(x in 0.0f64..60.0, dx in 0.0f64..1.0) {
            let ours = exp2_neg(x);
            let platform = (-x).exp2();
            prop_assert!(((ours - platform) / platform).abs() < 1e-14, "{x}: {ours} vs {platform}");
            prop_assert!(exp2_neg(x + dx) <= ours);
        }

        #[test]
        fn decay_never_raises_and_never_goes_negative(
            half_life_s in 1i64..10_000_000, elapsed_s in 0i64..100_000_000, value in 0.0f64..1e6,
        ) {
            let d = Decay::HalfLife { half_life: Duration::from_secs(half_life_s).unwrap() };
            let f = d.factor(Duration::from_secs(elapsed_s).unwrap());
            prop_assert!((0.0..=1.0).contains(&f));
            prop_assert!(value * f <= value);
        }

        #[test]
        fn crossing_agrees_with_apply(
            half_life_s in 60i64..10_000_000, value in 1.0f64..1000.0, ratio in 0.01f64..0.99,
        ) {
            let since = Timestamp::from_unix(1_700_000_000, 0).unwrap();
            let d = Decay::HalfLife { half_life: Duration::from_secs(half_life_s).unwrap() };
            let threshold = value * ratio;
            let at = d.next_crossing_below(value, threshold, since).unwrap();
            prop_assert!(d.apply(value, since, at) < threshold);
            let before = at.checked_sub(Duration::from_secs(1).unwrap()).unwrap();
            prop_assert!(d.apply(value, since, before) >= threshold);
        }
    }
}
