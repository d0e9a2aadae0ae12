//! `hookbridge-loadgen`: sends distinct, correctly signed webhooks to a running gateway and reports
//! what the gateway answered and what reached the broker. A crate of its own, beside the gateway
//! rather than inside it, so that the gateway binary and its image do not link the HTTP client and
//! the histograms only a benchmark needs.
//!
//! Closed loop (`--connections N`, each sending its next request when the last is answered) finds
//! the maximum rate; open loop (`--rate R`) sends on a fixed schedule and measures each request
//! from the moment it *should* have been sent, so a stalled server cannot hide its queueing
//! (coordinated omission). The consumer side counts what the broker holds and the time from
//! sending to consuming, so throughput is proven by the broker, not by status codes.
//!
//! Signing uses the gateway's own config file: the load generator names sources, not secrets.

pub mod consume;
pub mod report;
pub mod sign;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hookbridge::config::{Config, load_file};
use hookbridge::publish::topic::{TopicTemplate, TopicVars};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use self::consume::Consumer;
use self::report::{LoadReport, Summary};
use self::sign::Signer;

/// What `hookbridge-loadgen` was asked to do: its command-line flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// The gateway's config file: sources, secrets and publishers come from here.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The gateway's address (or any server's, for the HTTP ceiling).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub target: SocketAddr,
    /// A source to send to, optionally weighted (`cronofy_kafka=3`); repeat for a mix.
    #[arg(long = "source", required = true, value_parser = parse_weighted)]
    pub sources: Vec<(String, u32)>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
    /// Open loop at this many requests per second (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Unmeasured seconds first: connections, caches, topics and the allocator settle.
    #[arg(long, default_value = "2", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// Approximate size of generated Cronofy bodies, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub body_bytes: usize,
    /// Read the topics back and report what arrived; on unless `--no-consume`.
    #[arg(
        long = "no-consume",
        action = clap::ArgAction::SetFalse,
        help = "Do not read the topics back (for servers that publish nothing, like the HTTP ceiling)"
    )]
    pub consume: bool,
    /// How long the consumer waits for stragglers after the load ends.
    #[arg(skip = Duration::from_secs(5))]
    pub drain: Duration,
}

/// `name` or `name=weight` (`--source cronofy_kafka=3`); a bare name weighs 1.
fn parse_weighted(raw: &str) -> Result<(String, u32), String> {
    match raw.split_once('=') {
        None => Ok((raw.to_owned(), 1)),
        Some((name, weight)) => weight
            .parse()
            .map(|w| (name.to_owned(), w))
            .map_err(|_| format!("{weight:?} is not a whole-number weight")),
    }
}

/// A non-negative number of seconds, fractions allowed (`--duration 0.5`).
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{raw:?} is not a number of seconds"))
}

struct Target {
    path: String,
    signer: Signer,
    weight: u32,
}

/// Runs warm-up, then the measured load (and the consumer, if asked), and reports.
pub async fn run(
    options: LoadOptions,
    env: &HashMap<String, String>,
) -> Result<LoadReport, String> {
    let raw = load_file(&options.config, env).map_err(|e| e.to_string())?;
    // The providers exactly as the gateway builds them: their samples carry its secrets.
    let config = load_file(&options.config, env)
        .map_err(|e| e.to_string())
        .and_then(|raw| {
            Config::validate(raw, env).map_err(|issues| {
                let listed: Vec<String> = issues.iter().map(ToString::to_string).collect();
                listed.join("; ")
            })
        })?;
    let mut targets = Vec::new();
    let mut consumers = Vec::new();
    for (name, weight) in &options.sources {
        let source = raw
            .sources
            .get(name)
            .ok_or_else(|| format!("no source {name:?} in {}", options.config.display()))?;
        let provider = config.sources.get(name).map(|s| s.provider.clone());
        let signer = provider
            .ok_or_else(|| format!("source {name} is not valid"))
            .and_then(|p| Signer::for_source(p, options.body_bytes))
            .map_err(|e| format!("source {name}: {e}"))?;
        if options.consume {
            let publisher = raw
                .publishers
                .get(&source.publisher)
                .ok_or_else(|| format!("source {name}: no publisher {}", source.publisher))?;
            let topic = TopicTemplate::parse(&source.topic)?.render(&TopicVars {
                source: name,
                provider: &source.provider,
                event_type: signer.event_type(),
            });
            consumers.push(consume::Endpoint::of(publisher, topic));
        }
        targets.push(Target {
            path: format!("/webhooks/{name}"),
            signer,
            weight: (*weight).max(1),
        });
    }
    if targets.is_empty() {
        return Err("name at least one --source".into());
    }
    let targets = Arc::new(targets);
    // A run id keeps this run's events apart from earlier runs' on the same topic; the warm-up
    // uses its own, so the consumer counts measured requests only.
    let run = u32::try_from(unix_micros() % 1_000_000_000).unwrap_or(1) * 2;

    // Warm-up is closed loop whatever the mode: it is there to open connections and fill caches.
    if !options.warmup.is_zero() {
        let warm = Phase::new(run, None, options.warmup);
        drive(&options, &targets, warm).await;
    }
    consumers.sort_by_key(consume::Endpoint::key);
    consumers.dedup_by(|a, b| a.key() == b.key());
    let mut consumer = None;
    if options.consume {
        consumer = Some(Consumer::start(consumers, run + 1).await?);
    }
    let phase = Phase::new(run + 1, options.rate, options.duration);
    let started = Instant::now();
    let load = drive(&options, &targets, phase).await;
    let elapsed = started.elapsed();
    let consumed = match consumer {
        Some(consumer) => Some(consumer.finish(load.ok, options.drain).await),
        None => None,
    };
    Ok(LoadReport::new(&options, load, elapsed, consumed))
}

