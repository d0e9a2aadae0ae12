//! The outbound HTTPS GETs SNS verification needs (signing certificates, subscription
//! confirmations), with the limits that keep an attacker-influenced URL cheap: no redirects (a 3xx
//! could lead anywhere), https only, a 5 s total deadline and a byte cap on the body.

use std::time::Duration;

use reqwest::{StatusCode, Url};

/// Total deadline for one GET, body included.
pub(super) const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body read; SNS certificates are about 2 KiB, confirmation replies smaller still.
pub(super) const MAX_BODY: usize = 64 * 1024;

/// Builds the client. `reqwest` is compiled without a rustls crypto provider and panics when none
/// is installed, so that case is turned into an error here instead.
pub(super) fn build_client() -> Result<reqwest::Client, String> {
    crate::https::client(
        "SNS",
        crate::https::Outbound {
            timeout: TIMEOUT,
            https_only: true,
            follow_redirects: false,
        },
    )
}

/// GETs `url` and returns the body of a 200 response of at most `max` bytes. The error is a short
/// reason for logs; transport errors are logged here without the URL (a SubscribeURL carries the
/// subscription token).
pub(super) async fn get_bounded(
    client: &reqwest::Client,
    url: Url,
    max: usize,
) -> Result<Vec<u8>, &'static str> {
    let transport = |e: reqwest::Error| {
        tracing::debug!(error = %e.without_url(), "SNS HTTPS request failed");
        "request failed"
    };
    let mut response = client.get(url).send().await.map_err(transport)?;
    if response.status() != StatusCode::OK {
        return Err("response status is not 200");
    }
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err("response body too large");
    }
    let mut body = Vec::new();
    // Read chunk by chunk: Content-Length may be absent or wrong.
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max {
            return Err("response body too large");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
