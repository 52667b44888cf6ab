//! What is published on the input subjects, and the headers used.

use nurture::{Contact, Event, Schema, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Header names.
pub mod headers {
    /// JetStream's de-duplication id (the idempotency key on effects).
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// On effects: the contact.
    pub const CONTACT: &str = "Nurture-Contact";
    /// On inputs, copied to their effects: when the input was published (Unix
    /// nanoseconds, the publisher's clock), for measuring event-to-effect latency.
    pub const PUBLISHED: &str = "Nurture-Published";
    /// On dead letters: why the input could not be used.
    pub const ERROR: &str = "Nurture-Error";
}

/// One message on a partition's input subject (JSON, tagged by `kind`).
///
/// ```
/// use nurture::{Schema, Timestamp, Type};
/// use nurture_nats::Input;
/// let schema = Schema::builder().event_type("signup", Vec::<(String, Type)>::new()).build()?;
/// let at = Timestamp::parse("2026-01-01T00:00:00Z")?;
/// let event = schema.event("e1", "c1", "signup", at)?.build();
/// let contact = schema.contact("c1").build();
/// let bytes = Input::encode_event(&schema, &event, Some(&contact))?;
/// let back = Input::parse(&bytes)?;
/// assert_eq!(back.read_event(&schema)?, Some((event, Some(contact))));
/// assert!(Input::parse(b"{\"kind\": \"nonsense\"}").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Input {
    /// An event ([`Schema::event_to_json`]), with the contact's attributes
    /// ([`Schema::contact_to_json`]) when the contact may not be stored yet: a contact is
    /// created from them at its first event; they are ignored for a stored contact.
    Event {
        /// The event.
        event: serde_json::Value,
        /// The contact's attributes, for a new contact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<serde_json::Value>,
    },
    /// The partition's clock reaches `at`: wake-ups due by then are handled.
    Tick {
        /// The instant.
        at: Timestamp,
    },
    /// A tick that also marks the end of the stream for the partition (batch replays).
    End {
        /// The instant.
        at: Timestamp,
    },
}

impl Input {
    /// An event input, serialized.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] when the event or contact cannot be written as JSON.
    pub fn encode_event(schema: &Schema, event: &Event, contact: Option<&Contact>) -> Result<Vec<u8>, Error> {
        let event = schema.event_to_json(event).map_err(|e| Error::BadInput(e.to_string()))?;
        let contact = match contact {
            Some(c) => Some(schema.contact_to_json(c).map_err(|e| Error::BadInput(e.to_string()))?),
            None => None,
        };
        Input::Event { event, contact }.to_bytes()
    }

    /// Serialized as JSON.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] when it cannot be (it always can).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|e| Error::BadInput(e.to_string()))
    }

    /// Reads one.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] naming what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Input, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::BadInput(format!("not an input: {e}")))
    }

    /// For an event input, the event and contact, read against the schema.
    ///
    /// # Errors
    ///
    /// [`Error::BadInput`] for an event or contact the schema does not accept.
    pub fn read_event(&self, schema: &Schema) -> Result<Option<(Event, Option<Contact>)>, Error> {
        let Input::Event { event, contact } = self else {
            return Ok(None);
        };
        let event = schema.event_from_json(event).map_err(|e| Error::BadInput(format!("event: {e}")))?;
        let contact = match contact {
            Some(c) => {
                let c = schema.contact_from_json(c).map_err(|e| Error::BadInput(format!("contact: {e}")))?;
                if c.id() != event.contact() {
                    return Err(Error::BadInput(format!(
                        "the contact `{}` is not the event's contact `{}`",
                        c.id(),
                        event.contact()
                    )));
                }
                Some(c)
            }
            None => None,
        };
        Ok(Some((event, contact)))
    }
}
