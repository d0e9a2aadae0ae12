//! The small JSON bodies every answer carries. They say what happened in words a provider's support
//! engineer can act on, and never echo the request or any secret.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::pipeline::Accepted;
use crate::providers::ReplyStyle;

/// `{"status": "...", "code": "...", "message": "...", "event_id": "..."}`
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    pub status: &'a str,
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<&'a str>,
}

impl<'a> Reply<'a> {
    pub fn published(event_id: &'a str) -> Self {
        Reply {
            status: "published",
            code: "ok",
            message: None,
            event_id: Some(event_id),
        }
    }

    pub fn error(status: &'a str, code: &'a str, message: String) -> Self {
        Reply {
            status,
            code,
            message: Some(message),
            event_id: None,
        }
    }
}

/// ServiceOptimizer's reply shape; it reads the body, not only the status.
#[derive(Debug, Serialize)]
pub struct ServiceOptimizerReply<'a> {
    #[serde(rename = "Success")]
    pub success: bool,
    #[serde(rename = "Code")]
    pub code: &'a str,
    #[serde(rename = "Message")]
    pub message: &'a str,
}

/// The 2xx answer for an accepted webhook, in the provider's style.
pub fn success(style: ReplyStyle, accepted: &Accepted) -> HttpResponse {
    match (style, accepted) {
        // A handshake's answer is the sender's protocol, whatever the source's style.
        (_, Accepted::Answered(answer)) => {
            let mut reply = HttpResponse::Ok();
            reply.content_type(answer.content_type);
            for (name, value) in &answer.headers {
                reply.insert_header((*name, value.as_str()));
            }
            reply.body(answer.body.clone())
        }
        (ReplyStyle::Empty, _) => HttpResponse::Ok().finish(),
        (ReplyStyle::Fixed(body), _) => HttpResponse::Ok()
            .content_type("application/json")
            .body(body),
        (ReplyStyle::ServiceOptimizer, _) => HttpResponse::Ok().json(ServiceOptimizerReply {
            success: true,
            code: "0",
            message: "OK",
        }),
        (ReplyStyle::Standard, Accepted::Published { event_id, .. }) => {
            HttpResponse::Ok().json(Reply::published(event_id.as_str()))
        }
        (ReplyStyle::Standard, Accepted::DeadLettered { code }) => {
            HttpResponse::Accepted().json(Reply {
                status: "dead_lettered",
                code,
                message: None,
                event_id: None,
            })
        }
        (ReplyStyle::Standard, Accepted::Spooled { event_id }) => {
            HttpResponse::Accepted().json(Reply {
                status: "spooled",
                code: "spooled",
                message: None,
                event_id: Some(event_id.as_str()),
            })
        }
        (ReplyStyle::Standard, Accepted::Duplicate { event_id }) => {
            HttpResponse::Ok().json(Reply {
                status: "duplicate",
                code: "duplicate",
                message: None,
                event_id: Some(event_id.as_str()),
            })
        }
        (ReplyStyle::Standard, Accepted::Handled { code }) => HttpResponse::Ok().json(Reply {
            status: "handled",
            code,
            message: None,
            event_id: None,
        }),
    }
}
