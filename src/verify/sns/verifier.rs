//! [`SnsVerifier`]: the full check of one SNS HTTP delivery, plus the subscription handshake.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix_web::http::header::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::cache::{CertCache, DEFAULT_CAPACITY};
use super::cert::SnsCert;
use super::message::{SnsMessage, SnsType};
use super::url::{parse_aws_url, pem_file_name};
use super::{
    MESSAGE_TYPE_HEADER, RAW_DELIVERY_HEADER, SnsError, SnsSettings, TOPIC_ARN_HEADER, fetch,
};

/// How far in the future a `Timestamp` may be (sender clock skew).
const FUTURE_SKEW: time::Duration = time::Duration::minutes(5);

/// How long a failed certificate fetch is remembered: a stream of forgeries naming new (or
/// unreachable) certificate URLs costs one fetch per URL per minute, not one per request.
const FAILED_FETCH_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Certificate fetches in flight at once for one source; beyond it a request fails at once
/// instead of holding an in-flight permit for the fetch's 5 s deadline.
const FETCH_BUDGET: usize = 4;
/// Bound on the failed-URL memory and the per-URL fetch locks.
const FETCH_MEMORY: usize = 1024;

/// Fetches one certificate body (the HTTPS GET; replaced in unit tests, which have no network).
pub(super) type Fetcher = Box<
    dyn Fn(reqwest::Url) -> futures_util::future::BoxFuture<'static, Result<Vec<u8>, &'static str>>
        + Send
        + Sync,
>;

/// What keeps certificate fetching cheap under forgeries: remembered failures, one fetch per URL
/// at a time (concurrent misses wait for it), a small budget of fetches in flight.
struct FetchControl {
    failed: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    budget: tokio::sync::Semaphore,
}

impl FetchControl {
    fn new() -> Self {
        FetchControl {
            failed: std::sync::Mutex::new(std::collections::HashMap::new()),
            locks: std::sync::Mutex::new(std::collections::HashMap::new()),
            budget: tokio::sync::Semaphore::new(FETCH_BUDGET),
        }
    }

    fn failed_recently(&self, key: &str) -> bool {
        self.failed
            .lock()
            .ok()
            .and_then(|f| f.get(key).copied())
            .is_some_and(|at| at.elapsed() < FAILED_FETCH_TTL)
    }

    fn remember_failure(&self, key: &str) {
        if let Ok(mut failed) = self.failed.lock() {
            if failed.len() >= FETCH_MEMORY {
                failed.retain(|_, at| at.elapsed() < FAILED_FETCH_TTL);
            }
            if failed.len() < FETCH_MEMORY {
                failed.insert(key.to_owned(), std::time::Instant::now());
            }
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if locks.len() >= FETCH_MEMORY {
            // Only locks nobody holds or waits for (the map's own reference) go.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        Arc::clone(locks.entry(key.to_owned()).or_default())
    }
}

/// The region in `arn:<partition>:sns:<region>:<account>:<topic>`.
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_partition), Some("sns"), Some(region)) if !region.is_empty() => {
            Some(region)
        }
        _ => None,
    }
}

/// SNS signs with a certificate served by the topic's own region: `sns.<region>.amazonaws.com`
/// (`.com.cn` in China). A certificate host of another region is a forgery's.
fn cert_host_is_the_topics_region(url: &reqwest::Url, topic_arn: &str) -> bool {
    let (Some(host), Some(region)) = (url.host_str(), arn_region(topic_arn)) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let region = region.to_ascii_lowercase();
    host == format!("sns.{region}.amazonaws.com")
        || host == format!("sns.{region}.amazonaws.com.cn")
}

/// Verifies SNS deliveries for one source. Cheap to share (`Arc`); all state is interior.
pub struct SnsVerifier {
    settings: SnsSettings,
    fetch_control: FetchControl,
    /// `None`: the HTTPS GET through `client`.
    fetcher: Option<Fetcher>,
    /// Built in `new` when fetching is enabled, otherwise on first use by
    /// `confirm_subscription`: building needs the process-wide rustls provider, which unit tests
    /// (with fetching off) do not install.
    client: OnceLock<reqwest::Client>,
    cache: CertCache,
    cache_hits: AtomicU64,
    fetches: AtomicU64,
}

impl SnsVerifier {
    pub fn new(settings: SnsSettings) -> Result<Self, String> {
        if let Some(dir) = &settings.cert_dir
            && !dir.is_dir()
        {
            return Err(format!("cert_dir {} is not a directory", dir.display()));
        }
        let client = if settings.fetch_certs {
            OnceLock::from(fetch::build_client()?)
        } else {
            OnceLock::new()
        };
        Ok(SnsVerifier {
            settings,
            fetch_control: FetchControl::new(),
            fetcher: None,
            client,
            cache: CertCache::new(DEFAULT_CAPACITY),
            cache_hits: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        })
    }

