//! The rule index: rules grouped by event type, and equality tests of an event property
//! against literals resolved by one hash lookup instead of one test per rule.
//!
//! A rule whose condition is a conjunction containing `event.P == "lit"` (or
//! `event.P in ["a", "b"]`, or an int equality) is filed under the literal(s) in P's
//! table; only rules filed under the event's actual value of P, plus the rules with no
//! such test, are evaluated. Rules skipped this way could not have matched, so they are
//! not evaluated and report no errors.
//!
//! Contact attributes are known when an event is matched, so `contact.A == "lit"` (and
//! `in`, int equality) files rules the same way, under A's table, looked up in the
//! contact's attributes. Each rule is filed under one test: the property or attribute
//! that the most rules of its event type test.
//!
//! A rule with no such equality but a `startsWith` test of a string property or
//! attribute (`event.url.startsWith('/pricing')`) is filed under its prefix in a prefix
//! table: the prefixes of the event's value that the table holds are found by a few
//! binary searches over the sorted prefixes, not one test per rule.

use hashbrown::HashMap;

use crate::expr::compile::{Pred, StrTest};
use crate::expr::ir::{BinOp, Scope};
use crate::schema::{Event, Slot};
use crate::value::Value;

/// How many rules of one event type must test the same property before it gets a hash
/// table; below this, evaluating their (fused, cheap) equality tests directly is faster
/// than hashing the event's value.
const MIN_RULES_PER_TABLE: usize = 8;

/// What the index needs to know of a rule.
pub(crate) struct IndexEntry<'a> {
    pub(crate) event_type: crate::id::EventTypeIndex,
    pub(crate) condition: Option<&'a Pred>,
    pub(crate) enabled: bool,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RuleIndex {
    by_type: Vec<TypeRules>,
}

#[derive(Clone, Debug, Default)]
struct TypeRules {
    /// Rules with no usable discriminator: always candidates.
    always: Vec<u32>,
    tables: Vec<Table>,
    prefixes: Vec<PrefixTable>,
}

/// Rules filed under the prefix their `startsWith` test requires of one string.
#[derive(Clone, Debug)]
struct PrefixTable {
    contact: bool,
    slot: Slot,
    /// Sorted by their bytes, each prefix once.
    entries: Vec<(Box<str>, Vec<u32>)>,
    /// Per entry: the longest other entry that is a prefix of it (`NONE`: none).
    parents: Vec<u32>,
}

/// No parent entry.
const NONE: u32 = u32::MAX;

impl PrefixTable {
    /// Links each entry to the longest other entry that is a prefix of it. In byte order
    /// an entry's prefixes come before it, so a stack of the current chain finds them.
    fn link(&mut self) {
        let mut chain: Vec<u32> = Vec::new();
        self.parents = Vec::with_capacity(self.entries.len());
        for (i, (entry, _)) in self.entries.iter().enumerate() {
            while let Some(&top) = chain.last() {
                if entry.as_bytes().starts_with(self.entries[top as usize].0.as_bytes()) {
                    break;
                }
                chain.pop();
            }
            self.parents.push(chain.last().copied().unwrap_or(NONE));
            chain.push(i as u32);
        }
    }

    /// Adds the rules filed under the prefixes of `value` to `out`; how many prefixes
    /// matched. Every prefix of `value` sorts at or below it, so at or below `e`, the
    /// greatest entry that does; and none is longer than the part `e` shares with
    /// `value` (it would sort between them). So the prefixes of `value` are the entries
    /// on `e`'s chain of prefixes no longer than that part: one binary search, then a
    /// walk up the chain.
    fn hits(&self, value: &str, out: &mut Vec<u32>) -> usize {
        let value = value.as_bytes();
        let i = self.entries.partition_point(|(p, _)| p.as_bytes() <= value);
        let Some(last) = i.checked_sub(1) else {
            return 0;
        };
        let greatest = self.entries[last].0.as_bytes();
        let shared = greatest.iter().zip(value).take_while(|(a, b)| a == b).count();
        let mut at = last as u32;
        let mut found = 0;
        while let Some((prefix, rules)) = self.entries.get(at as usize) {
            if prefix.len() <= shared {
                out.extend_from_slice(rules);
                found += 1;
            }
            at = self.parents[at as usize];
        }
        found
    }
}

/// Where a table's value comes from: the event's properties or the contact's
/// attributes, and the slot.
type Key = (bool, Slot);

