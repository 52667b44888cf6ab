//! Performing effects: a trait the host implements over its mailer, CRM client and
//! webhooks. Failures are reported back and kept for retry by the runtime.

use crate::engine::Effect;

/// Why an effect could not be performed now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("delivery failed: {message}")]
pub struct DeliveryError {
    /// The host's message.
    pub message: String,
}

/// Performs effects. Effects carry idempotency keys: a delivery that may run twice
/// (after a crash, on retry) should pass the key to the receiving system.
pub trait Delivery {
    /// Performs one effect.
    ///
    /// # Errors
    ///
    /// [`DeliveryError`] when it could not; the runtime keeps the effect for retry.
    fn deliver(&mut self, effect: &Effect) -> Result<(), DeliveryError>;
}

/// A [`Delivery`] that records every effect it is given, in order (for tests and
/// examples).
#[derive(Clone, Debug, Default)]
pub struct RecordingDelivery {
    /// The effects delivered so far.
    pub delivered: Vec<Effect>,
}

impl Delivery for RecordingDelivery {
    fn deliver(&mut self, effect: &Effect) -> Result<(), DeliveryError> {
        self.delivered.push(effect.clone());
        Ok(())
    }
}

impl<F: FnMut(&Effect) -> Result<(), DeliveryError>> Delivery for F {
    fn deliver(&mut self, effect: &Effect) -> Result<(), DeliveryError> {
        self(effect)
    }
}
