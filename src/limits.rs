//! Size and nesting limits that keep hostile input from exhausting the stack or the CPU.

use serde::{Deserialize, Serialize};

/// Most awards one timeframe group keeps per contact. Past it the two oldest awards of
/// the group are merged into one, dated at the later of the two: the points are kept
/// (never lost early), and may stay up to the gap between the merged awards longer than
/// their own window (`docs/decisions.md`, "Bounded per-contact state").
pub const MAX_TIMEFRAME_AWARDS: usize = 1_000;

/// Limits applied while parsing and compiling rule sets and expressions.
///
/// Exceeding a limit produces a diagnostic, never a stack overflow or a hang. The
/// defaults accept every realistic rule set; raise them deliberately. Build a variant
/// with struct-update syntax (`..Limits::default()`), so that fields added later keep
/// their defaults.
///
/// ```
/// let limits = nurture::Limits { max_depth: 32, ..nurture::Limits::default() };
/// assert_eq!(limits.max_expression_len, 100_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deepest nesting of an expression tree (parentheses, operators, calls, literals).
    pub max_depth: usize,
    /// Longest expression source, in bytes.
    pub max_expression_len: usize,
    /// Most rules in one rule set.
    pub max_rules: usize,
    /// Most elements in one list or map literal.
    pub max_list_len: usize,
    /// Longest rule-set document, in bytes.
    pub max_document_len: usize,
    /// Deepest nesting of a structured filter tree.
    pub max_filter_depth: usize,
    /// The work one evaluation of an expression may do, in budget units; past it the
    /// evaluation ends in a `BudgetExceeded` error. A unit is one node evaluated or one
    /// comprehension iteration, or about 8 bytes of data built, copied, hashed or
    /// compared: 8 bytes of string, a quarter of a list element, a twelfth of a map
    /// entry. A run-time `matches()` pattern costs 1,000,000 units. So the default bounds
    /// one evaluation to about 80 MB of data built and well under a second
    /// (`docs/performance.md`, "Worst cases under the default limits").
    pub max_eval_steps: u64,
    /// Most distinct regular-expression patterns (constant `matches()` arguments and
    /// `matches` filters) tried in one rule set, refused ones included; each compiles,
    /// or is refused, in up to about 15 milliseconds.
    pub max_patterns: usize,
    /// Most bytes of distinct regular-expression source in one rule set, all together.
    pub max_pattern_bytes: usize,
    /// Most segments in one rule set.
    pub max_segments: usize,
    /// Most counters in one rule set.
    pub max_counters: usize,
    /// Most score models in one rule set.
    pub max_models: usize,
    /// Most bands, and most thresholds, in one score model.
    pub max_bands: usize,
    /// Most point rules in one rule set, all models together.
    pub max_point_rules: usize,
    /// Most effects one step (an event, a wake-up, an attribute change) may emit; a step
    /// that would emit more fails and changes nothing.
    pub max_effects_per_step: usize,
    /// Most instants one per-contact window may keep: a repeat policy's `max`, a
    /// counter's `max`. Documents asking for more are refused, so a contact's state
    /// stays bounded (`docs/performance.md`, "The largest contact state").
    pub max_window_entries: u32,
    /// Most instants all windows of one rule set may keep per contact, together: the
    /// `max` of every repeat policy and counter (1 for `once` and `min_interval`
    /// policies, the counter default when unset) and [`MAX_TIMEFRAME_AWARDS`] per
    /// timeframe group. It bounds a contact's state (`docs/performance.md`).
    pub max_window_total: u64,
    /// Most effects awaiting approval per contact; past it the oldest is dropped
    /// unapproved and reported as a `rule_error` effect.
    pub max_pending_approvals: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 128,
            max_expression_len: 100_000,
            max_rules: 100_000,
            max_list_len: 10_000,
            max_document_len: 64 << 20,
            max_filter_depth: 64,
            max_eval_steps: 10_000_000,
            max_patterns: 128,
            max_pattern_bytes: 64 << 10,
            max_segments: 1_000,
            max_counters: 1_000,
            max_models: 64,
            max_bands: 64,
            max_point_rules: 10_000,
            max_effects_per_step: 10_000,
            max_window_entries: 1_000,
            max_window_total: 100_000,
            max_pending_approvals: 100,
        }
    }
}
