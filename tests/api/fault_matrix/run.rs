//! One row's run: the gateways started, the load sent with the fault injected, then the spools
//! drained, the read-back and the tally. Push rows take webhooks from senders; pull rows leave the
//! notifications in the Docplanner model for the reconciler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::faults::{Brokers, Target, outage, pause, start_broker, stop_broker};
use super::gateway::{Gateway, quarantine_command};
use super::load::{RowLoad, docplanner_body, docplanner_notification, run_load};
use super::row::Row;
use super::tally::{Tally, check};
use super::{Broker, DP_CLIENT, DP_KEY, Fault, PUBLISH_TIMEOUT, Policy, Topology, webhooks};
use crate::docplanner_model::DocplannerModel;
use crate::helpers::metric_value;

/// Runs one push row: load with the fault injected, then the read-back and the tally.
pub(super) async fn push_row(topology: Topology, fault: Fault, brokers: &mut Brokers) -> Tally {
    let mut row = Row::new(topology, fault);
    let kafka = match topology.broker {
        Broker::Kafka => brokers.kafka().bootstrap(),
        Broker::Nats => String::new(),
    };
    let n = webhooks();
    let load = Arc::new(RowLoad {
        provider: row.provider(),
        retries: topology.policy == Policy::Reject,
        tags: (0..n).map(|i| row.tag(i)).collect(),
    });
    let replicas = if fault == Fault::TwoReplicas { 2 } else { 1 };
    let mut gateways = Vec::new();
    for replica in 0..replicas {
        gateways.push(row.gateway(&kafka, replica, None).await);
    }
    let targets = Arc::new(std::sync::Mutex::new(
        gateways
            .iter()
            .map(|(g, _)| g.base.clone())
            .collect::<Vec<_>>(),
    ));
    let poison_status = stop_broker_first(fault, &mut row, brokers, &gateways[0].0).await;
    let loader = tokio::spawn(run_load(load.clone(), n, targets.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    inject(fault, &mut row, brokers, &mut gateways).await;
    let sent = loader.await.expect("load");
    let mut tally = Tally {
        sent: n,
        answered_2xx: sent.iter().filter(|s| s.ok).count(),
        slowest: sent.iter().map(|s| s.slowest).max().unwrap_or_default(),
        ..Tally::default()
    };
    // Everything the gateways accepted is on its way: wait for the spools to drain.
    wait_for_spools(&gateways).await;
    count_gateway_metrics(&gateways, &mut tally).await;
    let (consumed, duplicates) = row.consume(&kafka, tally.answered_2xx).await;
    tally.consumed = consumed.len();
    tally.duplicates = duplicates;
    tally.lost = (0..n)
        .filter(|i| sent[*i].ok && !consumed.contains_key(&row.tag(*i)))
        .count();
    if let Some(status) = poison_status {
        check_poison(status, &mut gateways[0].0, &mut tally);
    }
    check(&row, &mut tally);
    tally
}

/// Kill -9 and poison-head rows start with the broker down; the poison row sends its poison
/// webhook to `gateway` then. Returns the poison webhook's status.
async fn stop_broker_first(
    fault: Fault,
    row: &mut Row,
    brokers: &mut Brokers,
    gateway: &Gateway,
) -> Option<u16> {
    let mut poison_status = None;
    if matches!(fault, Fault::Kill9 | Fault::PoisonHead) {
        // The broker is down from the start, so the spool fills.
        stop_broker(row, brokers);
        if fault == Fault::PoisonHead {
            let http = reqwest::Client::new();
            let answer = http
                .post(format!("{}/webhooks/poison", gateway.base))
                .header("X-Api-Key", DP_KEY)
                .header("content-type", "application/json")
                .body(docplanner_body("poison"))
                .send()
                .await
                .map(|a| a.status().as_u16())
                .unwrap_or(0);
            poison_status = Some(answer);
        }
    }
    poison_status
}

/// Injects `fault` into the running row.
async fn inject(
    fault: Fault,
    row: &mut Row,
    brokers: &mut Brokers,
    gateways: &mut [(Gateway, u16)],
) {
    match fault {
        Fault::BrokerRestart => {
            outage(row, brokers, Target::Broker, Duration::from_millis(1500)).await
        }
        Fault::DedupDown => {
            outage(
                row,
                brokers,
                Target::DedupStore,
                Duration::from_millis(1500),
            )
            .await
        }
        Fault::BrokerPause => {
            pause(row, brokers, PUBLISH_TIMEOUT + Duration::from_millis(1000)).await
        }
        Fault::Kill9 => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (gateway, port) = &mut gateways[0];
            gateway.kill9();
            start_broker(row, brokers).await;
            gateway.restart(*port).await;
        }
        Fault::PoisonHead => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            start_broker(row, brokers).await;
        }
        Fault::TwoReplicas => {}
        Fault::ReconcileShutdown | Fault::ReconcileBrokerFailure => unreachable!("pull rows"),
    }
}

