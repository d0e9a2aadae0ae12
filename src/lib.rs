//! hookbridge: one ingress for third-party webhooks. Each request is verified with its provider's
//! scheme, mapped to a canonical Avro event and published to Kafka or NATS JetStream; the provider
//! gets 2xx only once the broker has acknowledged.
//!
//! # Layout
//! Data walks one way, and the modules read in that order:
//! - [`config`]: the TOML file, environment overrides, secret references, validation.
//! - [`http`]: routes, the webhook handler, health and metrics endpoints, the status table.
//! - [`providers`]: one file per provider: how it proves authenticity and how its payload maps.
//! - [`verify`]: the shared verification blocks providers are built from (HMAC, ...).
//! - [`event`]: the canonical event, its Avro encoding and CloudEvents attributes.
//! - [`pipeline`]: verify → map → encode → publish; the one place outcomes are decided.
//! - [`publish`]: the `Publisher` trait, Kafka and NATS JetStream, topic templates, the schema
//!   registry (Confluent wire format).
//! - [`dead_letter`]: the record kept for a webhook that could not be mapped or published.
//! - [`metrics`]: the Prometheus catalogue.
//! - [`dedup`], [`spool`], [`redrive`]: the delivery guarantees: one event per dedup key (memory,
//!   disk or NATS key-value), durable acceptance while a broker or the dedup store is down (with a
//!   quarantine for what can never be delivered), and recovering dead letters once a mapping is
//!   fixed.
//! - [`reconcile`]: pulling what a provider's push missed (Docplanner), through the same pipeline.
//! - [`reload`]: secret rotation without a restart (SIGHUP or a changed file).
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
