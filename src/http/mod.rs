//! The HTTP surface: routes and the shared state handlers see.

pub mod connection;
pub mod error;
pub mod health;
pub mod reply;
pub mod webhook;

use std::sync::Arc;

use actix_web::web;

use crate::pipeline::Pipeline;

/// What every handler can reach.
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub retry_after_seconds: u32,
    /// Bounds the webhook requests handled at once (back-pressure without a queue).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Set on SIGTERM: `/readyz` answers 503 so traffic drains before the listener closes.
    pub shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// Deadline for a webhook's whole body, once its headers are in.
    pub body_timeout: std::time::Duration,
    /// Requests one connection may carry before it is closed.
    pub max_requests_per_connection: u32,
    /// Largest header block a webhook may carry.
    pub max_header_bytes: usize,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks/{source}")
            .route(web::post().to(webhook::receive))
            .route(web::get().to(webhook::receive))
            .default_service(web::to(webhook::method_not_allowed)),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .default_service(web::to(webhook::not_found));
}
