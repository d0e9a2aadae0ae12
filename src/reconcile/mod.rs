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
//! A pulled notification has left Docplanner's queue, so the reconciler never drops one: each is
//! published, spooled or dead-lettered before the next page is asked for. One that can be none of
//! these (broker, dedup store and spool all unavailable) stays in hand, pulling stops, and the
//! next round tries it first. Pulling also waits while the source's broker is down, spool or not:
//! Docplanner's queue keeps a notification safer than anything we could do with it then. Errors
//! back off (up to ten intervals); readiness never depends on the Docplanner API.
//!
//! Shutdown does not cut a round short: the notifications in hand are finished (within
//! `shutdown_grace_secs`), no further page is pulled. A reload reaches the reconciler at its next
//! round: a changed `[sources.X.reconcile]` (a rotated `client_secret`) takes effect, a removed
//! source or reconcile table stops it, and [`Supervisor`] starts one for a source that gains it.

pub mod api;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use bytes::Bytes;

use tokio::sync::watch;

use crate::pipeline::{Pipeline, PipelineError, Source};
use crate::providers::{Verified, WebhookRequest};
use crate::source::ReconcileConfig;
use api::{DocplannerApi, Release};

/// Pages pulled in one round at most, so a flood cannot starve the release call or shutdown.
const MAX_PAGES: usize = 1000;

