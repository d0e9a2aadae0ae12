//! The delivery promise under faults, in every topology the README and `deploy/` recommend:
//! {NATS JetStream, Apache Kafka} publisher × {local, NATS key-value} dedup × {spool, reject},
//! plus Docplanner reconciliation against the local model of its API.
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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::brokers::{KafkaBroker, NatsServer, TempDir, free_port};
use crate::consumers::{read_kafka, read_nats};
use crate::docplanner_model::DocplannerModel;
use crate::helpers::{
    CRONOFY_SECRET, cronofy_change, cronofy_sign, metric_value, spawn_binary, unique,
    wait_for_status,
};

const SENDERS: usize = 16;
const PUBLISH_TIMEOUT: Duration = Duration::from_millis(1000);
/// What an answer may take beyond the publish deadline: HTTP and scheduling on two shared cores,
/// and the spool's fsync'd write, which waits behind the drainer's (one commit per entry: while a
/// spool drains under load, one answer took 2.4 s here; group commit would shorten that tail).
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

/// What one row measured.
#[derive(Default)]
struct Tally {
    sent: usize,
    answered_2xx: usize,
    spooled: f64,
    quarantined: f64,
    consumed: usize,
    duplicates: usize,
    lost: usize,
    slowest: Duration,
    /// Publishes that timed out at the gateway: each may leave one duplicate on Kafka.
    timeouts: f64,
    problems: Vec<String>,
}

/// One gateway process.
struct Gateway {
    child: Child,
    base: String,
    config: PathBuf,
    log: PathBuf,
}

