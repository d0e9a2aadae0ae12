//! The lean pipeline for `scripts/bench`: the least program that does hookbridge's work for one
//! signed webhook, with the same crates. It checks a hex HMAC-SHA256 of `{id}.{body}` in a header
//! (the id is the dedup key, so the signature must cover it),
//! parses the JSON into a struct, encodes the canonical event (`schemas/event.avsc`) with
//! apache-avro, publishes it with the id header as the broker-side dedup id, awaits the broker's
//! acknowledgement and answers 204. Nothing else: no dedup store, no spool, no dead letters, no
//! metrics, no config. hookbridge's throughput and CPU per webhook are reported against this
//! program's, measured in the same run, so the ratio is the price of everything else.
//!
//! ```text
//! lean_pipeline ADDR WORKERS nats  URL       STREAM SUBJECT
//! lean_pipeline ADDR WORKERS kafka BOOTSTRAP TOPIC
//! ```
//! The HMAC secret is `LEAN_SECRET`; the id header `x-webhook-id`, the signature `x-signature`.
//! Prints `listening on PORT` once bound. `LEAN_NATS_PER_WORKER=1` gives each worker a NATS client
//! of its own: the experiment that showed what the shared client's thread hop cost
//! (docs/performance.md); `scripts/bench` runs the plain one.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use apache_avro::Schema;
use apache_avro::writer::datum::GenericDatumWriter;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use serde::ser::{SerializeStruct, Serializer};

const EVENT_AVSC: &str = include_str!("../schemas/event.avsc");

// The allocator hookbridge runs on: with glibc's, malloc alone was a third of a webhook's CPU
// (docs/performance.md), and the comparison is about the pipeline's work, not the allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The fields the event takes from the payload; the rest is only checked to be JSON.
#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    event_type: String,
    created: Option<i64>,
    #[serde(default)]
    data: serde::de::IgnoredAny,
}

/// The canonical envelope, in `event.avsc` field order, borrowed from the request.
struct Event<'a> {
    id: &'a str,
    event_type: &'a str,
    occurred_at: Option<i64>,
    received_at: i64,
    payload: &'a [u8],
}

impl serde::Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// A union of more than two branches takes its branch by index.
        struct NoData;
        impl serde::Serialize for NoData {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_newtype_variant("data", 0, "null", &())
            }
        }
        struct AvroBytes<'a>(&'a [u8]);
        impl serde::Serialize for AvroBytes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        let mut r = s.serialize_struct("Event", 12)?;
        r.serialize_field("id", self.id)?;
        r.serialize_field("source", "lean")?;
        r.serialize_field("provider", "generic")?;
        r.serialize_field("type", self.event_type)?;
        r.serialize_field("provider_type", self.event_type)?;
        r.serialize_field("subject", &None::<&str>)?;
        r.serialize_field("occurred_at", &self.occurred_at.map(|s| s * 1_000_000))?;
        r.serialize_field("received_at", &self.received_at)?;
        r.serialize_field("data", &NoData)?;
        r.serialize_field("payload", &AvroBytes(self.payload))?;
        r.serialize_field("payload_content_type", "application/json")?;
        r.serialize_field(
            "attributes",
            &std::collections::BTreeMap::<&str, &str>::new(),
        )?;
        r.end()
    }
}

enum Broker {
    Nats {
        js: Box<async_nats::jetstream::Context>,
        subject: String,
    },
    Kafka {
        producer: FutureProducer,
        topic: String,
    },
}

struct State {
    nats_per_worker: bool,
    nats_url: String,
    secret: Vec<u8>,
    writer: GenericDatumWriter<'static>,
    broker: Broker,
}