    /// Full verification of one HTTP delivery at time `now`. Returns the envelope only when the
    /// signature verifies; the caller dispatches on `kind` afterwards.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<SnsMessage, SnsError> {
        // Raw delivery strips the envelope and the signature: nothing to verify.
        let raw = headers.get_all(RAW_DELIVERY_HEADER).any(|v| {
            v.to_str()
                .is_ok_and(|s| s.trim().eq_ignore_ascii_case("true"))
        });
        if raw {
            return Err(SnsError::RawDelivery);
        }
        let message = SnsMessage::parse(body)?;
        // The headers are unsigned, but a disagreement means a hand-made or tampered request,
        // and routing code may have looked at the headers already.
        header_matches(headers, MESSAGE_TYPE_HEADER, message.kind.as_str())?;
        header_matches(headers, TOPIC_ARN_HEADER, &message.topic_arn)?;
        if !self.settings.topic_arns.contains(&message.topic_arn) {
            return Err(SnsError::TopicNotAllowed);
        }
        if !matches!(message.signature_version.as_str(), "1" | "2") {
            return Err(SnsError::UnsupportedSignatureVersion);
        }
        if let Some(tolerance) = self.settings.timestamp_tolerance {
            check_timestamp(message.timestamp_parsed, now, tolerance)?;
        }
        let signature = STANDARD
            .decode(&message.signature)
            .map_err(|_| SnsError::MalformedSignature)?;
        let cert = self
            .cert_for(&message.signing_cert_url, &message.topic_arn)
            .await?;
        if self.settings.check_cert_validity {
            cert.check_validity(now)?;
        }
        cert.verify(
            &message.signature_version,
            message.string_to_sign().as_bytes(),
            &signature,
        )?;
        Ok(message)
    }

    /// Counters since start, for the app's metrics: (cache_hits, fetches). Certificates read from
    /// `cert_dir` count as neither.
    pub fn cert_stats(&self) -> (u64, u64) {
        (
            self.cache_hits.load(Ordering::Relaxed),
            self.fetches.load(Ordering::Relaxed),
        )
    }

    /// Confirms a *verified* SubscriptionConfirmation by GETting its `SubscribeURL` (validated
    /// again: it is an SSRF target otherwise). Never call this for an UnsubscribeConfirmation:
    /// visiting its `SubscribeURL` re-subscribes. The `SubscriptionArn` from the reply is logged.
    pub async fn confirm_subscription(&self, message: &SnsMessage) -> Result<(), SnsError> {
        if message.kind != SnsType::SubscriptionConfirmation {
            return Err(SnsError::ConfirmFailed("not a SubscriptionConfirmation"));
        }
        let raw = message
            .subscribe_url
            .as_deref()
            .ok_or(SnsError::MissingKey("SubscribeURL"))?;
        let url = parse_aws_url(raw, false).map_err(SnsError::InvalidSubscribeUrl)?;
        let client = self.client().map_err(|e| {
            tracing::error!(error = %e, "cannot confirm an SNS subscription");
            SnsError::ConfirmFailed("no HTTPS client")
        })?;
        let body = fetch::get_bounded(client, url, fetch::MAX_BODY)
            .await
            .map_err(SnsError::ConfirmFailed)?;
        let reply = String::from_utf8_lossy(&body);
        match subscription_arn(&reply) {
            Some(arn) => tracing::info!(
                topic_arn = %message.topic_arn,
                subscription_arn = arn,
                "SNS subscription confirmed"
            ),
            None => tracing::warn!(
                topic_arn = %message.topic_arn,
                "SNS subscription confirmation answered 200 without a SubscriptionArn"
            ),
        }
        Ok(())
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = fetch::build_client()?;
        // If another task won the race, its client is kept and this one dropped.
        Ok(self.client.get_or_init(|| built))
    }

    /// The certificate for a `SigningCertURL`: cache, then `cert_dir`, then (if allowed) a fetch.
    async fn cert_for(&self, raw_url: &str, topic_arn: &str) -> Result<Arc<SnsCert>, SnsError> {
        let url = parse_aws_url(raw_url, true).map_err(SnsError::InvalidCertUrl)?;
        if !cert_host_is_the_topics_region(&url, topic_arn) {
            return Err(SnsError::InvalidCertUrl(
                "the certificate host is not the topic's region",
            ));
        }
        // Keyed by the parsed form, so host-case variants share one entry.
        let key = url.as_str();
        if let Some(cert) = self.cache.get(key) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cert);
        }
        if let (Some(dir), Some(name)) = (&self.settings.cert_dir, pem_file_name(&url)) {
            // A blocking read of a ~2 KiB file, once per URL (then cached): cheaper than a
            // spawn_blocking round trip.
            match std::fs::read_to_string(dir.join(name)) {
                Ok(pem) => {
                    let cert = Arc::new(SnsCert::from_pem(&pem)?);
                    self.cache.insert(key, Arc::clone(&cert));
                    return Ok(cert);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "cannot read a local SNS certificate");
                    return Err(SnsError::CertUnavailable(
                        "the local certificate is unreadable",
                    ));
                }
            }
        }
        if !self.settings.fetch_certs {
            return Err(SnsError::CertUnavailable(
                "not in cert_dir and fetching is disabled",
            ));
        }
        let key = key.to_owned();
        let control = &self.fetch_control;
        if control.failed_recently(&key) {
            return Err(SnsError::CertUnavailable("the fetch failed moments ago"));
        }
        // One fetch per URL at a time: the others wait for it and take its result.
        let lock = control.lock_for(&key);
        let _one_at_a_time = lock.lock().await;
        if let Some(cert) = self.cache.get(&key) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cert);
        }
        if control.failed_recently(&key) {
            return Err(SnsError::CertUnavailable("the fetch failed moments ago"));
        }
        let Ok(_permit) = control.budget.try_acquire() else {
            return Err(SnsError::CertUnavailable(
                "too many certificate fetches at once",
            ));
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = match &self.fetcher {
            Some(fetcher) => fetcher(url.clone()).await,
            None => {
                let client = self
                    .client()
                    .map_err(|_| SnsError::CertUnavailable("no HTTPS client"))?;
                fetch::get_bounded(client, url.clone(), fetch::MAX_BODY).await
            }
        };
        let parsed = fetched
            .map_err(|reason| {
                tracing::warn!(url = %url, reason, "SNS signing certificate fetch failed");
                SnsError::CertUnavailable("the fetch failed")
            })
            .and_then(|body| {
                let pem = std::str::from_utf8(&body)
                    .map_err(|_| SnsError::InvalidCert("the fetched certificate is not UTF-8"))?;
                SnsCert::from_pem(pem)
            });
        match parsed {
            Ok(cert) => {
                let cert = Arc::new(cert);
                self.cache.insert(&key, Arc::clone(&cert));
                Ok(cert)
            }
            Err(e) => {
                control.remember_failure(&key);
                Err(e)
            }
        }
    }

    /// A verifier whose certificate fetches go to `fetcher` (unit tests have no network).
    #[cfg(test)]
    pub(super) fn with_fetcher(settings: SnsSettings, fetcher: Fetcher) -> Self {
        let mut verifier = SnsVerifier::new(SnsSettings {
            fetch_certs: false,
            ..settings
        })
        .unwrap_or_else(|e| panic!("{e}"));
        verifier.settings.fetch_certs = true;
        verifier.fetcher = Some(fetcher);
        verifier
    }
}

