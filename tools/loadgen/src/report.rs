//! The load generator's report: printed for people, and as one JSON object for `scripts/bench`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::consume::Consumed;
use super::{Load, LoadOptions};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Summary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Summary {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConsumerReport {
    /// Distinct events of this run read back from the broker.
    pub events: u64,
    /// Events of this run read more than once (a dedup failure if the broker holds them twice).
    pub duplicates: u64,
    /// Sampled events decoded with the published schema, and those that did not decode.
    pub decoded: u64,
    pub undecodable: u64,
    /// Sent → consumed.
    pub end_to_end: Summary,
}

#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// `closed` (N connections, back to back) or `open` (a fixed rate).
    pub mode: &'static str,
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub seconds: f64,
    pub sent: u64,
    pub ok: u64,
    /// 2xx answers per second over the measured phase.
    pub ok_per_second: f64,
    /// Every status seen, with counts; non-2xx ones are the ones to read.
    pub statuses: BTreeMap<u16, u64>,
    pub with_retry_after: u64,
    pub io_errors: u64,
    pub first_io_error: Option<String>,
    /// Latency of 2xx answers (open loop: from when each request was due).
    pub latency: Summary,
    /// Latency of every other answer (how fast the excess is told to come back).
    pub rejected_latency: Summary,
    pub consumer: Option<ConsumerReport>,
}

impl LoadReport {
    pub(super) fn new(
        options: &LoadOptions,
        load: Load,
        elapsed: Duration,
        consumed: Option<Consumed>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        LoadReport {
            mode: if options.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            connections: options.connections,
            target_rate: options.rate,
            seconds,
            sent: load.statuses.values().sum::<u64>() + load.io_errors,
            ok: load.ok,
            ok_per_second: if seconds > 0.0 {
                load.ok as f64 / seconds
            } else {
                0.0
            },
            latency: load.summary(),
            rejected_latency: Summary::of(&load.rejected_latency),
            statuses: load.statuses,
            with_retry_after: load.with_retry_after,
            io_errors: load.io_errors,
            first_io_error: load.first_io_error,
            consumer: consumed.map(|c| ConsumerReport {
                events: c.events,
                duplicates: c.duplicates,
                decoded: c.decoded,
                undecodable: c.undecodable,
                end_to_end: Summary::of(&c.end_to_end),
            }),
        }
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn percentiles(f: &mut fmt::Formatter<'_>, label: &str, s: &Summary) -> fmt::Result {
    writeln!(
        f,
        "  {label:<16} n={:<9} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
        s.count,
        ms(s.p50_us),
        ms(s.p90_us),
        ms(s.p99_us),
        ms(s.p999_us),
        ms(s.max_us)
    )
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .target_rate
            .map_or_else(String::new, |r| format!(" at {r:.0} req/s"));
        writeln!(
            f,
            "loadgen: {} loop, {} connections{rate}, {:.1} s",
            self.mode, self.connections, self.seconds
        )?;
        writeln!(
            f,
            "  sent {}  2xx {}  ({:.0} req/s)  io errors {}",
            self.sent, self.ok, self.ok_per_second, self.io_errors
        )?;
        let others: Vec<String> = self
            .statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        if !others.is_empty() {
            writeln!(
                f,
                "  non-2xx: {}  ({} with Retry-After)",
                others.join(" "),
                self.with_retry_after
            )?;
        }
        if let Some(error) = &self.first_io_error {
            writeln!(f, "  first io error: {error}")?;
        }
        percentiles(f, "2xx latency", &self.latency)?;
        if self.rejected_latency.count > 0 {
            percentiles(f, "non-2xx latency", &self.rejected_latency)?;
        }
        if let Some(c) = &self.consumer {
            writeln!(
                f,
                "  consumed {} of {} accepted ({} duplicates; {} sampled decoded, {} undecodable)",
                c.events, self.ok, c.duplicates, c.decoded, c.undecodable
            )?;
            percentiles(f, "sent → consumed", &c.end_to_end)?;
        }
        Ok(())
    }
}