impl Gateway {
    async fn start(config: &Path, port: u16, log: &Path) -> Gateway {
        let child = spawn_binary(
            config,
            &[
                ("DP_KEY", DP_KEY),
                ("CRONOFY", CRONOFY_SECRET),
                ("DP_ID", DP_CLIENT.0),
                ("DP_SECRET", DP_CLIENT.1),
            ],
            log,
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for_status(&http, &format!("{base}/healthz"), 200, Some(log)).await;
        Gateway {
            child,
            base,
            config: config.to_owned(),
            log: log.to_owned(),
        }
    }

    async fn restart(&mut self, port: u16) {
        *self = Gateway::start(&self.config, port, &self.log).await;
    }

    fn kill9(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }

    /// SIGTERM and wait for the process to end (its shutdown grace is 10 s).
    fn terminate(&mut self) {
        let _sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Everything one row runs on.
struct Row {
    topology: Topology,
    fault: Fault,
    dir: TempDir,
    prefix: String,
    stream: String,
    bucket: String,
    nats: Option<NatsServer>,
}

impl Row {
    fn new(topology: Topology, fault: Fault) -> Row {
        Row {
            topology,
            fault,
            dir: TempDir::new("matrix"),
            prefix: unique("fm"),
            stream: unique("FM"),
            bucket: unique("fmdedup"),
            nats: topology.needs_nats().then(NatsServer::start),
        }
    }

    fn provider(&self) -> &'static str {
        match self.topology.policy {
            Policy::Spool => "docplanner",
            Policy::Reject => "cronofy",
        }
    }

    /// The gateway's config for this row; `replica` keeps two replicas' spools and dedup files
    /// apart.
    fn config(&self, port: u16, kafka: &str, replica: usize, reconcile: Option<&str>) -> String {
        let t = &self.topology;
        let prefix = &self.prefix;
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\npublish_timeout_ms = {}\n\
             health_interval_ms = 200\nretry_after_seconds = 1\nshutdown_grace_secs = 10\n\
             max_in_flight = 512\n\n",
            PUBLISH_TIMEOUT.as_millis()
        );
        if t.policy == Policy::Spool {
            text.push_str(&format!(
                "[spool]\npath = \"{}\"\n\n",
                self.dir.path().join(format!("spool{replica}")).display()
            ));
        }
        match t.dedup {
            Dedup::Local => text.push_str(&format!(
                "[dedup]\nstore = \"disk\"\npath = \"{}\"\n\n",
                self.dir.path().join(format!("dedup{replica}")).display()
            )),
            Dedup::NatsKv => text.push_str(&format!(
                "[dedup]\nstore = \"nats\"\nurl = \"{}\"\nbucket = \"{}\"\n\n",
                self.nats_url(),
                self.bucket
            )),
        }
        match t.broker {
            Broker::Nats => text.push_str(&format!(
                "[publishers.main]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{}\"\nsubjects = [\"{prefix}.>\"]\n\n",
                self.nats_url(),
                self.stream
            )),
            Broker::Kafka => text.push_str(&format!(
                "[publishers.main]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\ntopic_partitions = 1\n\n"
            )),
        }
        let policy = match t.policy {
            Policy::Spool => "spool",
            Policy::Reject => "reject",
        };
        match self.provider() {
            "docplanner" => {
                text.push_str(&format!(
                    "[sources.docplanner]\nprovider = \"docplanner\"\npublisher = \"main\"\n\
                     topic = \"{prefix}.{{provider}}.{{type}}\"\ndead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
                     on_broker_failure = \"{policy}\"\n\
                     [sources.docplanner.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:DP_KEY\"]\n"
                ));
                if let Some(base) = reconcile {
                    text.push_str(&format!(
                        "[sources.docplanner.reconcile]\nbase_url = \"{base}/api/v3/integration\"\n\
                         token_url = \"{base}/oauth/v2/token\"\nclient_id = \"env:DP_ID\"\n\
                         client_secret = \"env:DP_SECRET\"\npull = true\nrelease = false\n\
                         interval_secs = 1\nbatch = 100\n"
                    ));
                }
            }
            _ => text.push_str(&format!(
                "[sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"main\"\n\
                 topic = \"{prefix}.{{provider}}.{{type}}\"\ndead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
                 on_broker_failure = \"{policy}\"\n\
                 [sources.cronofy.verify]\nclient_secrets = [\"env:CRONOFY\"]\n"
            )),
        }
        if self.fault == Fault::PoisonHead {
            // A source whose events the broker refuses for good, dead letters included: on NATS a
            // subject no stream captures, on Kafka a topic name longer than Kafka allows.
            let poison_topic = match t.broker {
                Broker::Nats => "poison.{provider}.{type}".to_owned(),
                Broker::Kafka => format!("poison{}", "x".repeat(250)),
            };
            text.push_str(&format!(
                "\n[sources.poison]\nprovider = \"docplanner\"\npublisher = \"main\"\n\
                 topic = \"{poison_topic}\"\ndead_letter_topic = \"{poison_topic}\"\n\
                 on_broker_failure = \"spool\"\n\
                 [sources.poison.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:DP_KEY\"]\n"
            ));
        }
        text
    }

    fn nats_url(&self) -> String {
        self.nats.as_ref().map(NatsServer::url).unwrap_or_default()
    }

    async fn gateway(
        &self,
        kafka: &str,
        replica: usize,
        reconcile: Option<&str>,
    ) -> (Gateway, u16) {
        let port = free_port();
        let path = self.dir.path().join(format!("hookbridge{replica}.toml"));
        std::fs::write(&path, self.config(port, kafka, replica, reconcile)).expect("write config");
        let log = self.dir.path().join(format!("gateway{replica}.log"));
        (Gateway::start(&path, port, &log).await, port)
    }

    /// The tag of webhook `i`: the event's subject once published.
    fn tag(&self, i: usize) -> String {
        format!("{}-{i:05}", self.prefix)
    }

    /// Reads back every event of this row, keyed by subject: how often each was consumed.
    async fn consume(&self, kafka: &str, expect: usize) -> (HashMap<String, usize>, usize) {
        let wait = Duration::from_secs(30);
        let (events, key_header) = match self.topology.broker {
            Broker::Nats => (
                read_nats(
                    &self.nats_url(),
                    &self.stream,
                    &format!("{}.{}.>", self.prefix, self.provider()),
                    expect,
                    wait,
                )
                .await,
                "Nats-Msg-Id",
            ),
            Broker::Kafka => {
                let topic = match self.provider() {
                    "docplanner" => format!("{}.docplanner.appointment.booked", self.prefix),
                    _ => format!("{}.cronofy.calendar.changed", self.prefix),
                };
                (
                    read_kafka(kafka, &topic, expect, wait).await,
                    "hookbridge_dedup_key",
                )
            }
        };
        let mut per_subject = HashMap::new();
        let mut per_key: HashMap<String, usize> = HashMap::new();
        for event in &events {
            *per_subject.entry(event.string("subject")).or_insert(0) += 1;
            *per_key
                .entry(event.header(key_header).to_owned())
                .or_insert(0) += 1;
        }
        let duplicates = per_key.values().map(|n| n - 1).sum();
        (per_subject, duplicates)
    }
}

/// One webhook's fate at the sender.
struct Sent {
    ok: bool,
    slowest: Duration,
}

/// Sends webhook `i` of `row` to each of `targets` (two replicas get it at once), as its provider
/// would: Docplanner once, Cronofy again after every non-2xx until `give_up`.
async fn send(
    http: &reqwest::Client,
    row: &RowLoad,
    i: usize,
    targets: &[String],
    give_up: Instant,
) -> Sent {
    let attempts = targets.iter().map(|base| async move {
        let mut slowest = Duration::ZERO;
        loop {
            let started = Instant::now();
            let answer = row.request(http, base, i).send().await;
            slowest = slowest.max(started.elapsed());
            let status = answer.map(|a| a.status().as_u16()).unwrap_or(0);
            if (200..300).contains(&status) {
                return (true, slowest);
            }
            if !row.retries || Instant::now() > give_up {
                return (false, slowest);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    Sent {
        ok: results.iter().any(|(ok, _)| *ok),
        slowest: results.iter().map(|(_, d)| *d).max().unwrap_or_default(),
    }
}

/// What the senders need to build webhook `i`.
struct RowLoad {
    provider: &'static str,
    retries: bool,
    tags: Vec<String>,
}

impl RowLoad {
    fn request(&self, http: &reqwest::Client, base: &str, i: usize) -> reqwest::RequestBuilder {
        let tag = &self.tags[i];
        match self.provider {
            "docplanner" => http
                .post(format!("{base}/webhooks/docplanner"))
                .header("X-Api-Key", DP_KEY)
                .header("content-type", "application/json")
                .body(docplanner_body(tag)),
            _ => {
                let body = cronofy_change(tag);
                http.post(format!("{base}/webhooks/cronofy"))
                    .header("content-type", "application/json")
                    .header("Cronofy-HMAC-SHA256", cronofy_sign(CRONOFY_SECRET, &body))
                    .body(body)
            }
        }
    }
}

fn docplanner_body(booking: &str) -> String {
    docplanner_notification(booking).to_string()
}

fn docplanner_notification(booking: &str) -> serde_json::Value {
    json!({"name": "slot-booked",
           "data": {"visit_booking": {"id": booking, "status": "booked"}, "doctor": {"id": "7"}},
           "created_at": "2024-05-01T10:00:00+02:00"})
}

/// Runs the load: `n` webhooks from 16 senders, spread over `LOAD_SPAN`, against `targets`
/// (read again for every webhook, so a restarted gateway on a new port is followed).
async fn run_load(
    row: Arc<RowLoad>,
    n: usize,
    targets: Arc<std::sync::Mutex<Vec<String>>>,
) -> Vec<Sent> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .build()
        .expect("http client");
    let started = Instant::now();
    let give_up = started + LOAD_SPAN + Duration::from_secs(30);
    let step = LOAD_SPAN / n.max(1) as u32;
    let senders = (0..SENDERS).map(|k| {
        let http = http.clone();
        let row = row.clone();
        let targets = targets.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (k..n).step_by(SENDERS) {
                tokio::time::sleep_until((started + step * i as u32).into()).await;
                let now: Vec<String> = targets.lock().expect("targets").clone();
                out.push((i, send(&http, &row, i, &now, give_up).await));
            }
            out
        })
    });
    let mut all: Vec<(usize, Sent)> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flat_map(|r| r.expect("sender task"))
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

/// The matrix's own Kafka: restarted and paused by its rows, so shared with no other test.
struct Brokers {
    kafka: Option<KafkaBroker>,
}

impl Brokers {
    fn kafka(&mut self) -> &mut KafkaBroker {
        self.kafka.get_or_insert_with(KafkaBroker::start)
    }
}

/// Stops, then starts again after `down`, the broker or store that `what` names.
#[derive(Clone, Copy)]
enum Target {
    Broker,
    DedupStore,
}

async fn outage(row: &mut Row, brokers: &mut Brokers, target: Target, down: Duration) {
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

async fn pause(row: &Row, brokers: &mut Brokers, down: Duration) {
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

/// Runs one push row: load with the fault injected, then the read-back and the tally.
async fn push_row(topology: Topology, fault: Fault, brokers: &mut Brokers) -> Tally {
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
    let mut poison_status = None;
    if matches!(fault, Fault::Kill9 | Fault::PoisonHead) {
        // The broker is down from the start, so the spool fills.
        stop_broker(&mut row, brokers);
        if fault == Fault::PoisonHead {
            let http = reqwest::Client::new();
            let answer = http
                .post(format!("{}/webhooks/poison", gateways[0].0.base))
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
    let loader = tokio::spawn(run_load(load.clone(), n, targets.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    match fault {
        Fault::BrokerRestart => {
            outage(
                &mut row,
                brokers,
                Target::Broker,
                Duration::from_millis(1500),
            )
            .await
        }
        Fault::DedupDown => {
            outage(
                &mut row,
                brokers,
                Target::DedupStore,
                Duration::from_millis(1500),
            )
            .await
        }
        Fault::BrokerPause => {
            pause(&row, brokers, PUBLISH_TIMEOUT + Duration::from_millis(1000)).await
        }
        Fault::Kill9 => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (gateway, port) = &mut gateways[0];
            gateway.kill9();
            start_broker(&mut row, brokers).await;
            gateway.restart(*port).await;
        }
        Fault::PoisonHead => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            start_broker(&mut row, brokers).await;
        }
        Fault::TwoReplicas => {}
        Fault::ReconcileShutdown | Fault::ReconcileBrokerFailure => unreachable!("pull rows"),
    }
    let sent = loader.await.expect("load");
    let mut tally = Tally {
        sent: n,
        answered_2xx: sent.iter().filter(|s| s.ok).count(),
        slowest: sent.iter().map(|s| s.slowest).max().unwrap_or_default(),
        ..Tally::default()
    };
    // Everything the gateways accepted is on its way: wait for the spools to drain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = 0.0;
        for (g, _) in &gateways {
            waiting += metric_value(&g.metrics().await, "hookbridge_spool_events", &[]);
        }
        if waiting == 0.0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (g, _) in &gateways {
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
    let (consumed, duplicates) = row.consume(&kafka, tally.answered_2xx).await;
    tally.consumed = consumed.len();
    tally.duplicates = duplicates;
    tally.lost = (0..n)
        .filter(|i| sent[*i].ok && !consumed.contains_key(&row.tag(*i)))
        .count();
    if let Some(status) = poison_status {
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
        let (gateway, _) = &mut gateways[0];
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
    check(&row, &mut tally);
    tally
}

/// `hookbridge quarantine --config <config> <args>`: its output, stdout and stderr.
fn quarantine_command(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .arg("quarantine")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .envs([
            ("DP_KEY", DP_KEY),
            ("CRONOFY", CRONOFY_SECRET),
            ("DP_ID", DP_CLIENT.0),
            ("DP_SECRET", DP_CLIENT.1),
        ])
        .output()
        .expect("run hookbridge quarantine");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn stop_broker(row: &mut Row, brokers: &mut Brokers) {
    match row.topology.broker {
        Broker::Kafka => brokers.kafka().stop(),
        Broker::Nats => row.nats.as_mut().expect("nats").stop(),
    }
}

async fn start_broker(row: &mut Row, brokers: &mut Brokers) {
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

/// The promise, per row.
fn check(row: &Row, tally: &mut Tally) {
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

/// A pull row: Docplanner holds `n` notifications that only the reconciler can fetch.
async fn pull_row(topology: Topology, fault: Fault, brokers: &mut Brokers) -> Tally {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delivery_promise_holds_under_every_fault_in_every_topology() {
    use Broker::*;
    use Dedup::*;
    use Fault::*;
    use Policy::*;
    let mut rows: Vec<(Topology, Fault)> = Vec::new();
    for broker in [Nats, Kafka] {
        for dedup in [Local, NatsKv] {
            for policy in [Spool, Reject] {
                let t = Topology {
                    broker,
                    dedup,
                    policy,
                };
                rows.push((t, BrokerRestart));
                rows.push((t, BrokerPause));
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
            ReconcileShutdown | ReconcileBrokerFailure => {
                pull_row(topology, fault, &mut brokers).await
            }
            _ => push_row(topology, fault, &mut brokers).await,
        };
        let line = format!(
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
            row_started.elapsed().as_secs_f64(),
            if tally.problems.is_empty() {
                "ok".to_owned()
            } else {
                tally.problems.join("; ")
            },
        );
        println!("{line}");
        table.push((line, tally.problems.is_empty()));
    }
    let summary = format!(
        "fault matrix, {} rows, {} webhooks each, in {:.0} s:\n| {:<34} | {:<22} | {:>5} | {:>5} | {:>7} | {:>11} | {:>8} | {:>10} | {:>4} | {:>10} | {:>6} | result\n{}\n",
        table.len(),
        webhooks(),
        started.elapsed().as_secs_f64(),
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
    );
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
