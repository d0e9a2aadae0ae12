//! `hookbridge_sns_certificate_cache_hits_total{source}` and
//! `hookbridge_sns_certificate_fetches_total{source}`, read from each SNS source's verifier at
//! scrape time. A collector rather than counters updated on the request path: the verifier is a
//! shared block that knows nothing of Prometheus, and reading two atomics per scrape is free. After
//! a config reload a source's verifier is new, which Prometheus sees as an ordinary counter reset.

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, Opts};

use crate::pipeline::Pipeline;
use crate::providers::AnyProvider;

pub struct SnsCertificateCollector {
    pipeline: Weak<Pipeline>,
    template_hits: IntCounterVec,
    template_fetches: IntCounterVec,
}

fn vectors() -> Result<(IntCounterVec, IntCounterVec), prometheus::Error> {
    Ok((
        IntCounterVec::new(
            Opts::new(
                "hookbridge_sns_certificate_cache_hits_total",
                "SNS signing certificates served from the cache.",
            ),
            &["source"],
        )?,
        IntCounterVec::new(
            Opts::new(
                "hookbridge_sns_certificate_fetches_total",
                "SNS signing certificates fetched over HTTPS (after URL validation).",
            ),
            &["source"],
        )?,
    ))
}

impl SnsCertificateCollector {
    pub fn new(pipeline: &Arc<Pipeline>) -> Result<Self, prometheus::Error> {
        let (template_hits, template_fetches) = vectors()?;
        Ok(SnsCertificateCollector {
            pipeline: Arc::downgrade(pipeline),
            template_hits,
            template_fetches,
        })
    }
}

impl Collector for SnsCertificateCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.template_hits.desc();
        descs.extend(self.template_fetches.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return Vec::new();
        };
        let Ok((hits, fetches)) = vectors() else {
            return Vec::new();
        };
        for source in pipeline.sources() {
            if let AnyProvider::TimeTap(t) = &source.config.provider {
                let (h, f) = t.cert_stats();
                hits.with_label_values(&[&source.config.name]).inc_by(h);
                fetches.with_label_values(&[&source.config.name]).inc_by(f);
            }
        }
        let mut families = hits.collect();
        families.extend(fetches.collect());
        families
    }
}
