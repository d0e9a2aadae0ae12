//! A configured source as the pipeline runs it: its config, its publisher, its rate limiter and
//! its metric handles, built together at start and at every reload.

use std::sync::Arc;

use super::rate_limit::RateLimiter;
use crate::metrics::{Metrics, SourceMetrics};
use crate::providers::Provider;
use crate::publish::NamedPublisher;
use crate::source::SourceConfig;

/// A configured source with the publisher its events go to.
pub struct Source {
    /// As validated; a reload builds a new `Source`, so a request never sees two configs.
    pub config: SourceConfig,
    /// Shared with every source that names it: publishers outlive reloads.
    pub publisher: Arc<NamedPublisher>,
    /// The source's rate limit, when it has one. A reload starts it afresh.
    pub(super) limiter: Option<RateLimiter>,
    /// Its request-path metric handles, resolved once here rather than by label lookup (a hash
    /// and a lock) on every webhook.
    pub metrics: SourceMetrics,
}

impl Source {
    pub fn new(config: SourceConfig, publisher: Arc<NamedPublisher>, metrics: &Metrics) -> Self {
        Source {
            metrics: SourceMetrics::new(
                metrics,
                &config.name,
                config.provider.kind(),
                config.reconcile.is_some(),
            ),
            limiter: config.rate_limit.map(RateLimiter::new),
            config,
            publisher,
        }
    }
}
