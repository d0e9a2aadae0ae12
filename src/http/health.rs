//! `/healthz` (the process is alive), `/readyz` (a webhook sent now can be made safe) and
//! `/metrics`.
//!
//! Readiness: every publisher passed its last health check, or, with a spool that still has room,
//! the gateway is *degraded but ready*: it can still accept durably. Without that, a broker outage
//! would take every replica out of the Service exactly when the spool should catch the pushes of
//! providers that never resend (Docplanner).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "shutting_down"}));
    }
    let publishers = state.pipeline.publishers();
    let down: Vec<&str> = publishers
        .iter()
        .filter(|p| !p.is_healthy())
        .map(|p| p.name.as_str())
        .collect();
    let spool_has_room = state.pipeline.spool().is_some_and(|s| s.has_room());
    if down.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else if spool_has_room {
        HttpResponse::Ok()
            .json(json!({"status": "degraded", "publishers_down": down, "spooling": true}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unready", "publishers_down": down}))
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match state.pipeline.metrics().render() {
        Ok(text) => HttpResponse::Ok()
            .content_type(ContentType(
                "text/plain; version=0.0.4; charset=utf-8"
                    .parse()
                    .unwrap_or(mime_text()),
            ))
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            HttpResponse::InternalServerError()
                .json(json!({"status": "error", "code": "metrics_failed"}))
        }
    }
}

fn mime_text() -> actix_web::mime::Mime {
    actix_web::mime::TEXT_PLAIN_UTF_8
}
