//! The load generator's consumer: reads the topics back while the load runs and reports how many of
//! this run's events arrived, how many twice, and how long each took from sending to consuming.
//!
//! Each event is recognised by the tag in its `subject` CloudEvents header (see `sign`); one event
//! in [`DECODE_EVERY`] is also decoded with the published schema, to prove the bytes are events.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hookbridge::config::RawPublisher;
use hookbridge::event::avro::EventCodec;
use tokio::time::Instant;

use super::{latency_histogram, sign, unix_micros};

/// Decode one event in this many (decoding all would take CPU from the gateway under test).
const DECODE_EVERY: u64 = 64;

/// Where one source's events land.
pub enum Endpoint {
    Nats { url: String, subject: String },
    Kafka { bootstrap: String, topic: String },
}

impl Endpoint {
    pub fn of(publisher: &RawPublisher, topic: String) -> Self {
        match publisher {
            RawPublisher::Nats(n) => Endpoint::Nats {
                url: n.url.clone(),
                subject: topic,
            },
            RawPublisher::Kafka(k) => Endpoint::Kafka {
                bootstrap: k.bootstrap_servers.clone(),
                topic,
            },
        }
    }

    pub fn key(&self) -> String {
        match self {
            Endpoint::Nats { url, subject } => format!("nats {url} {subject}"),
            Endpoint::Kafka { bootstrap, topic } => format!("kafka {bootstrap} {topic}"),
        }
    }
}

/// What the consumer saw of the measured run.
pub struct Consumed {
    pub events: u64,
    pub duplicates: u64,
    pub decoded: u64,
    pub undecodable: u64,
    /// Sent → consumed, µs.
    pub end_to_end: Histogram<u64>,
}

struct Tally {
    seen: HashSet<u64>,
    consumed: Consumed,
    last_event: Instant,
}

pub struct Consumer {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Consumer {
    /// Subscribes to every endpoint, counting events of `run` only.
    pub async fn start(endpoints: Vec<Endpoint>, run: u32) -> Result<Self, String> {
        let tally = Arc::new(Mutex::new(Tally {
            seen: HashSet::new(),
            consumed: Consumed {
                events: 0,
                duplicates: 0,
                decoded: 0,
                undecodable: 0,
                end_to_end: latency_histogram(),
            },
            last_event: Instant::now(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for endpoint in endpoints {
            let record = Recorder {
                tally: tally.clone(),
                run,
            };
            match endpoint {
                Endpoint::Nats { url, subject } => {
                    let client = async_nats::connect(&url)
                        .await
                        .map_err(|e| format!("consumer: nats {url}: {e}"))?;
                    let mut subscription = client
                        .subscribe(subject.clone())
                        .await
                        .map_err(|e| format!("consumer: subscribe {subject}: {e}"))?;
                    // The subscription is live once the server has it; flush makes sure.
                    client
                        .flush()
                        .await
                        .map_err(|e| format!("consumer: nats flush: {e}"))?;
                    let stop = stop.clone();
                    tasks.push(tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let next = tokio::time::timeout(
                                Duration::from_millis(100),
                                subscription.next(),
                            )
                            .await;
                            let Ok(Some(message)) = next else { continue };
                            let subject = message
                                .headers
                                .as_ref()
                                .and_then(|h| h.get("ce-subject"))
                                .map(|v| v.as_str().to_owned());
                            record.event(subject.as_deref(), &message.payload);
                        }
                    }));
                }
                Endpoint::Kafka { bootstrap, topic } => {
                    let stop = stop.clone();
                    tasks.push(tokio::task::spawn_blocking(move || {
                        if let Err(e) = consume_kafka(&bootstrap, &topic, &record, &stop) {
                            tracing::error!(error = %e, "load generator's kafka consumer stopped");
                        }
                    }));
                }
            }
        }
        Ok(Consumer { tally, stop, tasks })
    }

    /// Waits until `expected` events arrived or none did for `idle`, then stops and reports.
    pub async fn finish(self, expected: u64, idle: Duration) -> Consumed {
        loop {
            let (events, last) = {
                let tally = lock(&self.tally);
                (tally.consumed.events, tally.last_event)
            };
            if events >= expected || last.elapsed() > idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ended = task.await.is_ok();
        }
        let mut tally = lock(&self.tally);
        std::mem::replace(
            &mut tally.consumed,
            Consumed {
                events: 0,
                duplicates: 0,
                decoded: 0,
                undecodable: 0,
                end_to_end: latency_histogram(),
            },
        )
    }
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    // A poisoned tally still holds valid counts: a recorder panicked between two increments.
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Recorder {
    tally: Arc<Mutex<Tally>>,
    run: u32,
}

impl Recorder {
    fn event(&self, subject: Option<&str>, payload: &[u8]) {
        let now = unix_micros();
        let Some((run, seq, sent)) = subject.and_then(sign::parse_tag) else {
            return;
        };
        if run != self.run {
            return;
        }
        let mut tally = lock(&self.tally);
        tally.last_event = Instant::now();
        if !tally.seen.insert(seq) {
            tally.consumed.duplicates += 1;
            return;
        }
        let consumed = &mut tally.consumed;
        consumed.events += 1;
        consumed
            .end_to_end
            .saturating_record(now.saturating_sub(sent).max(1));
        if seq % DECODE_EVERY == 0 {
            if decodes(payload) {
                consumed.decoded += 1;
            } else {
                consumed.undecodable += 1;
            }
        }
    }
}

fn decodes(payload: &[u8]) -> bool {
    let Ok(codec) = EventCodec::get() else {
        return false;
    };
    let mut reader = payload;
    apache_avro::reader::datum::GenericDatumReader::builder(codec.schema())
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .is_ok()
        && reader.is_empty()
}

/// Assigns every partition of `topic` from the beginning (the run id filters older events) and
/// polls until stopped. Runs on a blocking thread: rdkafka's `BaseConsumer` polls synchronously.
fn consume_kafka(
    bootstrap: &str,
    topic: &str,
    record: &Recorder,
    stop: &AtomicBool,
) -> Result<(), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("hookbridge-loadgen-{}", record.run))
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .map_err(|e| e.to_string())?;
    // The topic exists once the gateway published to it (the warm-up does).
    let partitions = loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|md| md.topics().first().map(|t| t.partitions().len()))
            .unwrap_or(0);
        if found > 0 {
            break found;
        }
        if stop.load(Ordering::Relaxed) {
            return Err(format!("topic {topic} never appeared"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).map_err(|e| e.to_string())?;
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let subject = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "ce_subject")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
        });
        record.event(subject, message.payload().unwrap_or_default());
    }
    Ok(())
}
