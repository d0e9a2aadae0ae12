//! hookbridge: one ingress for third-party webhooks. Each request is verified with its provider's
//! scheme, mapped to a canonical Avro event and published to Kafka or NATS JetStream; the provider
//! gets 2xx only once the broker has acknowledged.
//!
//! # Layout
//! Modules depend downwards only (no cycle between top-level modules); the picture, the
//! background tasks and who owns what are in `docs/architecture.md`. From the request inwards:
//! - [`http`]: routes, the webhook handler, health and metrics endpoints, the status table.
//! - [`pipeline`]: allowlist → verify → rate limit → map → dedup → publish, spool or dead-letter;
//!   the one place outcomes are decided, shared by requests, the drainer, reconcile and redrive.
//! - [`providers`]: one file per provider: how it proves authenticity, how its payload maps, and
//!   its facts (dedup window, resends, kept headers, sample webhook); `any.rs` tables the kinds.
//! - [`verify`]: the shared verification blocks providers are built from; no provider names.
//! - [`event`]: the canonical event, the Avro codec of both records, CloudEvents attributes.
//! - [`publish`]: the `Publisher` trait, Kafka and NATS JetStream, topic templates, the schema
//!   registry (Confluent wire format), `[publishers.*]`.
//! - [`dedup`], [`spool`]: one event per dedup key (memory, disk or NATS key-value); durable
//!   acceptance while a broker or the dedup store is down, with a quarantine.
//! - [`dead_letter`]: the record kept for a webhook that could not be mapped or published.
//! - [`source`]: a validated `[sources.*]` table and the rules that span provider and policy.
//! - [`reconcile`], [`redrive`], [`reload`]: pulling what a push missed (Docplanner), replaying
//!   dead letters, and new config or secrets without a restart.
//! - [`config`]: the file, environment overrides, assembling each module's section.
//! - [`metrics`]: the Prometheus catalogue, outcome names, one method per metric event.
//! - Leaves: [`secret`] (secret references), [`section`] (config issues, table parsing),
//!   [`https`] (the outbound client).
//! - [`startup`], [`shutdown`], [`telemetry`], [`cli`]: running the process.
//! - `fuzzing` (hidden, only with the `fuzzing` feature): the fuzz harnesses, shared by `fuzz/` and
//!   the regression test.
//!
//! Outside this package: `tools/loadgen` (`hookbridge-loadgen`, the benchmark's load generator) and
//! `fuzz/` (the cargo-fuzz targets), so that the gateway binary links neither.

pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod dedup;
pub mod event;
// Test code, not product: only `fuzz/` and the regression test (`scripts/test` passes
// `--features fuzzing`) compile it.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod https;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod publish;
pub mod reconcile;
pub mod redrive;
pub mod reload;
pub mod secret;
pub mod section;
pub mod shutdown;
pub mod source;
pub mod spool;
pub mod startup;
pub mod telemetry;
pub mod verify;
