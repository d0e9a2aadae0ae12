//! What a Kafka failure means for the event: retry later, or never (dead-letter it), and the
//! guard that notices a delivery abandoned by the caller's deadline.

use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::publish::PublishError;

/// Sets the flag when dropped armed.
/// A guard rather than code after the `.await`: a future dropped by the caller's timeout runs
/// nothing after its await point, and only `Drop` still sees it.
pub(super) struct SuspectOnDrop<'a>(pub(super) Option<&'a AtomicBool>);

impl SuspectOnDrop<'_> {
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for SuspectOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

pub(super) fn classify(e: KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code, &e.to_string()),
        // No code from the broker or the client: nothing says the message itself is at fault.
        None => PublishError::Unavailable(e.to_string()),
    }
}

/// Which broker answers mean "never for this message" and which mean "try again later".
pub(super) fn classify_code(code: RDKafkaErrorCode, context: &str) -> PublishError {
    use RDKafkaErrorCode as C;
    match code {
        // About this message or its topic: the same bytes to the same topic get the same answer, so
        // they go to the dead-letter topic instead of waiting for a retry that cannot succeed.
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::InvalidMessage
        | C::InvalidRecord
        | C::InvalidTopic
        | C::TopicAuthorizationFailed => PublishError::Rejected(format!("{context}: {code:?}")),
        // Leader elections, timeouts, brokers down, and any code not known to be permanent:
        // retryable, the cheaper mistake (see `Publisher`).
        _ => PublishError::Unavailable(format!("{context}: {code:?}")),
    }
}
