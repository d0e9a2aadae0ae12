//! What the pipeline decided: [`Accepted`] (answered 2xx) or [`PipelineError`] (refused), each
//! with its stable code and its metric outcome.

use crate::dedup::DedupError;
use crate::event::EventId;
use crate::event::avro::EncodeError;
use crate::metrics::Outcome;
use crate::providers::MapError;
use crate::publish::PublishError;
use crate::spool::SpoolError;
use crate::verify::VerifyError;

/// What happened to an accepted webhook. Every variant is answered 2xx, so each must be true
/// only once the event is safe or there is nothing to keep: the provider will not resend.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// The broker acknowledged the event (JetStream PubAck; Kafka delivery report, `acks=all`).
    Published { event_id: EventId, topic: String },
    /// Authentic, handled, nothing to publish (an SNS subscription handshake).
    Handled { code: &'static str },
    /// A handshake, answered as its sender documents; nothing to publish.
    Answered(Box<crate::verify::handshake::HandshakeReply>),
    /// Already published within the source's dedup window: answered 2xx so the provider stops.
    Duplicate { event_id: EventId },
    /// The broker could not take it in time; it is fsync'd on disk and will be published by the
    /// drainer. Answered 202.
    Spooled { event_id: EventId },
    /// Authentic but not mappable, or refused by the broker for good: kept on the dead-letter topic
    /// (or spooled for it), answered 202 and recoverable with `redrive`.
    DeadLettered { code: String },
}

impl Accepted {
    /// The `outcome` label of `hookbridge_webhooks_total` (and of the request histogram).
    pub fn outcome(&self) -> Outcome {
        match self {
            Accepted::Published { .. } => Outcome::Published,
            Accepted::Handled { .. } | Accepted::Answered(_) => Outcome::Handled,
            Accepted::Duplicate { .. } => Outcome::Duplicate,
            Accepted::Spooled { .. } => Outcome::Spooled,
            Accepted::DeadLettered { .. } => Outcome::DeadLettered,
        }
    }
}

/// Why a webhook was not published. Each variant has its own HTTP answer (see `http::error`);
/// none of them promises anything, so the provider may resend.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    /// Not authentic (or not from an allowed address): 401, counted and logged, never kept.
    Verify(#[from] VerifyError),
    #[error(transparent)]
    /// What mapping leaves to the caller: `Upstream` (503, the provider resends). Other mapping
    /// failures are dead-lettered by `map_and_deliver` instead.
    Map(#[from] MapError),
    #[error(transparent)]
    /// Our fault, not the sender's: the embedded schema could not encode the event (500).
    Encode(#[from] EncodeError),
    #[error(transparent)]
    /// The broker did not take it, for a source that does not spool (or a dead letter it refused):
    /// 503 with `Retry-After`, the dedup key released.
    Publish(#[from] PublishError),
    /// Another request with the same dedup key is being published right now.
    #[error("the same event is being published by another request; retry shortly")]
    InFlight,
    /// The dedup store did not answer within its budget, for a source that does not spool.
    #[error("the dedup store is unavailable")]
    Dedup(#[from] DedupError),
    /// The spool is full or cannot write: 503 rather than a 2xx for an event kept nowhere.
    #[error("the broker is unavailable and the spool cannot take the event: {0}")]
    Spool(SpoolError),
    /// The source's rate limit is spent; `retry_after` is when there is budget again.
    #[error("this source sends faster than its configured rate limit; retry later")]
    RateLimited { retry_after: std::time::Duration },
}

impl PipelineError {
    /// The stable code: JSON `code`, log field and, for verification, the metric reason.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Verify(e) => e.code(),
            PipelineError::Map(e) => e.code(),
            PipelineError::Encode(_) => "encode_failed",
            PipelineError::Publish(e) => e.code(),
            PipelineError::InFlight => "in_flight",
            PipelineError::Dedup(_) => "dedup_unavailable",
            PipelineError::Spool(SpoolError::Full { .. }) => "spool_full",
            PipelineError::Spool(_) => "spool_unavailable",
            PipelineError::RateLimited { .. } => "rate_limited",
        }
    }

    /// The `outcome` label of `hookbridge_webhooks_total`.
    pub fn outcome(&self) -> Outcome {
        match self {
            PipelineError::Verify(_) => Outcome::Rejected,
            PipelineError::Map(_) => Outcome::Invalid,
            // Nothing was promised: 503 (500 for an encode error), and the provider may resend.
            PipelineError::Encode(_)
            | PipelineError::Publish(_)
            | PipelineError::InFlight
            | PipelineError::Dedup(_)
            | PipelineError::Spool(_) => Outcome::Failed,
            PipelineError::RateLimited { .. } => Outcome::RateLimited,
        }
    }
}
