//! Docplanner reconciliation: recover what the push missed.
//!
//! Docplanner documents that a pushed notification is not retried (other pages speak of a few
//! resends), and offers two recoveries, both run here per source when configured:
//! - **pull**: every `interval`, `/notifications/multiple` until nothing remains; each notification
//!   goes through exactly the same mapping, dedup, publish and dead-letter path as a pushed one.
//!   The dedup key is built from the notification's stable fields, so one that arrived both ways is
//!   published once;
//! - **release**: at most once per `release_interval` (Docplanner allows one an hour, answering 429
//!   with `Retry-After` otherwise), ask Docplanner to push again what it considers unprocessed.
//!
//! A pulled notification has left Docplanner's queue, so pulling waits while the source's broker is
//! down unless the source spools. Errors back off (up to ten intervals); readiness never depends on
//! the Docplanner API; the loop stops when shutdown begins.

pub mod api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use bytes::Bytes;

use crate::config::{BrokerFailure, ReconcileConfig};
use crate::pipeline::{Pipeline, Source};
use crate::providers::{Verified, WebhookRequest};
use api::{DocplannerApi, Release};

/// Pages pulled in one round at most, so a flood cannot starve the release call or shutdown.
const MAX_PAGES: usize = 1000;

pub struct Reconciler {
    pipeline: Arc<Pipeline>,
    source: Arc<Source>,
    config: ReconcileConfig,
    api: DocplannerApi,
}

impl Reconciler {
    pub fn new(
        pipeline: Arc<Pipeline>,
        source: Arc<Source>,
        config: ReconcileConfig,
    ) -> Result<Self, String> {
        let api = DocplannerApi::new(config.clone())?;
        Ok(Reconciler {
            pipeline,
            source,
            config,
            api,
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let name = self.source.config.name.clone();
        tracing::info!(source = %name, pull = self.config.pull, release = self.config.release, "reconciler started");
        let mut next_release = Instant::now();
        let mut backoff = self.config.interval;
        loop {
            let healthy = tokio::select! {
                ok = self.round(&mut next_release) => ok,
                _ = stop.changed() => break,
            };
            let wait = if healthy {
                backoff = self.config.interval;
                self.config.interval
            } else {
                backoff = (backoff * 2).min(self.config.interval * 10);
                backoff
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
        }
        tracing::info!(source = %name, "reconciler stopped");
    }

    /// One pull-and-release round; false when the API failed (so the next one backs off).
    async fn round(&self, next_release: &mut Instant) -> bool {
        let mut healthy = true;
        if self.config.pull {
            healthy &= self.pull_all().await;
        }
        if self.config.release && Instant::now() >= *next_release {
            healthy &= self.release(next_release).await;
        }
        healthy
    }

    async fn pull_all(&self) -> bool {
        let spools = self.pipeline.spool().is_some()
            && self.source.config.on_broker_failure == BrokerFailure::Spool;
        if !spools && !self.source.publisher.is_healthy() {
            // Pulling removes notifications from Docplanner's queue: leave them there until the
            // broker can take them.
            tracing::debug!(source = %self.source.config.name, "broker down and no spool: not pulling");
            return true;
        }
        for _ in 0..MAX_PAGES {
            let page = match self.api.pull().await {
                Ok(page) => page,
                Err(e) => {
                    self.count_error("pull");
                    tracing::warn!(source = %self.source.config.name, error = %e, "pulling notifications failed");
                    return false;
                }
            };
            let pulled = page.notifications.len();
            for notification in page.notifications {
                self.deliver(notification).await;
            }
            if page.remaining == 0 || pulled == 0 {
                break;
            }
        }
        true
    }

    /// Feeds one pulled notification through the same path as a pushed one.
    async fn deliver(&self, notification: serde_json::Value) {
        let name = self.source.config.name.as_str();
        self.count("pulled");
        let body = match serde_json::to_vec(&notification) {
            Ok(bytes) => Bytes::from(bytes),
            Err(_) => {
                self.count("failed");
                return;
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = WebhookRequest {
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at: time::OffsetDateTime::now_utc(),
        };
        let outcome = match self
            .pipeline
            .map_and_deliver(&self.source, &request, Verified::pulled(&request))
            .await
        {
            Ok(accepted) => accepted.outcome(),
            Err(e) => {
                tracing::error!(source = name, code = e.code(), error = %e, "a pulled notification could not be delivered");
                "failed"
            }
        };
        self.count(outcome);
    }

    async fn release(&self, next_release: &mut Instant) -> bool {
        let name = self.source.config.name.as_str();
        let releases = &self.pipeline.metrics().reconcile_releases;
        match self.api.release().await {
            Ok(Release::Done) => {
                releases.with_label_values(&[name, "released"]).inc();
                *next_release = Instant::now() + self.config.release_interval;
                true
            }
            Ok(Release::TooSoon(wait)) => {
                releases.with_label_values(&[name, "rate_limited"]).inc();
                *next_release = Instant::now() + wait.max(Duration::from_secs(1));
                true
            }
            Ok(Release::NotPushModel) => {
                releases.with_label_values(&[name, "not_push_model"]).inc();
                tracing::warn!(
                    source = name,
                    "Docplanner refuses release (403): the client is not on the push model"
                );
                *next_release = Instant::now() + Duration::from_secs(24 * 3600);
                true
            }
            Err(e) => {
                releases.with_label_values(&[name, "failed"]).inc();
                self.count_error("release");
                tracing::warn!(source = name, error = %e, "release failed");
                false
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.pipeline
            .metrics()
            .reconcile_notifications
            .with_label_values(&[&self.source.config.name, outcome])
            .inc();
    }

    fn count_error(&self, operation: &str) {
        self.pipeline
            .metrics()
            .reconcile_errors
            .with_label_values(&[&self.source.config.name, operation])
            .inc();
    }
}
