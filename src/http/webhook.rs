//! `POST /webhooks/{source}` (and a handshake's `GET`): read the request within the source's limits, hand it to the pipeline,
//! answer with what the pipeline decided.

use std::time::Instant;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use time::OffsetDateTime;

use super::AppState;
use super::error::IngressError;
use super::reply;
use crate::metrics::{Metrics, Outcome};
use crate::pipeline::{Accepted, PipelineError};
use crate::providers::Provider as _;
use crate::providers::WebhookRequest;

pub async fn receive(
    request: HttpRequest,
    source: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, IngressError> {
    let started = Instant::now();
    let pipeline = &state.pipeline;
    let metrics = pipeline.metrics();
    let Some(source) = pipeline.source(&source) else {
        metrics.unknown_source.inc();
        return Err(IngressError::UnknownSource);
    };
    // From here on the source is known: every refusal takes its provider's reply shape.
    let style = source.config.provider.reply_style();
    let refuse = |error| IngressError::for_source(error, style);
    // GET reaches a source only when its handshake comes that way (Dropbox, Okta).
    if !source
        .config
        .provider
        .accepts_method(request.method().as_str())
    {
        return Err(refuse(IngressError::MethodNotAllowed));
    }
    // Back-pressure: a full gateway says so at once instead of queueing without bound.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        source.metrics.webhook(Outcome::Overloaded);
        return Err(refuse(IngressError::Overloaded {
            retry_after_seconds: state.retry_after_seconds,
        }));
    };
    let _in_flight = InFlight::enter(metrics);

    // Headers are parsed by now (the codec caps them at 128 KiB); a webhook needs far less.
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > state.max_header_bytes {
        source.metrics.webhook(Outcome::TooLarge);
        return Err(refuse(IngressError::HeadersTooLarge {
            limit: state.max_header_bytes,
        }));
    }

    // One deadline for the whole body: a client trickling bytes cannot hold this slot for long.
    let read = read_body(&request, payload, source.config.body_limit_bytes);
    let body = match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            source.metrics.webhook(match e {
                IngressError::PayloadTooLarge { .. } => Outcome::TooLarge,
                _ => Outcome::Unreadable,
            });
            return Err(refuse(e));
        }
        Err(_elapsed) => {
            source.metrics.webhook(Outcome::TimedOut);
            return Err(refuse(IngressError::BodyTimeout {
                seconds: state.body_timeout.as_secs(),
            }));
        }
    };
    let webhook = WebhookRequest {
        method: request.method().as_str(),
        headers: request.headers(),
        query: request.query_string(),
        body: &body,
        peer: request.peer_addr().map(|a| a.ip()),
        received_at: OffsetDateTime::now_utc(),
    };
    let result = pipeline.process(&source, &webhook).await;
    let outcome = result
        .as_ref()
        .map_or_else(PipelineError::outcome, Accepted::outcome);
    source.metrics.request_finished(outcome, started.elapsed());
    match result {
        Ok(accepted) => Ok(reply::success(style, &accepted)),
        Err(error) => Err(IngressError::Pipeline {
            error,
            retry_after_seconds: state.retry_after_seconds,
            style,
        }),
    }
}

/// Reads the body, refusing early on a declared length over `limit` and never buffering past it.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, IngressError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(IngressError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| IngressError::BodyUnreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(IngressError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Keeps `hookbridge_in_flight_requests` right on every exit path.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.in_flight.inc();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

pub async fn method_not_allowed() -> Result<HttpResponse, IngressError> {
    Err(IngressError::MethodNotAllowed)
}

pub async fn not_found() -> Result<HttpResponse, IngressError> {
    Err(IngressError::UnknownSource)
}
