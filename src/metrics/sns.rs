//! `hookbridge_sns_certificate_cache_hits_total{source}` and
//! `hookbridge_sns_certificate_fetches_total{source}`, read from each SNS source's verifier at
//! scrape time. A collector rather than counters updated on the request path: the verifier is a
//! shared block that knows nothing of Prometheus, and reading two atomics per scrape is free. After
//! a config reload a source's verifier is new, which Prometheus sees as an ordinary counter reset.

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, Opts};

/// What can list each source's certificate counters: the pipeline, which holds the sources. A
/// trait here, so that metrics knows nothing of the pipeline or of which providers fetch.
pub trait CertificateCounts: Send + Sync {
    /// `(source, cache hits, fetches)` for each source whose provider fetches certificates.
    fn certificate_counts(&self) -> Vec<(String, u64, u64)>;
}

pub struct SnsCertificateCollector {
    counts: Weak<dyn CertificateCounts>,
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
    pub fn new<C: CertificateCounts + 'static>(counts: &Arc<C>) -> Result<Self, prometheus::Error> {
        let (template_hits, template_fetches) = vectors()?;
        let counts: Weak<C> = Arc::downgrade(counts);
        Ok(SnsCertificateCollector {
            counts,
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
        let Some(counts) = self.counts.upgrade() else {
            return Vec::new();
        };
        let Ok((hits, fetches)) = vectors() else {
            return Vec::new();
        };
        for (source, h, f) in counts.certificate_counts() {
            hits.with_label_values(&[&source]).inc_by(h);
            fetches.with_label_values(&[&source]).inc_by(f);
        }
        let mut families = hits.collect();
        families.extend(fetches.collect());
        families
    }
}
