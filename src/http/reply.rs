//! The small JSON bodies every answer carries. They say what happened in words a provider's support
//! engineer can act on, and never echo the request or any secret.

use serde::Serialize;

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