/// Waits, up to a minute, until no gateway has anything left in its spool.
async fn wait_for_spools(gateways: &[(Gateway, u16)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = 0.0;
        for (g, _) in gateways {
            waiting += metric_value(&g.metrics().await, "hookbridge_spool_events", &[]);
        }
        if waiting == 0.0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Adds what the gateways counted to the tally: webhooks spooled, entries quarantined, publishes
/// timed out.
async fn count_gateway_metrics(gateways: &[(Gateway, u16)], tally: &mut Tally) {
    for (g, _) in gateways {
        let text = g.metrics().await;
        tally.spooled += metric_value(
            &text,
            "hookbridge_webhooks_total",
            &[("outcome", "spooled")],
        );
        tally.quarantined += metric_value(&text, "hookbridge_spool_quarantined", &[]);
        tally.timeouts += metric_value(
            &text,
            "hookbridge_broker_errors_total",
            &[("reason", "publish_timeout")],
        );
    }
}

/// The poison row's own checks: its webhook was accepted, it is the one entry quarantined, and on
/// the stopped gateway `hookbridge quarantine` lists it and requeues it.
fn check_poison(status: u16, gateway: &mut Gateway, tally: &mut Tally) {
    if !(200..300).contains(&status) {
        tally
            .problems
            .push(format!("the poison webhook was answered {status}"));
    }
    if tally.quarantined != 1.0 {
        tally.problems.push(format!(
            "{} entries quarantined, expected the poison one",
            tally.quarantined
        ));
    }
    // The operator's view, on the stopped gateway's spool: listed, then requeued.
    gateway.kill9();
    let listed = quarantine_command(&gateway.config, &[]);
    if !listed.contains("source=poison") || !listed.contains("1 entries in quarantine") {
        tally
            .problems
            .push(format!("hookbridge quarantine listed: {listed}"));
    }
    let requeued = quarantine_command(&gateway.config, &["--requeue"]);
    if !requeued.contains("requeued 1 entries") {
        tally
            .problems
            .push(format!("hookbridge quarantine --requeue: {requeued}"));
    }
}

/// A pull row: Docplanner holds `n` notifications that only the reconciler can fetch.
pub(super) async fn pull_row(topology: Topology, fault: Fault, brokers: &mut Brokers) -> Tally {
    let mut row = Row::new(topology, fault);
    let kafka = match topology.broker {
        Broker::Kafka => brokers.kafka().bootstrap(),
        Broker::Nats => String::new(),
    };
    let n = webhooks();
    let model = DocplannerModel::start(DP_CLIENT.0, DP_CLIENT.1, Duration::from_secs(3600)).await;
    for i in 0..n {
        model.enqueue(docplanner_notification(&row.tag(i)));
    }
    let (mut gateway, port) = row.gateway(&kafka, 0, Some(&model.base)).await;
    // Wait until the reconciler is in the middle of it: some pages pulled, more remaining.
    let deadline = Instant::now() + Duration::from_secs(30);
    while model.queued() > n - n / 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pulled_before = n - model.queued();
    match fault {
        Fault::ReconcileShutdown => {
            tokio::task::block_in_place(|| gateway.terminate());
            gateway.restart(port).await;
        }
        Fault::ReconcileBrokerFailure => {
            outage(
                &mut row,
                brokers,
                Target::Broker,
                Duration::from_millis(1500),
            )
            .await;
        }
        _ => unreachable!("push rows"),
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while model.queued() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pulled = n - model.queued();
    let (consumed, duplicates) = row.consume(&kafka, pulled).await;
    let text = gateway.metrics().await;
    let mut tally = Tally {
        sent: n,
        answered_2xx: pulled,
        spooled: metric_value(
            &text,
            "hookbridge_reconcile_notifications_total",
            &[("outcome", "spooled")],
        ),
        quarantined: metric_value(&text, "hookbridge_spool_quarantined", &[]),
        consumed: consumed.len(),
        duplicates,
        timeouts: metric_value(
            &text,
            "hookbridge_broker_errors_total",
            &[("reason", "publish_timeout")],
        ),
        ..Tally::default()
    };
    tally.lost = (0..n)
        .filter(|i| !consumed.contains_key(&row.tag(*i)))
        .count()
        .saturating_sub(n - pulled);
    if pulled_before == 0 {
        tally
            .problems
            .push("the fault came before the first pull".into());
    }
    if pulled < n {
        tally
            .problems
            .push(format!("{} notifications never pulled", n - pulled));
    }
    check(&row, &mut tally);
    tally
}