pub struct Reconciler {
    pipeline: Arc<Pipeline>,
    source: Arc<Source>,
    config: ReconcileConfig,
    api: DocplannerApi,
    /// Pulled and not yet published, spooled or dead-lettered, oldest first.
    in_hand: VecDeque<serde_json::Value>,
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
            in_hand: VecDeque::new(),
        })
    }

    /// Runs until `stop` turns true (then finishes what it holds) or its source loses its
    /// reconcile table in a reload.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let name = self.source.config.name.clone();
        tracing::info!(source = %name, pull = self.config.pull, release = self.config.release, "reconciler started");
        let mut next_release = Instant::now();
        let mut backoff = self.config.interval;
        loop {
            if !self.follow_reload() {
                break;
            }
            // Not raced against `stop`: a round cut short would drop the page in hand.
            let healthy = self.round(&mut next_release, &stop).await;
            if *stop.borrow() {
                break;
            }
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
        if !self.in_hand.is_empty() {
            // Shutdown with notifications in hand: one more try each, bounded by the caller's grace.
            let stopped = watch::channel(true).1;
            self.deliver_in_hand(&stopped).await;
        }
        if !self.in_hand.is_empty() {
            tracing::error!(source = %name, held = self.in_hand.len(), "reconciler stopped holding pulled notifications it could not deliver");
        }
        tracing::info!(source = %name, "reconciler stopped");
    }

    /// Picks up a reloaded source; false when the source or its reconcile table is gone.
    fn follow_reload(&mut self) -> bool {
        let Some(current) = self.pipeline.source(&self.source.config.name) else {
            tracing::info!(source = %self.source.config.name, "source removed by a reload: reconciler stops");
            return false;
        };
        let Some(config) = current.config.reconcile.clone() else {
            tracing::info!(source = %self.source.config.name, "reconcile removed by a reload: reconciler stops");
            return false;
        };
        if config != self.config {
            match DocplannerApi::new(config.clone()) {
                Ok(api) => {
                    tracing::info!(source = %self.source.config.name, "reconcile settings reloaded");
                    self.api = api;
                    self.config = config;
                }
                Err(e) => {
                    tracing::error!(source = %self.source.config.name, error = %e, "reloaded reconcile settings unusable: keeping the old ones");
                }
            }
        }
        self.source = current;
        true
    }

    /// One pull-and-release round; false when something failed (so the next one backs off).
    async fn round(&mut self, next_release: &mut Instant, stop: &watch::Receiver<bool>) -> bool {
        let mut healthy = true;
        if self.config.pull {
            healthy &= self.pull_all(stop).await;
        }
        if self.config.release && Instant::now() >= *next_release && !*stop.borrow() {
            healthy &= self.release(next_release).await;
        }
        healthy
    }

    async fn pull_all(&mut self, stop: &watch::Receiver<bool>) -> bool {
        if !self.deliver_in_hand(stop).await {
            return false;
        }
        for _ in 0..MAX_PAGES {
            if *stop.borrow() {
                break;
            }
            if !self.source.publisher.is_healthy() {
                // Pulling removes notifications from Docplanner's queue: leave them there until
                // the broker can take them.
                tracing::debug!(source = %self.source.config.name, "broker down: not pulling");
                return true;
            }
            let page = match self.api.pull().await {
                Ok(page) => page,
                Err(e) => {
                    self.count_error("pull");
                    tracing::warn!(source = %self.source.config.name, error = %e, "pulling notifications failed");
                    return false;
                }
            };
            let pulled = page.notifications.len();
            self.count_n("pulled", pulled as u64);
            self.in_hand.extend(page.notifications);
            if !self.deliver_in_hand(stop).await {
                return false;
            }
            if page.remaining == 0 || pulled == 0 {
                break;
            }
        }
        true
    }

    /// Delivers what is in hand, in order; false (keeping the rest) at the first that cannot be
    /// published, spooled or dead-lettered.
    async fn deliver_in_hand(&mut self, stop: &watch::Receiver<bool>) -> bool {
        while let Some(notification) = self.in_hand.front() {
            match self.deliver(notification).await {
                Ok(outcome) => {
                    self.count(outcome);
                    self.in_hand.pop_front();
                }
                Err(e) => {
                    self.count("failed");
                    tracing::error!(source = %self.source.config.name, code = e.code(), error = %e, held = self.in_hand.len(), stopping = *stop.borrow(), "a pulled notification could not be delivered: kept in hand, pulling paused");
                    return false;
                }
            }
        }
        true
    }

    /// Feeds one pulled notification through the same path as a pushed one.
    async fn deliver(
        &self,
        notification: &serde_json::Value,
    ) -> Result<&'static str, PipelineError> {
        // Re-serialising a parsed JSON value cannot fail; an empty body would be dead-lettered.
        let body = Bytes::from(serde_json::to_vec(notification).unwrap_or_default());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = WebhookRequest {
            method: "POST",
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at: time::OffsetDateTime::now_utc(),
        };
        self.pipeline
            .map_and_deliver(&self.source, &request, Verified::pulled(&request))
            .await
            .map(|accepted| accepted.outcome().as_str())
    }

    async fn release(&self, next_release: &mut Instant) -> bool {
        let name = self.source.config.name.as_str();
        let metrics = self.pipeline.metrics();
        match self.api.release().await {
            Ok(Release::Done) => {
                metrics.reconcile_release(name, "released");
                *next_release = Instant::now() + self.config.release_interval;
                true
            }
            Ok(Release::TooSoon(wait)) => {
                metrics.reconcile_release(name, "rate_limited");
                *next_release = Instant::now() + wait.max(Duration::from_secs(1));
                true
            }
            Ok(Release::NotPushModel) => {
                metrics.reconcile_release(name, "not_push_model");
                tracing::warn!(
                    source = name,
                    "Docplanner refuses release (403): the client is not on the push model"
                );
                *next_release = Instant::now() + Duration::from_secs(24 * 3600);
                true
            }
            Err(e) => {
                metrics.reconcile_release(name, "failed");
                self.count_error("release");
                tracing::warn!(source = name, error = %e, "release failed");
                false
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.count_n(outcome, 1);
    }

    fn count_n(&self, outcome: &str, n: u64) {
        self.pipeline
            .metrics()
            .reconcile_notifications(&self.source.config.name, outcome, n);
    }

    fn count_error(&self, operation: &str) {
        self.pipeline
            .metrics()
            .reconcile_error(&self.source.config.name, operation);
    }
}

/// Keeps one reconciler running per source that has a reconcile table, across reloads.
pub struct Supervisor {
    pipeline: Arc<Pipeline>,
    running: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl Supervisor {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Supervisor {
            pipeline,
            running: HashMap::new(),
        }
    }

    /// Starts the missing reconcilers; an error names the source whose settings are unusable.
    pub fn sync(&mut self, stop: &watch::Receiver<bool>) -> Result<(), (String, String)> {
        self.running.retain(|_, task| !task.is_finished());
        for source in self.pipeline.sources() {
            let Some(config) = &source.config.reconcile else {
                continue;
            };
            if self.running.contains_key(&source.config.name) {
                continue;
            }
            let reconciler = Reconciler::new(self.pipeline.clone(), source.clone(), config.clone())
                .map_err(|reason| (source.config.name.clone(), reason))?;
            self.running.insert(
                source.config.name.clone(),
                tokio::spawn(reconciler.run(stop.clone())),
            );
        }
        Ok(())
    }

    /// Follows reloads until `stop`, then waits up to `grace` for every reconciler to finish the
    /// notifications in hand.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, grace: Duration) {
        let mut reloads = self.pipeline.subscribe_reloads();
        loop {
            tokio::select! {
                changed = reloads.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // A reconciler whose source lost its table notices at its next round; give a
                    // source that regained one a fresh reconciler once the old one has gone.
                    if let Err((source, reason)) = self.sync(&stop) {
                        tracing::error!(%source, %reason, "cannot start a reconciler after a reload");
                    }
                }
                _ = stop.changed() => break,
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        for (source, task) in self.running {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(%source, "a reconciler did not finish within the shutdown grace");
            }
        }
    }
}