#[derive(Clone, Debug)]
struct Table {
    /// Whether the value is a contact attribute (else an event property).
    contact: bool,
    slot: Slot,
    strings: HashMap<Box<str>, Vec<u32>>,
    ints: HashMap<i64, Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Literal {
    Str(Box<str>),
    Int(i64),
}

/// Counts, per key, the rules with a discriminator on it.
fn count_keys<T>(counts: &mut HashMap<Key, usize>, discriminators: &[(Key, T)]) {
    for (key, _) in discriminators {
        *counts.entry(*key).or_default() += 1;
    }
}

/// The discriminator on the key the most rules of the type test (ties: the lowest key).
/// The most widely shared key gives the fewest, fullest tables; a key fewer than
/// [`MIN_RULES_PER_TABLE`] rules test is not worth a table: testing those rules
/// directly is cheaper.
fn busiest<T>(discriminators: Vec<(Key, T)>, counts: &HashMap<Key, usize>) -> Option<(Key, T)> {
    let count = |key: &Key| counts.get(key).copied().unwrap_or(0);
    discriminators
        .into_iter()
        .filter(|(key, _)| count(key) >= MIN_RULES_PER_TABLE)
        .max_by_key(|(key, _)| (count(key), std::cmp::Reverse(*key)))
}

/// The table among `tables` that `is_it` picks, made by `make` when there is none yet.
fn table_for<T>(tables: &mut Vec<T>, is_it: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &mut T {
    let at = match tables.iter().position(is_it) {
        Some(at) => at,
        None => {
            tables.push(make());
            tables.len() - 1
        }
    };
    &mut tables[at]
}

/// The prefix a conjunct of a condition requires of a string (`startsWith`), by key.
fn prefix_discriminators(pred: &Pred) -> Vec<(Key, Box<str>)> {
    pred.written_conjuncts()
        .into_iter()
        .filter_map(|c| match c {
            Pred::Str(f, StrTest::StartsWith(prefix)) => match f.scope {
                Scope::Event => Some(((false, f.slot), prefix.clone())),
                Scope::Contact => Some(((true, f.slot), prefix.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The equality discriminators of a condition: (key, literals) per conjunct.
fn discriminators(pred: &Pred) -> Vec<(Key, Vec<Literal>)> {
    // In written order, tuned or not, so that a tuned condition is filed as before.
    pred.written_conjuncts()
        .into_iter()
        .filter_map(|c| {
            let key = |scope: Scope, slot: Slot| match scope {
                Scope::Event => Some((false, slot)),
                Scope::Contact => Some((true, slot)),
                _ => None,
            };
            match c {
                Pred::StrEq(f, k, true) => {
                    Some((key(f.scope, f.slot)?, vec![Literal::Str(Box::from(&**k.text()))]))
                }
                Pred::StrIn(f, set) => {
                    let mut lits: Vec<Literal> =
                        set.iter().map(|k| Literal::Str(Box::from(&**k.text()))).collect();
                    lits.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
                    lits.dedup();
                    Some((key(f.scope, f.slot)?, lits))
                }
                Pred::IntCmp(f, BinOp::Eq, k) => Some((key(f.scope, f.slot)?, vec![Literal::Int(*k)])),
                _ => None,
            }
        })
        .collect()
}

impl RuleIndex {
    /// Indexes rules given as (event type, condition, enabled); candidates are positions
    /// in `entries`.
    pub(crate) fn from_entries(types: usize, entries: &[IndexEntry<'_>]) -> RuleIndex {
        let mut by_type = vec![TypeRules::default(); types];
        // Per type: each rule's discriminators, then how many rules each slot serves.
        let mut per_rule: Vec<Vec<(Key, Vec<Literal>)>> = Vec::with_capacity(entries.len());
        let mut slot_counts: Vec<HashMap<Key, usize>> = vec![HashMap::new(); types];
        let mut per_rule_prefixes: Vec<Vec<(Key, Box<str>)>> = Vec::with_capacity(entries.len());
        let mut prefix_counts: Vec<HashMap<Key, usize>> = vec![HashMap::new(); types];
        for entry in entries {
            let d = entry.condition.map(discriminators).unwrap_or_default();
            let p = entry.condition.map(prefix_discriminators).unwrap_or_default();
            if let Some(counts) = slot_counts.get_mut(entry.event_type.get()) {
                count_keys(counts, &d);
            }
            if let Some(counts) = prefix_counts.get_mut(entry.event_type.get()) {
                count_keys(counts, &p);
            }
            per_rule.push(d);
            per_rule_prefixes.push(p);
        }
        for (i, ((entry, discs), prefixes)) in entries.iter().zip(per_rule).zip(per_rule_prefixes).enumerate()
        {
            let t = entry.event_type.get();
            if !entry.enabled || t >= types {
                continue;
            }
            let i = i as u32;
            let best = busiest(discs, &slot_counts[t]);
            let type_rules = &mut by_type[t];
            match best {
                // Without an equality, a prefix the most rules of the type test on one key.
                None => match busiest(prefixes, &prefix_counts[t]) {
                    None => type_rules.always.push(i),
                    Some(((contact, slot), prefix)) => {
                        let table = table_for(
                            &mut type_rules.prefixes,
                            |tb| (tb.contact, tb.slot) == (contact, slot),
                            || PrefixTable { contact, slot, entries: Vec::new(), parents: Vec::new() },
                        );
                        match table.entries.binary_search_by(|(p, _)| p.as_bytes().cmp(prefix.as_bytes())) {
                            Ok(at) => table.entries[at].1.push(i),
                            Err(at) => table.entries.insert(at, (prefix, vec![i])),
                        }
                    }
                },
                Some(((contact, slot), literals)) => {
                    let table = table_for(
                        &mut type_rules.tables,
                        |tb| (tb.contact, tb.slot) == (contact, slot),
                        || Table { contact, slot, strings: HashMap::new(), ints: HashMap::new() },
                    );
                    for lit in literals {
                        match lit {
                            Literal::Str(s) => table.strings.entry(s).or_default().push(i),
                            Literal::Int(n) => table.ints.entry(n).or_default().push(i),
                        }
                    }
                }
            }
        }
        for table in by_type.iter_mut().flat_map(|t| t.prefixes.iter_mut()) {
            table.link();
        }
        RuleIndex { by_type }
    }

    /// Whether any rule is on events of type `t` (else every event of it has no
    /// candidates, and callers can skip preparing an evaluation).
    #[inline]
    pub(crate) fn has_rules_for(&self, t: crate::id::EventTypeIndex) -> bool {
        self.by_type
            .get(t.get())
            .is_some_and(|r| !r.always.is_empty() || !r.tables.is_empty() || !r.prefixes.is_empty())
    }

    /// Fills `out` with the candidate rules for `event` and the contact whose
    /// attributes (by slot) are `contact`, in declaration order. Without the contact
    /// (`None`), rules filed under a contact attribute are all candidates.
    #[inline]
    pub(crate) fn candidates(&self, event: &Event, contact: Option<&[Option<Value>]>, out: &mut Vec<u32>) {
        out.clear();
        let Some(t) = self.by_type.get(event.event_type().get()) else {
            return;
        };
        out.extend_from_slice(&t.always);
        let mut sources = usize::from(!t.always.is_empty());
        let props = event.properties().slots();
        for table in &t.tables {
            let record = match (table.contact, contact) {
                (false, _) => props,
                (true, Some(attributes)) => attributes,
                (true, None) => {
                    // Unknown contact: every rule of the table may match.
                    // (A rule filed under several literals comes twice: deduplicated below.)
                    out.extend(table.strings.values().chain(table.ints.values()).flatten().copied());
                    sources += 2;
                    continue;
                }
            };
            let hit = match record.get(usize::from(table.slot)) {
                Some(Some(Value::String(s))) => table.strings.get(&**s),
                Some(Some(Value::Int(n))) => table.ints.get(n),
                Some(Some(Value::Double(d))) if d.fract() == 0.0 && d.abs() < 9.0e15 => {
                    table.ints.get(&(*d as i64))
                }
                _ => None,
            };
            if let Some(rules) = hit {
                out.extend_from_slice(rules);
                sources += 1;
            }
        }
        for table in &t.prefixes {
            let record = match (table.contact, contact) {
                (false, _) => props,
                (true, Some(attributes)) => attributes,
                (true, None) => {
                    out.extend(table.entries.iter().flat_map(|(_, rules)| rules.iter().copied()));
                    sources += 2;
                    continue;
                }
            };
            if let Some(Some(Value::String(s))) = record.get(usize::from(table.slot)) {
                sources += table.hits(s, out);
            }
        }
        if sources > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The binary searches find exactly the prefixes a scan of every entry finds,
        /// nested ones and multi-byte characters included.
        #[test]
        fn prefix_hits_equal_a_scan(
            prefixes in prop::collection::btree_set("[ab/é]{0,4}", 0..12),
            value in "[ab/é]{0,6}",
        ) {
            let entries: Vec<(Box<str>, Vec<u32>)> =
                prefixes.iter().enumerate().map(|(i, p)| (Box::from(p.as_str()), vec![i as u32])).collect();
            let mut sorted = entries.clone();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut table = PrefixTable { contact: false, slot: 0, entries: sorted, parents: Vec::new() };
            table.link();
            let mut out = Vec::new();
            let found = table.hits(&value, &mut out);
            out.sort_unstable();
            let scan: Vec<u32> =
                entries.iter().filter(|(p, _)| value.starts_with(&**p)).flat_map(|(_, r)| r.clone()).collect();
            prop_assert_eq!(found, scan.len());
            prop_assert_eq!(out, scan);
        }
    }
}
