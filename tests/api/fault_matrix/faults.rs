//! The faults injected into a running row: the broker or the dedup store stopped and started
//! again, the broker paused past the publish deadline; and the matrix's own Kafka they act on.

use std::time::Duration;

use super::Broker;
use super::row::Row;
use crate::brokers::KafkaBroker;

/// The matrix's own Kafka: restarted and paused by its rows, so shared with no other test.
pub(super) struct Brokers {
    pub(super) kafka: Option<KafkaBroker>,
}

impl Brokers {
    pub(super) fn kafka(&mut self) -> &mut KafkaBroker {
        self.kafka.get_or_insert_with(KafkaBroker::start)
    }
}

/// Stops, then starts again after `down`, the broker or store that `what` names.
#[derive(Clone, Copy)]
pub(super) enum Target {
    Broker,
    DedupStore,
}

pub(super) async fn outage(row: &mut Row, brokers: &mut Brokers, target: Target, down: Duration) {
    if matches!(target, Target::Broker) {
        stop_broker(row, brokers);
        tokio::time::sleep(down).await;
        start_broker(row, brokers).await;
    } else if let Some(nats) = row.nats.as_mut() {
        // The dedup store: the key-value bucket's NATS (with a NATS broker, the same server).
        nats.stop();
        tokio::time::sleep(down).await;
        nats.restart();
    }
}

pub(super) async fn pause(row: &Row, brokers: &mut Brokers, down: Duration) {
    match row.topology.broker {
        Broker::Kafka => {
            brokers.kafka().pause();
            tokio::time::sleep(down).await;
            brokers.kafka().resume();
        }
        Broker::Nats => {
            let nats = row.nats.as_ref().expect("nats");
            nats.pause();
            tokio::time::sleep(down).await;
            nats.resume();
        }
    }
}

pub(super) fn stop_broker(row: &mut Row, brokers: &mut Brokers) {
    match row.topology.broker {
        Broker::Kafka => brokers.kafka().stop(),
        Broker::Nats => row.nats.as_mut().expect("nats").stop(),
    }
}

pub(super) async fn start_broker(row: &mut Row, brokers: &mut Brokers) {
    match row.topology.broker {
        Broker::Kafka => {
            let kafka = brokers.kafka.take();
            let kafka = tokio::task::spawn_blocking(move || {
                let mut kafka = kafka.expect("kafka started");
                kafka.restart();
                kafka
            })
            .await
            .expect("restart kafka");
            brokers.kafka = Some(kafka);
        }
        Broker::Nats => row.nats.as_mut().expect("nats").restart(),
    }
}
