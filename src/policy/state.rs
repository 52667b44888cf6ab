//! A contact's policy state: consent per channel and purpose, do-not-contact marks,
//! a bounded history of their changes, and the recent sends caps count.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::def::{Channel, ConsentStatus, DncReason};
use crate::time::Timestamp;

/// How many consent and do-not-contact changes a contact's history keeps (the newest).
pub const CHANGE_HISTORY: usize = 32;

/// The consent for one channel and purpose, as last stated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsentRecord {
    /// The status.
    pub status: ConsentStatus,
    /// When it was stated.
    pub at: Timestamp,
    /// Where it came from (`event unsubscribed e17`, `rule double-opt-in`, ...).
    pub source: String,
}

/// A do-not-contact mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DncRecord {
    /// Why.
    pub reason: DncReason,
    /// When it was set.
    pub at: Timestamp,
    /// Where it came from.
    pub source: String,
}

/// What one change did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyChange {
    /// Consent for a channel and purpose was stated.
    Consent {
        /// The channel.
        channel: Channel,
        /// The purpose.
        purpose: String,
        /// The status before.
        from: ConsentStatus,
        /// The status after.
        to: ConsentStatus,
    },
    /// A do-not-contact mark was set (`channel` absent: every channel).
    DoNotContact {
        /// The channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        /// Why.
        reason: DncReason,
    },
    /// A do-not-contact mark was lifted.
    ClearDoNotContact {
        /// The channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
    },
}

/// One entry of the change history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChangeRecord {
    /// When.
    pub at: Timestamp,
    /// Where it came from.
    pub source: String,
    /// What changed.
    #[serde(flatten)]
    pub change: PolicyChange,
}

/// A marketing send caps count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SentRecord {
    /// When it was decided ready.
    pub at: Timestamp,
    /// The channel.
    pub channel: Channel,
    /// The campaign or journey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

/// A contact's consent, do-not-contact marks, their history and recent sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyState {
    /// By `channel/purpose`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) consent: BTreeMap<String, ConsentRecord>,
    /// By channel name, `*` for every channel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) dnc: BTreeMap<String, DncRecord>,
    /// The newest [`CHANGE_HISTORY`] changes, oldest first.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub(crate) history: VecDeque<ChangeRecord>,
    /// Marketing sends still inside some cap's window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) sent: Vec<SentRecord>,
}

/// The key of a consent record.
fn consent_key(channel: Channel, purpose: &str) -> String {
    format!("{}/{purpose}", channel.name())
}

/// The key of a do-not-contact mark.
fn dnc_key(channel: &Option<Channel>) -> &str {
    channel.as_ref().map_or("*", Channel::name)
}

impl PolicyState {
    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.consent.is_empty() && self.dnc.is_empty() && self.history.is_empty() && self.sent.is_empty()
    }

    /// The consent last stated for a channel and purpose.
    pub fn consent(&self, channel: Channel, purpose: &str) -> Option<&ConsentRecord> {
        self.consent.get(&consent_key(channel, purpose))
    }

    /// The consent status for a channel and purpose ([`ConsentStatus::Unknown`] when
    /// never stated).
    pub fn consent_status(&self, channel: Channel, purpose: &str) -> ConsentStatus {
        self.consent(channel, purpose).map_or(ConsentStatus::Unknown, |r| r.status)
    }

    /// The do-not-contact mark on a channel (`None`: the global mark).
    pub fn do_not_contact(&self, channel: Option<Channel>) -> Option<&DncRecord> {
        self.dnc.get(dnc_key(&channel))
    }

    /// The change history, oldest first (at most [`CHANGE_HISTORY`] entries).
    pub fn history(&self) -> impl Iterator<Item = &ChangeRecord> {
        self.history.iter()
    }

    /// The marketing sends caps still count, oldest first.
    pub fn sent(&self) -> &[SentRecord] {
        &self.sent
    }

    fn log(&mut self, at: Timestamp, source: &str, change: PolicyChange) {
        if self.history.len() >= CHANGE_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ChangeRecord { at, source: source.to_string(), change });
    }

    /// States consent for a channel and purpose; `false` when it was already so.
    pub fn set_consent(
        &mut self,
        channel: Channel,
        purpose: &str,
        status: ConsentStatus,
        at: Timestamp,
        source: &str,
    ) -> bool {
        let from = self.consent_status(channel, purpose);
        if from == status && self.consent(channel, purpose).is_some() {
            return false;
        }
        let key = consent_key(channel, purpose);
        if status == ConsentStatus::Unknown {
            self.consent.remove(&key);
        } else {
            self.consent.insert(key, ConsentRecord { status, at, source: source.to_string() });
        }
        self.log(
            at,
            source,
            PolicyChange::Consent { channel, purpose: purpose.to_string(), from, to: status },
        );
        true
    }

    /// Marks do-not-contact (`channel` `None`: every channel); `false` when a mark with
    /// the same reason was there already (it keeps its instant and source).
    pub fn mark_do_not_contact(
        &mut self,
        channel: Option<Channel>,
        reason: DncReason,
        at: Timestamp,
        source: &str,
    ) -> bool {
        if self.dnc.get(dnc_key(&channel)).is_some_and(|r| r.reason == reason) {
            return false;
        }
        self.dnc.insert(dnc_key(&channel).to_string(), DncRecord { reason, at, source: source.to_string() });
        self.log(at, source, PolicyChange::DoNotContact { channel, reason });
        true
    }

    /// Lifts a do-not-contact mark; `false` when there was none.
    pub fn clear_do_not_contact(&mut self, channel: Option<Channel>, at: Timestamp, source: &str) -> bool {
        if self.dnc.remove(dnc_key(&channel)).is_none() {
            return false;
        }
        self.log(at, source, PolicyChange::ClearDoNotContact { channel });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_newest_changes() {
        let mut state = PolicyState::default();
        let t = Timestamp::from_unix(1_767_225_600, 0).unwrap();
        for i in 0..(CHANGE_HISTORY + 5) {
            let status = if i % 2 == 0 { ConsentStatus::OptedIn } else { ConsentStatus::OptedOut };
            assert!(state.set_consent(Channel::Email, "marketing", status, t, &format!("s{i}")));
        }
        assert_eq!(state.history().count(), CHANGE_HISTORY);
        assert_eq!(state.history().last().unwrap().source, format!("s{}", CHANGE_HISTORY + 4));
        assert_eq!(state.consent_status(Channel::Email, "marketing"), ConsentStatus::OptedIn);
        assert!(!state.set_consent(Channel::Email, "marketing", ConsentStatus::OptedIn, t, "again"));
        assert!(state.mark_do_not_contact(None, DncReason::Manual, t, "ops"));
        assert_eq!(state.do_not_contact(None).unwrap().reason, DncReason::Manual);
        assert!(state.clear_do_not_contact(None, t, "ops"));
        assert!(!state.clear_do_not_contact(None, t, "ops"));
    }
}
