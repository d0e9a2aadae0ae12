//! Wiring: `Application::build(config)` connects the publishers, builds the pipeline, binds the
//! listener and reports the port. `serve`, the integration tests and the benchmark all start the
//! gateway through here, so there is no test-only wiring to drift.
//!
//! The order is the promise. The pipeline (publishers, dedup store, spool) is complete before
//! anything can use it; the drainer starts at once on what a previous run spooled, and new events
//! for the same publisher queue behind it; one health round runs before the listener is bound, so
//! `/readyz` is truthful from the first probe. Shutdown runs the other way: unready, stop
//! accepting, finish in-flight requests, let reconcilers finish what they pulled, flush.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use prometheus::Registry;

use crate::config::{Config, DedupConfig};
use crate::dedup::AnyDedupStore;
use crate::dedup::disk::DiskDedup;
use crate::dedup::memory::MemoryDedup;
use crate::dedup::nats_kv::NatsKvDedup;
use crate::http::{AppState, connection, routes};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Source};
use crate::publish::{AnyPublisher, NamedPublisher, Publisher};
use crate::reconcile::Supervisor;
use crate::spool::Spool;
use crate::spool::drain::Drainer;

mod build;
mod health;

pub use build::build_pipeline;
use health::{check_publishers, health_loop};

