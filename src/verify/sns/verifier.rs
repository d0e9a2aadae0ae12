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

/// Verifies SNS deliveries for one source. Cheap to share (`Arc`); all state is interior.
pub struct SnsVerifier {
    settings: SnsSettings,
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
        let cert = self.cert_for(&message.signing_cert_url).await?;
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
    async fn cert_for(&self, raw_url: &str) -> Result<Arc<SnsCert>, SnsError> {
        let url = parse_aws_url(raw_url, true).map_err(SnsError::InvalidCertUrl)?;
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
        let client = self
            .client()
            .map_err(|_| SnsError::CertUnavailable("no HTTPS client"))?;
        // Concurrent misses for one URL may each fetch once; rare (once per rotation) and bounded.
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let body = fetch::get_bounded(client, url.clone(), fetch::MAX_BODY)
            .await
            .map_err(|reason| {
                tracing::warn!(url = %url, reason, "SNS signing certificate fetch failed");
                SnsError::CertUnavailable("the fetch failed")
            })?;
        let pem = std::str::from_utf8(&body)
            .map_err(|_| SnsError::InvalidCert("the fetched certificate is not UTF-8"))?;
        let cert = Arc::new(SnsCert::from_pem(pem)?);
        self.cache.insert(url.as_str(), Arc::clone(&cert));
        Ok(cert)
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
