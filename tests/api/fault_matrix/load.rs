//! The load a push row runs under: 16 senders spreading the row's webhooks over `LOAD_SPAN`, each
//! sending as its provider does (Docplanner once, Cronofy until answered 2xx).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{DP_KEY, LOAD_SPAN, SENDERS};
use crate::helpers::{CRONOFY_SECRET, cronofy_change, cronofy_sign};

/// One webhook's fate at the sender.
pub(super) struct Sent {
    pub(super) ok: bool,
    pub(super) slowest: Duration,
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
pub(super) struct RowLoad {
    pub(super) provider: &'static str,
    pub(super) retries: bool,
    pub(super) tags: Vec<String>,
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

pub(super) fn docplanner_body(booking: &str) -> String {
    docplanner_notification(booking).to_string()
}

pub(super) fn docplanner_notification(booking: &str) -> serde_json::Value {
    json!({"name": "slot-booked",
           "data": {"visit_booking": {"id": booking, "status": "booked"}, "doctor": {"id": "7"}},
           "created_at": "2024-05-01T10:00:00+02:00"})
}

/// Runs the load: `n` webhooks from 16 senders, spread over `LOAD_SPAN`, against `targets`
/// (read again for every webhook, so a restarted gateway on a new port is followed).
pub(super) async fn run_load(
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
