//! Building the pipeline from a validated config: publishers, sources with their metric handles,
//! the dedup store and the spool, in the order the promise needs.

use super::*;

/// Connects the publishers and the dedup store, opens the spool and assembles the pipeline: the
/// part of start-up that `serve` and `redrive` share.
pub async fn build_pipeline(
    config: &Config,
) -> Result<(Arc<Pipeline>, Option<Arc<Spool>>), StartupError> {
    // A registry per build, never the default one: two gateways in one test process do not
    // collide (`AlreadyReg`), and each test reads its own.
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;

    let mut publishers = BTreeMap::new();
    // A publisher that cannot be set up stops start-up with its name; an unreachable broker
    // does not (the publisher starts unready).
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
    // Before serving: an incompatible schema stops start-up with the registry's reason, while
    // an unreachable registry only leaves the publisher unready.
    prepare_registries(&publishers, &sources).await?;
    let dedup = match &config.dedup {
        DedupConfig::Memory { capacity } => AnyDedupStore::Memory(
            MemoryDedup::new(*capacity).with_evictions(metrics.dedup_evictions_of("memory")),
        ),
        DedupConfig::Disk { path, capacity } => {
            let store = DiskDedup::open(path, *capacity as u64, metrics.dedup_evictions_of("disk"))
                .map_err(|e| StartupError::Dedup(e.to_string()))?;
            let store = Arc::new(store);
            // Commits are made durable once a second by this task: a crash forgets at most the
            // last second of keys, which the broker-side id still absorbs on NATS.
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
            // The token is a `Secret`; exposed here only to hand it to the client.
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
            // A spool that cannot be opened stops start-up: serving without it, a spooling source
            // would answer 503 to providers that never resend.
            let spool = Spool::open(&s.path, s.max_bytes)
                .map_err(|e| StartupError::Spool(e.to_string()))?;
            // Set once: the bound only changes with a restart.
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
    // Every series exists from zero, so `rate()` and the alert rules see it before the first
    // event.
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
    // Read at scrape time from the SNS verifiers, which hold no Prometheus handles.
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
        // Only subjects one of its topics (event or dead letter) could render: others in a shared
        // registry are none of ours.
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
