//! THE status table: every way a webhook request can fail, and the HTTP answer for each.
//!
//! | error                         | status | why                                                        |
//! |-------------------------------|--------|------------------------------------------------------------|
//! | unknown source                | 404    | nothing is configured at this path                          |
//! | wrong method                  | 405    | webhooks are POSTed                                         |
//! | body over the limit           | 413    | never buffered past the limit                               |
//! | header block over the limit   | 431    | before the body is read                                     |
//! | body unreadable               | 400    | the client broke the request                                |
//! | signature missing or wrong    | 401    | not authentic; 4xx so SNS and others stop retrying it       |
//! | payload cannot be mapped      | 422    | authentic but not understood                                |
//! | broker slow, down or refusing | 503    | with `Retry-After`: the provider should send it again       |
//! | too many requests in flight   | 503    | with `Retry-After`, at once: no unbounded queue             |
//! | body not sent in time         | 408    | a slow client holds a worker slot; the provider may resend  |
//! | source over its rate limit    | 429    | with `Retry-After`: when the source has budget again        |
//! | encoding bug                  | 500    | our fault; logged                                           |

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};

use super::reply::{Reply, ServiceOptimizerReply};
use crate::pipeline::PipelineError;
use crate::providers::MapError;
use crate::providers::ReplyStyle;
use crate::verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no source is configured at this path")]
    UnknownSource,
    #[error("webhooks must be sent with POST")]
    MethodNotAllowed,
    #[error("the body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("the request headers are larger than the {limit}-byte limit")]
    HeadersTooLarge { limit: usize },
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout { seconds: u64 },
    #[error("too many webhooks are being handled; retry shortly")]
    Overloaded { retry_after_seconds: u32 },
    #[error("{error}")]
    Pipeline {
        error: PipelineError,
        retry_after_seconds: u32,
        style: ReplyStyle,
    },
    /// A refusal before the pipeline (413, 431, 408, 400, 503 overloaded) for a known source,
    /// answered in that provider's reply shape: ServiceOptimizer reads every answer's body.
    #[error("{error}")]
    ForSource {
        error: Box<IngressError>,
        style: ReplyStyle,
    },
}

impl IngressError {
    /// `error`, answered in `style` (a plain error for the default style).
    pub fn for_source(error: IngressError, style: ReplyStyle) -> IngressError {
        match style {
            ReplyStyle::ServiceOptimizer | ReplyStyle::Empty => IngressError::ForSource {
                error: Box::new(error),
                style,
            },
            _ => error,
        }
    }

    /// The error itself, unwrapped from its reply style.
    fn inner(&self) -> &IngressError {
        match self {
            IngressError::ForSource { error, .. } => error.inner(),
            other => other,
        }
    }

    fn style(&self) -> Option<ReplyStyle> {
        match self {
            IngressError::ForSource { style, .. } | IngressError::Pipeline { style, .. } => {
                Some(*style)
            }
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            IngressError::ForSource { error, .. } => error.code(),
            IngressError::UnknownSource => "unknown_source",
            IngressError::MethodNotAllowed => "method_not_allowed",
            IngressError::PayloadTooLarge { .. } => "payload_too_large",
            IngressError::HeadersTooLarge { .. } => "headers_too_large",
            IngressError::BodyUnreadable => "body_unreadable",
            IngressError::BodyTimeout { .. } => "body_timeout",
            IngressError::Overloaded { .. } => "overloaded",
            IngressError::Pipeline { error, .. } => error.code(),
        }
    }
}

impl ResponseError for IngressError {
    fn status_code(&self) -> StatusCode {
        match self {
            IngressError::ForSource { error, .. } => error.status_code(),
            IngressError::UnknownSource => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            IngressError::BodyUnreadable => StatusCode::BAD_REQUEST,
            IngressError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            IngressError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::Pipeline { error, .. } => match error {
                PipelineError::Verify(VerifyError::MethodNotAllowed) => {
                    StatusCode::METHOD_NOT_ALLOWED
                }
                PipelineError::Verify(_) => StatusCode::UNAUTHORIZED,
                PipelineError::Map(MapError::Upstream(_)) => StatusCode::SERVICE_UNAVAILABLE,
                PipelineError::Map(_) => StatusCode::UNPROCESSABLE_ENTITY,
                PipelineError::Publish(_)
                | PipelineError::InFlight
                | PipelineError::Dedup(_)
                | PipelineError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
                PipelineError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
                PipelineError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let style = self.style();
        let this = self.inner();
        let mut builder = HttpResponse::build(status);
        let retry_after = match this {
            IngressError::Pipeline {
                error: PipelineError::RateLimited { retry_after },
                ..
            } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            IngressError::Pipeline {
                retry_after_seconds,
                ..
            }
            | IngressError::Overloaded {
                retry_after_seconds,
            } if status == StatusCode::SERVICE_UNAVAILABLE => Some(u64::from(*retry_after_seconds)),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            builder.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        // Internal errors are logged where they happen; the body stays generic. So do broker,
        // spool, dedup-store and upstream failures: their text comes from client libraries (hosts,
        // stream names) and is the operator's business, not the caller's. The code says which.
        let message = match this {
            _ if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE => {
                "internal error".to_owned()
            }
            IngressError::Pipeline {
                error:
                    PipelineError::Publish(_)
                    | PipelineError::Spool(_)
                    | PipelineError::Dedup(_)
                    | PipelineError::Map(MapError::Upstream(_)),
                ..
            } => "the event cannot be made safe right now; retry later".to_owned(),
            _ => this.to_string(),
        };
        if style == Some(ReplyStyle::Empty) {
            // The sender reads only the status (Xero checks the body is empty).
            return builder.finish();
        }
        if style == Some(ReplyStyle::ServiceOptimizer) {
            // Any non-zero code means failure to ServiceOptimizer; the HTTP status says which kind.
            let code = status.as_u16().to_string();
            return builder.json(ServiceOptimizerReply {
                success: false,
                code: &code,
                message: &message,
            });
        }
        let label = match status {
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            _ => "rejected",
        };
        builder.json(Reply::error(label, this.code(), message))
    }
}