/// Every value of `header`, if any, must equal `expected` exactly.
fn header_matches(
    headers: &HeaderMap,
    header: &'static str,
    expected: &str,
) -> Result<(), SnsError> {
    if headers
        .get_all(header)
        .all(|v| v.to_str().is_ok_and(|s| s.trim() == expected))
    {
        Ok(())
    } else {
        Err(SnsError::HeaderMismatch(header))
    }
}

/// Accepts `now - tolerance <= timestamp <= now + 5 min`. SNS keeps the original `Timestamp` on
/// retries, so the tolerance must exceed the retry window.
fn check_timestamp(
    timestamp: OffsetDateTime,
    now: OffsetDateTime,
    tolerance: std::time::Duration,
) -> Result<(), SnsError> {
    // A tolerance too large for `time` (or for the calendar) simply has no lower bound.
    let oldest = time::Duration::try_from(tolerance)
        .ok()
        .and_then(|t| now.checked_sub(t));
    let newest = now.checked_add(FUTURE_SKEW);
    if oldest.is_some_and(|o| timestamp < o) || newest.is_some_and(|n| timestamp > n) {
        return Err(SnsError::StaleTimestamp);
    }
    Ok(())
}

/// The text of `<SubscriptionArn>…</SubscriptionArn>` in a ConfirmSubscription reply.
fn subscription_arn(reply: &str) -> Option<&str> {
    let (_, rest) = reply.split_once("<SubscriptionArn>")?;
    let (arn, _) = rest.split_once("</SubscriptionArn>")?;
    Some(arn.trim())
}
