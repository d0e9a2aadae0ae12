//! Wiring: `Application::build(config)` connects the publishers, builds the pipeline, binds the
//! listener and reports the port. `serve`, the integration tests and the benchmark all start the
//! gateway through here, so there is no test-only wiring to drift.

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

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("publisher {name}: {reason}")]
    Publisher { name: String, reason: String },
    #[error("avro schema: {0}")]
    Schema(#[from] crate::event::avro::EncodeError),
    #[error("spool: {0}")]
    Spool(String),
    #[error("dedup store: {0}")]
    Dedup(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    pipeline: Arc<Pipeline>,
    health_task: tokio::task::JoinHandle<()>,
    drain_task: Option<tokio::task::JoinHandle<()>>,
    reconcilers: tokio::task::JoinHandle<()>,
    reload_task: Option<tokio::task::JoinHandle<()>>,
    reload_interval: Duration,
    shutdown_grace: Duration,
    /// The config it started with: what a reload may not change.
    config: Config,
    stop_reconcilers: tokio::sync::watch::Sender<bool>,
    shutting_down: Arc<AtomicBool>,
    shutdown_delay: Duration,
}

pub use crate::https::install_crypto_provider;

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        install_crypto_provider();
        let (pipeline, spool) = build_pipeline(&config).await?;
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
        supervisor
            .sync(&stop_signal)
            .map_err(|(name, reason)| StartupError::Publisher { name, reason })?;
        let reconcilers = tokio::spawn(supervisor.run(stop_signal, config.server.shutdown_grace));

        // One round before serving, so /readyz is truthful from the first probe.
        let interval = config.server.health_interval;
        check_publishers(&pipeline, interval).await;
        let health_task = tokio::spawn(health_loop(pipeline.clone(), interval));

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
        // answers 408 and closes), idle keep-alive, connections per worker, requests per connection.
        .client_request_timeout(config.server.request_head_timeout)
        .keep_alive(config.server.keep_alive)
        .max_connections(config.server.max_connections_per_worker)
        .on_connect(connection::on_connect)
        // Signals are handled by `run_until_stopped`, which knows the shutdown order.
        .disable_signals()
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

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Re-reads `path` (and the secret files it references) on SIGHUP and when they change.
    pub fn watch_config(mut self, path: std::path::PathBuf, env: HashMap<String, String>) -> Self {
        let reloader =
            crate::reload::Reloader::new(path, env, self.pipeline.clone(), self.config.clone());
        self.reload_task = Some(tokio::spawn(reloader.run(self.reload_interval)));
        self
    }

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
        stopper.abort();
        // Reconcilers finish the notifications in hand (the supervisor bounds that by the grace),
        // then stop.
        let _stopping = self.stop_reconcilers.send(true);
        let bound = self.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(bound, self.reconcilers).await.is_err() {
            tracing::warn!("reconcilers did not stop within the shutdown grace");
        }
        self.health_task.abort();
        if let Some(reload) = &self.reload_task {
            reload.abort();
        }
        // The spool needs no closing: every accepted entry was committed durably when it was
        // answered, and an entry is removed only after its broker acknowledged it.
        if let Some(drain) = &self.drain_task {
            drain.abort();
        }
        for publisher in self.pipeline.publishers() {
            publisher.inner.flush(Duration::from_secs(5)).await;
        }
        tracing::info!("stopped");
        result
    }
}

