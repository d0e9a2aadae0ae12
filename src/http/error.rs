//! THE status table: every way a webhook request can fail, and the HTTP answer for each.
//!
//! | error                         | status | why                                                        |
//! |-------------------------------|--------|------------------------------------------------------------|
//! | unknown source                | 404    | nothing is configured at this path                          |
//! | wrong method                  | 405    | webhooks are POSTed                                         |
//! | body over the limit           | 413    | never buffered past the limit                               |
//! | body unreadable               | 400    | the client broke the request                                |
//! | signature missing or wrong    | 401    | not authentic; 4xx so SNS and others stop retrying it       |
//! | payload cannot be mapped      | 422    | authentic but not understood                                |
//! | broker slow, down or refusing | 503    | with `Retry-After`: the provider should send it again       |
//! | too many requests in flight   | 503    | with `Retry-After`, at once: no unbounded queue             |
//! | encoding bug                  | 500    | our fault; logged                                           |

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};

use super::reply::{Reply, ServiceOptimizerReply};
use crate::pipeline::PipelineError;
use crate::providers::MapError;
use crate::providers::ReplyStyle;

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("no source is configured at this path")]
    UnknownSource,
    #[error("webhooks must be sent with POST")]
    MethodNotAllowed,
    #[error("the body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("too many webhooks are being handled; retry shortly")]
    Overloaded { retry_after_seconds: u32 },
    #[error("{error}")]
    Pipeline {
        error: PipelineError,
        retry_after_seconds: u32,
        style: ReplyStyle,
    },
}

impl IngressError {
    pub fn code(&self) -> &'static str {
        match self {
            IngressError::UnknownSource => "unknown_source",
            IngressError::MethodNotAllowed => "method_not_allowed",
            IngressError::PayloadTooLarge { .. } => "payload_too_large",
            IngressError::BodyUnreadable => "body_unreadable",
            IngressError::Overloaded { .. } => "overloaded",
            IngressError::Pipeline { error, .. } => error.code(),
        }
    }
}

impl ResponseError for IngressError {
    fn status_code(&self) -> StatusCode {
        match self {
            IngressError::UnknownSource => StatusCode::NOT_FOUND,
            IngressError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngressError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngressError::BodyUnreadable => StatusCode::BAD_REQUEST,
            IngressError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngressError::Pipeline { error, .. } => match error {
                PipelineError::Verify(_) => StatusCode::UNAUTHORIZED,
                PipelineError::Map(MapError::Upstream(_)) => StatusCode::SERVICE_UNAVAILABLE,
                PipelineError::Map(_) => StatusCode::UNPROCESSABLE_ENTITY,
                PipelineError::Publish(_)
                | PipelineError::InFlight
                | PipelineError::Dedup(_)
                | PipelineError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
                PipelineError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut builder = HttpResponse::build(status);
        let retry_after = match self {
            IngressError::Pipeline {
                retry_after_seconds,
                ..
            }
            | IngressError::Overloaded {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        };
        if let Some(seconds) = retry_after
            && status == StatusCode::SERVICE_UNAVAILABLE
        {
            builder.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        // Internal errors are logged where they happen; the body stays generic.
        let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        if let IngressError::Pipeline {
            style: ReplyStyle::ServiceOptimizer,
            ..
        } = self
        {
            // Any non-zero code means failure to ServiceOptimizer; the HTTP status says which kind.
            let code = status.as_u16().to_string();
            return builder.json(ServiceOptimizerReply {
                success: false,
                code: &code,
                message: &message,
            });
        }
        let label = if status == StatusCode::SERVICE_UNAVAILABLE {
            "unavailable"
        } else {
            "rejected"
        };
        builder.json(Reply::error(label, self.code(), message))
    }
}
