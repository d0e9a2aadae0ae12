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

/// What happened to an accepted webhook.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// The broker acknowledged the event.
    Published { event_id: EventId, topic: String },
    /// Authentic, handled, nothing to publish (an SNS subscription handshake).
    Handled { code: &'static str },
    /// Already published within the source's dedup window: answered 2xx so the provider stops.
    Duplicate { event_id: EventId },
    /// The broker could not take it in time; it is on disk and will be published by the drainer.
    Spooled { event_id: EventId },
    /// Authentic but not mappable, or refused by the broker for good: kept on the dead-letter topic.
    DeadLettered { code: String },
}

impl Accepted {
    /// The `outcome` label of `hookbridge_webhooks_total` (and of the request histogram).
    pub fn outcome(&self) -> Outcome {
        match self {
            Accepted::Published { .. } => Outcome::Published,
            Accepted::Handled { .. } => Outcome::Handled,
            Accepted::Duplicate { .. } => Outcome::Duplicate,
            Accepted::Spooled { .. } => Outcome::Spooled,
            Accepted::DeadLettered { .. } => Outcome::DeadLettered,
        }
    }
}

/// Why a webhook was not published. Each variant has its own HTTP answer (see `http::error`).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Another request with the same dedup key is being published right now.
    #[error("the same event is being published by another request; retry shortly")]
    InFlight,
    #[error("the dedup store is unavailable")]
    Dedup(#[from] DedupError),
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
            PipelineError::Encode(_)
            | PipelineError::Publish(_)
            | PipelineError::InFlight
            | PipelineError::Dedup(_)
            | PipelineError::Spool(_) => Outcome::Failed,
            PipelineError::RateLimited { .. } => Outcome::RateLimited,
        }
    }
}