/// Connects the publishers and the dedup store, opens the spool and assembles the pipeline: the
/// part of start-up that `serve` and `redrive` share.
pub async fn build_pipeline(
    config: &Config,
) -> Result<(Arc<Pipeline>, Option<Arc<Spool>>), StartupError> {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;

    let mut publishers = BTreeMap::new();
    for (name, publisher_config) in &config.publishers {
        let inner = AnyPublisher::connect(
            name,
            publisher_config,
            config.server.publish_timeout,
            &metrics,
        )
        .await
        .map_err(|reason| StartupError::Publisher {
            name: name.clone(),
            reason,
        })?;
        publishers.insert(
            name.clone(),
            NamedPublisher::new(name.clone(), inner, &metrics),
        );
    }
    let mut sources = HashMap::new();
    for (name, source_config) in &config.sources {
        // Validation guarantees the publisher exists.
        let Some(publisher) = publishers.get(&source_config.publisher).cloned() else {
            return Err(StartupError::Publisher {
                name: source_config.publisher.clone(),
                reason: format!("not configured (used by source {name})"),
            });
        };
        sources.insert(
            name.clone(),
            Arc::new(Source::new(source_config.clone(), publisher, &metrics)),
        );
    }
    prepare_registries(&publishers, &sources).await?;
    let dedup = match &config.dedup {
        DedupConfig::Memory { capacity } => AnyDedupStore::Memory(
            MemoryDedup::new(*capacity).with_evictions(metrics.dedup_evictions_of("memory")),
        ),
        DedupConfig::Disk { path, capacity } => {
            let store = DiskDedup::open(path, *capacity as u64, metrics.dedup_evictions_of("disk"))
                .map_err(|e| StartupError::Dedup(e.to_string()))?;
            let store = Arc::new(store);
            crate::dedup::disk::spawn_flusher(store.clone());
            AnyDedupStore::Disk(store)
        }
        DedupConfig::Nats {
            url,
            bucket,
            max_age,
            max_bytes,
            token,
        } => {
            let token = token
                .as_ref()
                .map(|t| String::from_utf8_lossy(t.expose()).into_owned());
            let store = NatsKvDedup::connect(url, bucket, *max_age, *max_bytes, token)
                .await
                .map_err(|e| StartupError::Dedup(e.to_string()))?;
            AnyDedupStore::NatsKv(Box::new(store))
        }
    };
    let spool = match &config.spool {
        Some(s) => {
            let spool = Spool::open(&s.path, s.max_bytes)
                .map_err(|e| StartupError::Spool(e.to_string()))?;
            metrics
                .spool_capacity
                .set(i64::try_from(s.max_bytes).unwrap_or(i64::MAX));
            let (events, bytes) = spool.depth();
            if events > 0 {
                tracing::warn!(
                    events,
                    bytes,
                    "the spool holds events from before the restart; draining them first"
                );
            }
            Some(Arc::new(spool))
        }
        None => None,
    };
    let pipeline = Arc::new(Pipeline::new(
        sources,
        publishers.into_values().collect(),
        metrics,
        config.server.publish_timeout,
        dedup,
        spool.clone(),
    )?);
    for publisher in pipeline.publishers() {
        pipeline
            .metrics()
            .initialize_publisher(&publisher.name, publisher.inner.broker());
        if let AnyPublisher::Kafka(kafka) = &publisher.inner {
            pipeline.metrics().initialize_topics(&publisher.name);
            if kafka.has_registry() {
                pipeline.metrics().initialize_registry(&publisher.name);
            }
        }
    }
    for source in pipeline.sources() {
        pipeline
            .metrics()
            .initialize_source(&source.config.name, source.config.reconcile.is_some());
    }
    let certificates = crate::metrics::sns::SnsCertificateCollector::new(&pipeline)?;
    pipeline
        .metrics()
        .registry()
        .register(Box::new(certificates))?;
    Ok((pipeline, spool))
}

/// Registers each Kafka publisher's schemas for the subjects its sources' topics already have: an
/// incompatible schema stops start-up with the registry's reason, an unreachable registry only
/// leaves the publisher unready.
async fn prepare_registries(
    publishers: &BTreeMap<String, Arc<NamedPublisher>>,
    sources: &HashMap<String, Arc<Source>>,
) -> Result<(), StartupError> {
    for (name, publisher) in publishers {
        let AnyPublisher::Kafka(kafka) = &publisher.inner else {
            continue;
        };
        let ours: Vec<&Arc<Source>> = sources
            .values()
            .filter(|s| &s.config.publisher == name)
            .collect();
        let matches = |topic: &str| {
            ours.iter().any(|s| {
                let (source, provider) = (
                    &s.config.name,
                    crate::providers::Provider::kind(&s.config.provider),
                );
                s.config.topic.could_render(topic, source, provider)
                    || s.config
                        .dead_letter_topic
                        .could_render(topic, source, provider)
            })
        };
        kafka
            .prepare_registry(matches)
            .await
            .map_err(|e| StartupError::Publisher {
                name: name.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

async fn health_loop(pipeline: Arc<Pipeline>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        check_publishers(&pipeline, interval).await;
    }
}

async fn check_publishers(pipeline: &Pipeline, interval: Duration) {
    pipeline.export_dedup_usage().await;
    let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(2));
    for publisher in pipeline.publishers() {
        let result = publisher.inner.health_check(timeout).await;
        let healthy = result.is_ok();
        let was = publisher.set_healthy(healthy);
        let broker = publisher.inner.broker();
        publisher.metrics.health_checked(healthy);
        match (was, result) {
            (false, Ok(())) => {
                tracing::info!(publisher = %publisher.name, broker, "publisher is up");
                if let Some(spool) = pipeline.spool() {
                    spool.resume();
                }
            }
            (true, Err(e)) => {
                tracing::warn!(publisher = %publisher.name, broker, error = %e, "publisher is down")
            }
            _ => {}
        }
    }
}
