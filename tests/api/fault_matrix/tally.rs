//! What one row measured, the promise checked against it, and the table the matrix prints.

use std::time::Duration;

use super::row::Row;
use super::{ANSWER_MARGIN, Broker, Fault, PUBLISH_TIMEOUT, Policy, Topology, webhooks};

/// What one row measured.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) sent: usize,
    pub(super) answered_2xx: usize,
    pub(super) spooled: f64,
    pub(super) quarantined: f64,
    pub(super) consumed: usize,
    pub(super) duplicates: usize,
    pub(super) lost: usize,
    pub(super) slowest: Duration,
    /// Publishes that timed out at the gateway: each may leave one duplicate on Kafka.
    pub(super) timeouts: f64,
    pub(super) problems: Vec<String>,
}

/// The promise, per row.
pub(super) fn check(row: &Row, tally: &mut Tally) {
    if tally.lost > 0 {
        tally
            .problems
            .push(format!("{} answered 2xx but never consumed", tally.lost));
    }
    match row.topology.broker {
        Broker::Nats if tally.duplicates > 0 => tally
            .problems
            .push(format!("{} duplicates on NATS", tally.duplicates)),
        Broker::Kafka if tally.duplicates as f64 > tally.timeouts => tally.problems.push(format!(
            "{} duplicates on Kafka, more than the {} publish timeouts that explain them",
            tally.duplicates, tally.timeouts
        )),
        _ => {}
    }
    let bound = PUBLISH_TIMEOUT + ANSWER_MARGIN;
    // The gateway's own restart (kill -9) is not an answer: connection errors there are instant.
    if tally.slowest > bound {
        tally.problems.push(format!(
            "slowest answer {:?}, over {:?}",
            tally.slowest, bound
        ));
    }
    if row.topology.policy == Policy::Reject && tally.answered_2xx < tally.sent {
        tally.problems.push(format!(
            "{} of {} never answered 2xx although the sender retried",
            tally.sent - tally.answered_2xx,
            tally.sent
        ));
    }
}

/// The printed line of one row that took `took`.
pub(super) fn line(topology: Topology, fault: Fault, tally: &Tally, took: Duration) -> String {
    format!(
        "| {:<34} | {:<22} | {:>5} | {:>5} | {:>7} | {:>11} | {:>8} | {:>10} | {:>4} | {:>7.0} ms | {:>4.1} s | {}",
        topology.name(),
        format!("{fault:?}"),
        tally.sent,
        tally.answered_2xx,
        tally.spooled,
        tally.quarantined,
        tally.consumed,
        tally.duplicates,
        tally.lost,
        tally.slowest.as_secs_f64() * 1000.0,
        took.as_secs_f64(),
        if tally.problems.is_empty() {
            "ok".to_owned()
        } else {
            tally.problems.join("; ")
        },
    )
}

/// The whole table: a heading, then each row's line and whether it kept the promise, for a matrix
/// that took `took`.
pub(super) fn summary(table: &[(String, bool)], took: Duration) -> String {
    format!(
        "fault matrix, {} rows, {} webhooks each, in {:.0} s:\n| {:<34} | {:<22} | {:>5} | {:>5} | {:>7} | {:>11} | {:>8} | {:>10} | {:>4} | {:>10} | {:>6} | result\n{}\n",
        table.len(),
        webhooks(),
        took.as_secs_f64(),
        "topology",
        "fault",
        "sent",
        "2xx",
        "spooled",
        "quarantined",
        "consumed",
        "duplicates",
        "lost",
        "slowest",
        "time",
        table
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    )
}
