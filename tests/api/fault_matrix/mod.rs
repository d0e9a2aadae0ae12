//! The delivery promise under faults, in every topology the README and `deploy/` recommend:
//! {NATS JetStream, Apache Kafka} publisher × {local, NATS key-value} dedup × {spool, reject},
//! the in-memory dedup store of `hookbridge.example.toml` under the broker faults, plus Docplanner
//! reconciliation against the local model of its API.
//!
//! Every row is the real binary under concurrent load (16 senders, 1,000 distinct webhooks by
//! default; `HB_MATRIX_WEBHOOKS` changes it) with one fault injected while the load runs. Senders
//! behave as the providers do: Cronofy senders (the `reject` rows) retry every non-2xx answer,
//! Docplanner senders (the `spool` rows) send each webhook once, whatever they are answered. Each
//! row then reads everything back with an independent consumer and prints
//! sent / 2xx / spooled / quarantined / consumed / duplicates / lost / slowest answer.
//!
//! The promise, asserted per row: nothing answered 2xx (or pulled from Docplanner) is lost; on NATS
//! no dedup key is consumed twice; on Kafka the only duplicates are those the README names (a
//! publish that timed out at the gateway but was stored by the broker, then published again), at
//! most one per publish timeout counted by the gateway; every answer comes within
//! `publish_timeout_ms` plus a small margin.
//!
//! `mod.rs` holds the topologies, the faults and the test; `run.rs` runs one row, on the process
//! in `gateway.rs`, the config and read-back in `row.rs`, the senders in `load.rs` and the faults
//! in `faults.rs`; `tally.rs` counts, checks and prints.

mod faults;
mod gateway;
mod load;
mod row;
mod run;
mod tally;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faults::Brokers;
use run::{pull_row, push_row};

const SENDERS: usize = 16;
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(1000);
/// What an answer may take beyond the publish deadline: HTTP and scheduling on two shared cores,
/// the dedup store's calls (a quarter of the deadline each), and the spool's fsync'd write. That
/// write waits for at most the commit on disk and its own group's (`spool/append.rs`); committed
/// one by one, sixteen spooling senders once queued an answer 2.9 s behind each other's fsyncs.
const ANSWER_MARGIN: Duration = Duration::from_millis(2000);
/// The load is spread over this long, so the fault lands in the middle of it.
const LOAD_SPAN: Duration = Duration::from_secs(4);
const DP_KEY: &str = "dp-matrix-key";
const DP_CLIENT: (&str, &str) = ("matrix-client", "matrix-secret");

fn webhooks() -> usize {
    std::env::var("HB_MATRIX_WEBHOOKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    Nats,
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedup {
    /// The single-replica store on the gateway's own disk.
    Local,
    /// The NATS key-value bucket every replica shares.
    NatsKv,
    /// The single-replica store in the gateway's memory (the example config's).
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Spool,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The broker is killed and restarted (a real restart, data kept).
    BrokerRestart,
    /// The dedup store is unreachable (NATS killed and restarted; with NATS as the broker too,
    /// both are gone).
    DedupDown,
    /// The gateway is `kill -9`ed with entries in the spool, then restarted.
    Kill9,
    /// The broker is paused (SIGSTOP) past the publish deadline, then resumed.
    BrokerPause,
    /// An entry that can never be delivered sits at the spool's head.
    PoisonHead,
    /// Two replicas share the dedup store; every webhook goes to both at once.
    TwoReplicas,
    /// SIGTERM while the reconciler is in the middle of pulling pages, then a restart.
    ReconcileShutdown,
    /// The broker dies right after a pull; the notifications in hand must not be lost.
    ReconcileBrokerFailure,
}

#[derive(Debug, Clone, Copy)]
struct Topology {
    broker: Broker,
    dedup: Dedup,
    policy: Policy,
}

impl Topology {
    fn name(&self) -> String {
        format!(
            "{} · {} · {}",
            match self.broker {
                Broker::Nats => "nats",
                Broker::Kafka => "kafka",
            },
            match self.dedup {
                Dedup::Local => "disk dedup",
                Dedup::NatsKv => "nats kv dedup",
                Dedup::Memory => "memory dedup",
            },
            match self.policy {
                Policy::Spool => "spool",
                Policy::Reject => "reject",
            }
        )
    }

    fn needs_nats(&self) -> bool {
        self.broker == Broker::Nats || self.dedup == Dedup::NatsKv
    }
}

/// Every row of the matrix: each topology under each fault it can meet.
fn matrix() -> Vec<(Topology, Fault)> {
    use Broker::*;
    use Dedup::*;
    use Fault::*;
    use Policy::*;
    let mut rows: Vec<(Topology, Fault)> = Vec::new();
    for broker in [Nats, Kafka] {
        for dedup in [Local, NatsKv, Memory] {
            for policy in [Spool, Reject] {
                let t = Topology {
                    broker,
                    dedup,
                    policy,
                };
                rows.push((t, BrokerRestart));
                rows.push((t, BrokerPause));
                // The memory store meets only the broker faults: it has no outage or second
                // replica of its own, and a `kill -9` forgets its keys by design (the README says
                // to use the disk or NATS store where that matters).
                if dedup == Memory {
                    continue;
                }
                if dedup == NatsKv {
                    rows.push((t, DedupDown));
                    rows.push((t, TwoReplicas));
                }
                if policy == Spool {
                    rows.push((t, Kill9));
                    rows.push((t, PoisonHead));
                }
            }
        }
        // Docplanner with reconciliation, in the recommended topology for each broker.
        let t = Topology {
            broker,
            dedup: if broker == Nats { NatsKv } else { Local },
            policy: Spool,
        };
        rows.push((t, ReconcileShutdown));
        rows.push((t, ReconcileBrokerFailure));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delivery_promise_holds_under_every_fault_in_every_topology() {
    let mut rows = matrix();
    if let Ok(only) = std::env::var("HB_MATRIX_ONLY") {
        rows.retain(|(t, f)| format!("{} {f:?}", t.name()).contains(&only));
    }
    hookbridge::startup::install_crypto_provider();
    let mut brokers = Brokers { kafka: None };
    let mut table = Vec::new();
    let started = Instant::now();
    for (topology, fault) in rows {
        let row_started = Instant::now();
        let tally = match fault {
            Fault::ReconcileShutdown | Fault::ReconcileBrokerFailure => {
                pull_row(topology, fault, &mut brokers).await
            }
            _ => push_row(topology, fault, &mut brokers).await,
        };
        let line = tally::line(topology, fault, &tally, row_started.elapsed());
        println!("{line}");
        table.push((line, tally.problems.is_empty()));
    }
    let summary = tally::summary(&table, started.elapsed());
    println!("\n{summary}");
    // scripts/test prints this file after the tests: libtest keeps a passing test's output.
    let _written = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix.txt"),
        &summary,
    );
    let failed: BTreeMap<usize, &String> = table
        .iter()
        .enumerate()
        .filter(|(_, (_, ok))| !ok)
        .map(|(i, (l, _))| (i, l))
        .collect();
    assert!(
        failed.is_empty(),
        "rows that broke the promise:\n{failed:#?}"
    );
}