/// Why the gateway could not start; `main` logs it and exits non-zero. An unreachable broker is
/// not among them: its publisher starts unready and `/readyz` says so until it recovers.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A collector could not be registered in the fresh registry: a bug, not a config problem.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A publisher could not be set up (client settings, a schema the registry finds incompatible),
    /// or a source's reconcile settings are unusable; `name` says which.
    #[error("publisher {name}: {reason}")]
    Publisher { name: String, reason: String },
    /// The embedded Avro schemas do not parse.
    #[error("avro schema: {0}")]
    Schema(#[from] crate::event::avro::EncodeError),
    /// The spool file cannot be opened or read back (path, permissions, a damaged file).
    #[error("spool: {0}")]
    Spool(String),
    /// The dedup store cannot be opened (disk) or set up (the NATS bucket).
    #[error("dedup store: {0}")]
    Dedup(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running gateway: the bound server and the background tasks it owns, which
/// `run_until_stopped` ends in order.
pub struct Application {
    /// The port actually bound: with port 0 (the tests) only this says where to send.
    port: u16,
    server: Server,
    pipeline: Arc<Pipeline>,
    /// Checks the publishers every `health_interval`: it feeds `/readyz` and wakes the drainer.
    health_task: tokio::task::JoinHandle<()>,
    /// `None` without a `[spool]`.
    drain_task: Option<tokio::task::JoinHandle<()>>,
    /// The reconcile supervisor: awaited on shutdown, so pulled notifications are not cut short.
    reconcilers: tokio::task::JoinHandle<()>,
    /// Started by `watch_config`; `None` when nothing watches the config file.
    reload_task: Option<tokio::task::JoinHandle<()>>,
    reload_interval: Duration,
    shutdown_grace: Duration,
    /// The config it started with: what a reload may not change.
    config: Config,
    stop_reconcilers: tokio::sync::watch::Sender<bool>,
    /// Set first on shutdown: `/readyz` answers 503 while the listener still serves.
    shutting_down: Arc<AtomicBool>,
    /// How long the gateway stays unready but serving, so load balancers stop sending first.
    shutdown_delay: Duration,
}

pub use crate::https::install_crypto_provider;

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Before anything opens a TLS connection: reqwest is built without a crypto provider of
        // its own and panics when none is installed.
        install_crypto_provider();
        let (pipeline, spool) = build_pipeline(&config).await?;
        // The drainer starts on whatever a previous run left in the spool (even after `kill -9`);
        // new events for the same publisher queue behind those (`Spool::pending_for`).
        let drain_task = spool.map(|spool| {
            tokio::spawn(
                Drainer {
                    spool,
                    sink: pipeline.clone(),
                    metrics: pipeline.metrics().clone(),
                }
                .run(),
            )
        });

        // Reconcilers (Docplanner pull/release) run beside the server, follow reloads and stop
        // with it, finishing the notifications they hold.
        let (stop_reconcilers, stop_signal) = tokio::sync::watch::channel(false);
        let mut supervisor = Supervisor::new(pipeline.clone());
        // A source whose reconcile settings cannot be used stops start-up, named by its source.
        supervisor
            .sync(&stop_signal)
            .map_err(|(name, reason)| StartupError::Publisher { name, reason })?;
        let reconcilers = tokio::spawn(supervisor.run(stop_signal, config.server.shutdown_grace));

        // One round before serving, so /readyz is truthful from the first probe.
        let interval = config.server.health_interval;
        check_publishers(&pipeline, interval).await;
        let health_task = tokio::spawn(health_loop(pipeline.clone(), interval));

        // Bound here rather than by actix, so the real port (0 in the tests) is known before
        // the server runs.
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: addr.to_string(),
                source,
            })?
            .port();
        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            pipeline: pipeline.clone(),
            retry_after_seconds: config.server.retry_after_seconds,
            // Past `max_in_flight` the answer is 503 at once, never a queue: memory stays bounded
            // under overload.
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.server.max_in_flight)),
            shutting_down: shutting_down.clone(),
            body_timeout: config.server.body_timeout,
            max_requests_per_connection: config.server.max_requests_per_connection,
            max_header_bytes: config.server.max_header_bytes,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(connection::limit_requests))
                .configure(routes)
        })
        .workers(config.server.workers)
        // Slow and abusive clients (see SECURITY.md): a deadline for the request head (actix-web
        // answers 408 and closes), idle keep-alive, connections per worker, requests per
        // connection.
        .client_request_timeout(config.server.request_head_timeout)
        .keep_alive(config.server.keep_alive)
        .max_connections(config.server.max_connections_per_worker)
        .on_connect(connection::on_connect)
        // Signals are handled by `run_until_stopped`, which knows the shutdown order.
        .disable_signals()
        // In-flight requests get `shutdown_grace` to finish once the listener has closed.
        .shutdown_timeout(config.server.shutdown_grace.as_secs())
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?
        .run();
        tracing::info!(port, "hookbridge listening");
        Ok(Application {
            port,
            server,
            pipeline,
            health_task,
            drain_task,
            reconcilers,
            reload_task: None,
            reload_interval: config.server.reload_interval,
            shutdown_grace: config.server.shutdown_grace,
            config: config.clone(),
            stop_reconcilers,
            shutting_down,
            shutdown_delay: config.server.shutdown_delay,
        })
    }

    /// The port bound (the tests listen on port 0 and read it here).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running pipeline, the same one the server uses: what the tests inspect.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Re-reads `path` (and the secret files it references) on SIGHUP and when they change.
    /// Sources, their secrets and reconcile settings are swapped; a change to what the gateway
    /// started with (`[server]`, `[dedup]`, `[spool]`, publishers) is `restart_required`.
    pub fn watch_config(mut self, path: std::path::PathBuf, env: HashMap<String, String>) -> Self {
        let reloader =
            crate::reload::Reloader::new(path, env, self.pipeline.clone(), self.config.clone());
        self.reload_task = Some(tokio::spawn(reloader.run(self.reload_interval)));
        self
    }

    /// Stops the server from outside, as the tests do, without a signal.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish and
    /// flushes the publishers.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let shutting_down = self.shutting_down.clone();
        let delay = self.shutdown_delay;
        let stopper = tokio::spawn(async move {
            shutdown.await;
            // Unready first, so load balancers stop sending before the listener closes.
            shutting_down.store(true, Ordering::Relaxed);
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutting down: readiness is false"
            );
            tokio::time::sleep(delay).await;
            tracing::info!("no longer accepting; finishing in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        // The server may have ended on its own (an error): the stopper must not outlive it.
        stopper.abort();
        // Reconcilers finish the notifications in hand (the supervisor bounds that by the grace),
        // then stop.
        let _stopping = self.stop_reconcilers.send(true);
        // The supervisor bounds itself by the grace; the extra second only keeps a wedged one from
        // holding the exit for ever.
        let bound = self.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(bound, self.reconcilers).await.is_err() {
            tracing::warn!("reconcilers did not stop within the shutdown grace");
        }
        // Nothing the health loop or the reloader does needs finishing: stopped outright.
        self.health_task.abort();
        if let Some(reload) = &self.reload_task {
            reload.abort();
        }
        // The spool needs no closing: every accepted entry was committed durably when it was
        // answered, and an entry is removed only after its broker acknowledged it.
        if let Some(drain) = &self.drain_task {
            drain.abort();
        }
        // Every event answered `published` was acknowledged already, and spooled ones are on
        // disk. Flushing lets what is still in a client's queue (a publish that timed out) reach
        // the broker rather than die with the process.
        for publisher in self.pipeline.publishers() {
            publisher.inner.flush(Duration::from_secs(5)).await;
        }
        // The disk dedup store makes its commits durable once a second: the keys confirmed in
        // the last second would otherwise be forgotten by a clean stop, and their resends
        // published again.
        self.pipeline.flush_dedup().await;
        tracing::info!("stopped");
        result
    }
}