/// One phase's schedule: which request is next and, in open loop, when it is due.
struct Phase {
    run: u32,
    next: AtomicU64,
    rate: Option<f64>,
    start: Instant,
    end: Instant,
}

impl Phase {
    fn new(run: u32, rate: Option<f64>, duration: Duration) -> Arc<Self> {
        let start = Instant::now();
        Arc::new(Phase {
            run,
            next: AtomicU64::new(0),
            rate,
            start,
            end: start + duration,
        })
    }

    /// The next request's sequence number and due time, or `None` once the phase is over.
    fn next(&self) -> Option<(u64, Instant)> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let due = match self.rate {
            Some(rate) => self.start + Duration::from_secs_f64(seq as f64 / rate),
            None => Instant::now(),
        };
        (due < self.end).then_some((seq, due))
    }
}

/// What the connections saw, merged.
pub struct Load {
    pub ok: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// 503 and 429 answers that said when to come back.
    pub with_retry_after: u64,
    pub io_errors: u64,
    pub first_io_error: Option<String>,
    /// Latency of 2xx answers, µs.
    pub ok_latency: Histogram<u64>,
    /// Latency of every other answer, µs.
    pub rejected_latency: Histogram<u64>,
}

impl Load {
    fn new() -> Self {
        Load {
            ok: 0,
            statuses: BTreeMap::new(),
            with_retry_after: 0,
            io_errors: 0,
            first_io_error: None,
            ok_latency: latency_histogram(),
            rejected_latency: latency_histogram(),
        }
    }

    fn merge(&mut self, other: Load) {
        self.ok += other.ok;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.with_retry_after += other.with_retry_after;
        self.io_errors += other.io_errors;
        self.first_io_error = self.first_io_error.take().or(other.first_io_error);
        // Same bounds on both sides, so adding cannot fail.
        let _same_bounds = self.ok_latency.add(&other.ok_latency).is_ok();
        let _same_bounds = self.rejected_latency.add(&other.rejected_latency).is_ok();
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.ok_latency)
    }
}

/// 1 µs to 60 s at 3 significant digits.
#[allow(clippy::expect_used)] // constant bounds that hdrhistogram accepts (1 ≤ low, 2·low ≤ high, 3 ≤ 5)
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid constant bounds")
}

async fn drive(options: &LoadOptions, targets: &Arc<Vec<Target>>, phase: Arc<Phase>) -> Load {
    let total_weight: u32 = targets.iter().map(|t| t.weight).sum();
    let mut tasks = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let targets = targets.clone();
        let phase = phase.clone();
        let addr = options.target;
        tasks.push(tokio::spawn(async move {
            connection(addr, &targets, total_weight, &phase).await
        }));
    }
    let mut load = Load::new();
    for task in tasks {
        if let Ok(part) = task.await {
            load.merge(part);
        }
    }
    load
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _best_effort = stream.set_nodelay(true).is_ok();
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One keep-alive connection sending until the phase ends, reconnecting when the server closes.
async fn connection(
    addr: SocketAddr,
    targets: &[Target],
    total_weight: u32,
    phase: &Phase,
) -> Load {
    let mut load = Load::new();
    let mut sender: Option<Sender> = None;
    let host = addr.to_string();
    while let Some((seq, due)) = phase.next() {
        tokio::time::sleep_until(due).await;
        // Weighted round robin over the mix, by sequence number.
        let mut pick = u32::try_from(seq % u64::from(total_weight)).unwrap_or(0);
        let target = targets
            .iter()
            .find(|t| {
                let hit = pick < t.weight;
                pick = pick.saturating_sub(t.weight);
                hit
            })
            .unwrap_or(&targets[0]);
        let now = unix_micros();
        let tag = sign::tag(phase.run, seq, now);
        let Some(signed) = target.signer.sign(&tag, (now / 1_000_000) as i64) else {
            continue;
        };
        let mut request = Request::post(target.path.as_str()).header("host", host.as_str());
        for (name, value) in &signed.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let Ok(request) = request.body(Full::new(Bytes::from(signed.body))) else {
            continue;
        };
        let result = send(&mut sender, addr, request).await;
        let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
        match result {
            Ok((status, retry_after)) => {
                *load.statuses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    load.ok += 1;
                    load.ok_latency.saturating_record(micros);
                } else {
                    load.rejected_latency.saturating_record(micros);
                    load.with_retry_after += u64::from(retry_after);
                }
            }
            Err(e) => {
                load.io_errors += 1;
                load.first_io_error.get_or_insert(e);
                sender = None;
            }
        }
    }
    load
}

/// Sends on the open connection, opening a new one if there is none or the server closed it.
async fn send(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<(u16, bool), String> {
    let mut ready = match sender.take() {
        Some(mut open) => match open.ready().await {
            Ok(()) => open,
            Err(_) => connect(addr).await?,
        },
        None => connect(addr).await?,
    };
    let response = ready
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    // Read the whole answer before the next request on this connection.
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    *sender = Some(ready);
    Ok((status, retry_after))
}

pub(crate) fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
