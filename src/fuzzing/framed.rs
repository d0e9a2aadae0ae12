//! A fuzz input read as an HTTP request, in the framing the module docs of `fuzzing` describe.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

use super::{NOW, PEER};
use crate::providers::WebhookRequest;

/// A fuzz input read as an HTTP request (see the module docs for the framing).
pub struct Framed {
    /// `POST` unless the `:method:` pseudo-header says `GET` (a handshake).
    pub method: &'static str,
    pub headers: HeaderMap,
    pub query: String,
    pub body: Bytes,
}

impl Framed {
    pub fn parse(data: &[u8]) -> Framed {
        let mut headers = HeaderMap::new();
        let mut query = String::new();
        let mut method = "POST";
        let Some(end) = header_block_end(data) else {
            return Framed {
                method,
                headers,
                query,
                body: Bytes::copy_from_slice(data),
            };
        };
        let (head, body) = data.split_at(end);
        for line in head.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(value) = line.strip_prefix(b":query:") {
                query = String::from_utf8_lossy(value.trim_ascii()).into_owned();
                continue;
            }
            if let Some(value) = line.strip_prefix(b":method:") {
                method = if value.trim_ascii() == b"GET" {
                    "GET"
                } else {
                    "POST"
                };
                continue;
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = line.split_at(colon);
            let value = value.get(1..).unwrap_or_default().trim_ascii();
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.trim_ascii()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(n, v);
            }
        }
        Framed {
            method,
            headers,
            query,
            body: Bytes::copy_from_slice(body),
        }
    }

    pub fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            method: self.method,
            headers: &self.headers,
            query: &self.query,
            body: &self.body,
            peer: Some(PEER),
            received_at: NOW,
        }
    }
}

/// Where the body starts: just after the first empty line (`\n\n` or `\n\r\n`), or at the very
/// start when the input opens with an empty line.
fn header_block_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\n") {
        return Some(1);
    }
    if data.starts_with(b"\r\n") {
        return Some(2);
    }
    data.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(i + 2),
        b"\n\r" if data.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}
