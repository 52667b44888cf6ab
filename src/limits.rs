//! Size and nesting limits that keep hostile input from exhausting the stack or the CPU.

use serde::{Deserialize, Serialize};

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
    /// Most comprehension steps (macro iterations) one evaluation of an expression may
    /// take; past it the evaluation ends in a `BudgetExceeded` error.
    pub max_eval_steps: u64,
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
        }
    }
}