async fn receive(request: HttpRequest, body: Bytes, state: web::Data<Arc<State>>) -> HttpResponse {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(id)) = (header("x-signature"), header("x-webhook-id")) else {
        return HttpResponse::BadRequest().finish();
    };
    let Ok(signature) = hex::decode(signature) else {
        return HttpResponse::Unauthorized().finish();
    };
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&state.secret) else {
        return HttpResponse::InternalServerError().finish();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(&body);
    if mac.verify_slice(&signature).is_err() {
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    std::hint::black_box(&payload.data);
    let received_at = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    let event = Event {
        id,
        event_type: &payload.event_type,
        occurred_at: payload.created,
        received_at: i64::try_from(received_at).unwrap_or_default(),
        payload: &body,
    };
    let mut encoded = Vec::with_capacity(body.len() + 256);
    if let Err(e) = state.writer.write_ser(&mut encoded, &event) {
        eprintln!("encode: {e}");
        return HttpResponse::InternalServerError().finish();
    }
    let published = match &state.broker {
        Broker::Nats { js, subject } => {
            let js = if state.nats_per_worker {
                worker_jetstream(&state.nats_url).await
            } else {
                Some((**js).clone())
            };
            let Some(js) = js else {
                return HttpResponse::ServiceUnavailable().finish();
            };
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id);
            match js
                .publish_with_headers(subject.clone(), headers, encoded.into())
                .await
            {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            }
        }
        Broker::Kafka { producer, topic } => {
            let record = FutureRecord::to(topic).key(id).payload(&encoded);
            producer.send(record, Duration::from_secs(5)).await.is_ok()
        }
    };
    if published {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

thread_local! {
    static WORKER_JS: std::cell::RefCell<Option<async_nats::jetstream::Context>> =
        const { std::cell::RefCell::new(None) };
}

/// A NATS client of this worker's own, connected on its runtime on first use: the connection task
/// then runs on the thread that awaits its acks.
async fn worker_jetstream(url: &str) -> Option<async_nats::jetstream::Context> {
    if let Some(js) = WORKER_JS.with(|c| c.borrow().clone()) {
        return Some(js);
    }
    let js = async_nats::jetstream::new(async_nats::connect(url).await.ok()?);
    WORKER_JS.with(|c| *c.borrow_mut() = Some(js.clone()));
    Some(js)
}

fn main() -> std::io::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let broker = match arg(2).as_str() {
        "nats" => {
            let client = async_nats::connect(arg(3))
                .await
                .map_err(std::io::Error::other)?;
            let js = async_nats::jetstream::new(client);
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name: arg(4),
                subjects: vec![arg(5)],
                ..Default::default()
            })
            .await
            .map_err(std::io::Error::other)?;
            Broker::Nats {
                js: Box::new(js),
                subject: arg(5),
            }
        }
        "kafka" => Broker::Kafka {
            // The producer settings hookbridge pins: idempotent, every in-sync replica, linger 1 ms.
            producer: rdkafka::ClientConfig::new()
                .set("bootstrap.servers", arg(3))
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .create()
                .map_err(std::io::Error::other)?,
            topic: arg(4),
        },
        other => return Err(std::io::Error::other(format!("unknown broker {other:?}"))),
    };
    // Parsed once for the process; the writer borrows it for as long.
    let schema: &'static Schema = Box::leak(Box::new(
        Schema::parse_str(EVENT_AVSC).map_err(std::io::Error::other)?,
    ));
    let writer = GenericDatumWriter::builder(schema)
        .validate(false)
        .human_readable(false)
        .build()
        .map_err(std::io::Error::other)?;
    let state = Arc::new(State {
        nats_per_worker: std::env::var_os("LEAN_NATS_PER_WORKER").is_some(),
        nats_url: arg(3),
        secret: std::env::var("LEAN_SECRET")
            .unwrap_or_default()
            .into_bytes(),
        writer,
        broker,
    });
    let workers = arg(1).parse().unwrap_or(2);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/webhooks/{source}", web::post().to(receive))
    })
    .workers(workers)
    .bind(arg(0))?;
    for addr in server.addrs() {
        println!("listening on {}", addr.port());
    }
    server.run().await
}
