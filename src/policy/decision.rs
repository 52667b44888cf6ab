//! The decision on one send, and why: structured data for the effect and for
//! "why was this not sent?".

use serde::{Deserialize, Serialize};

use crate::def::{Channel, ConsentStatus, DncReason};
use crate::time::{Duration, Timestamp};

/// What happens to a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Send it now.
    Ready,
    /// Held until `until`, then decided again (once).
    Deferred,
    /// Not sent; `reason` says why.
    Suppressed,
    /// Held for a person's approval.
    PendingApproval,
    /// The contact is in the control group: not sent, but this is what would have been.
    Control,
}

impl Verdict {
    /// The verdict's name: `ready`, `deferred`, `suppressed`, `pending_approval`,
    /// `control`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::Deferred => "deferred",
            Verdict::Suppressed => "suppressed",
            Verdict::PendingApproval => "pending_approval",
            Verdict::Control => "control",
        }
    }
}

/// Why a send was not sent now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Consent for the channel and purpose does not allow it.
    Consent {
        /// The channel.
        channel: Channel,
        /// The purpose.
        purpose: String,
        /// The contact's status (`unknown` on a channel that needs an opt-in).
        status: ConsentStatus,
    },
    /// A do-not-contact mark (`channel` absent: the global one).
    DoNotContact {
        /// The channel marked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        /// Why it was marked.
        reason: DncReason,
    },
    /// The contact is on a suppression list.
    List {
        /// The list.
        list: String,
    },
    /// The contact is in a suppressing segment.
    Segment {
        /// The segment.
        segment: String,
    },
    /// A frequency cap is full.
    Cap {
        /// The cap's id.
        cap: String,
        /// Its maximum.
        max: u32,
    },
    /// The channel's send window is closed (quiet hours, a closed weekday or a holiday).
    Window {
        /// The channel.
        channel: Channel,
    },
    /// Waiting would take longer than the policy's `max_delay`.
    MaxDelay {
        /// The instant it could have gone out.
        wanted: Timestamp,
        /// The policy's limit.
        max_delay: Duration,
        /// What it would have waited for.
        because: Box<Reason>,
    },
    /// The contact is in the global control group.
    ControlGroup,
    /// Held for approval and not approved in time.
    ApprovalExpired {
        /// When it expired.
        at: Timestamp,
    },
    /// Approved, but the rule's condition no longer holds for the contact.
    ConditionFailed,
    /// Approved, but the action could not take effect on the contact as it is now (a
    /// lifecycle stage the engine does not know, a score the program no longer has).
    NotApplied {
        /// Why.
        message: String,
    },
    /// The contact already has this many deferred sends waiting.
    Backlog {
        /// The limit.
        limit: u32,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Consent { channel, purpose, status } => {
                write!(f, "{channel} consent for {purpose} is {}", status.name())
            }
            Reason::DoNotContact { channel: Some(channel), reason } => {
                write!(f, "do not contact on {channel} ({})", reason.name())
            }
            Reason::DoNotContact { channel: None, reason } => {
                write!(f, "do not contact on any channel ({})", reason.name())
            }
            Reason::List { list } => write!(f, "on suppression list `{list}`"),
            Reason::Segment { segment } => write!(f, "in suppressing segment `{segment}`"),
            Reason::Cap { cap, max } => write!(f, "frequency cap `{cap}` ({max}) reached"),
            Reason::Window { channel } => write!(f, "{channel} send window closed"),
            Reason::MaxDelay { wanted, max_delay, because } => {
                write!(f, "{because} until {wanted}, beyond the maximum delay of {max_delay}")
            }
            Reason::ControlGroup => f.write_str("in the control group"),
            Reason::Backlog { limit } => write!(f, "{limit} deferred sends already waiting"),
            Reason::ApprovalExpired { at } => write!(f, "not approved before {at}"),
            Reason::ConditionFailed => f.write_str("the rule's condition no longer holds"),
            Reason::NotApplied { message } => write!(f, "the action could not take effect: {message}"),
        }
    }
}

impl Reason {
    /// A short, stable name for the reason, for counting: `consent`, `do_not_contact`,
    /// `list`, `segment`, `cap`, `window`, `max_delay`, `control_group`, `backlog`,
    /// `approval_expired`, `condition_failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Consent { .. } => "consent",
            Reason::DoNotContact { .. } => "do_not_contact",
            Reason::List { .. } => "list",
            Reason::Segment { .. } => "segment",
            Reason::Cap { .. } => "cap",
            Reason::Window { .. } => "window",
            Reason::MaxDelay { .. } => "max_delay",
            Reason::ControlGroup => "control_group",
            Reason::Backlog { .. } => "backlog",
            Reason::ApprovalExpired { .. } => "approval_expired",
            Reason::ConditionFailed => "condition_failed",
            Reason::NotApplied { .. } => "not_applied",
        }
    }
}

/// The policy's decision on one send, carried on its effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SendDecision {
    /// What happens.
    pub verdict: Verdict,
    /// The send's purpose (`marketing` unless the send says otherwise).
    pub purpose: String,
    /// A transactional send: marketing consent, caps, windows and the control group did
    /// not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
    /// For a deferred send: when it is decided again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// For a deferred send released: the key of the effect that deferred it (16 hex
    /// digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<String>,
}

impl SendDecision {
    /// A decision without a reason or instant.
    pub fn new(verdict: Verdict, purpose: &str, transactional: bool) -> SendDecision {
        SendDecision {
            verdict,
            purpose: purpose.to_string(),
            transactional,
            until: None,
            reason: None,
            released: None,
        }
    }
}

/// `ready`, `deferred until 2026-03-09T12:00:00Z: sms send window closed`,
/// `suppressed: email consent for marketing is opted_out`.
impl std::fmt::Display for SendDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.verdict.name())?;
        if let Some(until) = self.until {
            write!(f, " until {until}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}
