#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed assertion
//! hookbridge's integration tests, compiled into one binary (link time matters on 2 cores).
//! Every broker test runs against real brokers started by `brokers/`.

mod abuse;
mod bad_input;
mod broker_outage;
mod brokers;
mod config_check;
mod consumers;
mod cronofy;
mod dead_letters;
mod delivery;
mod docplanner_model;
mod fault_matrix;
// The harnesses it replays exist only with the `fuzzing` feature (`cargo test --features fuzzing`,
// as scripts/test runs it), so that the gateway's own build does not carry them.
#[cfg(feature = "fuzzing")]
mod fuzz_regressions;
mod golden;
mod handshakes;
mod helpers;
mod ingress;
mod lifecycle;
mod loadgen;
mod metrics_catalogue;
mod reconcile;
mod registry;
mod reload;
mod secrets_in_logs;
mod spool;
