//! A small client for the Docplanner Integrations API v3 notification endpoints (providers.md §4.1):
//! an OAuth2 client-credentials token (fetched, cached and refreshed before it expires, or at once
//! when the API answers 401), `GET /notifications/multiple?limit=N` and
//! `POST /notifications/release`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::source::ReconcileConfig;

/// Refresh a token this long before the server says it expires.
const EARLY_REFRESH: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a reply we read: a page of 100 notifications is tens of kilobytes.
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;
/// Longer token lifetimes or `Retry-After` waits are taken as this: a server's number must not
/// overflow a clock (an `Instant` plus years panics) or park the reconciler for good.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("token endpoint: {0}")]
    Token(String),
    #[error("API: {0}")]
    Http(String),
    #[error("API answered {0}")]
    Status(u16),
}

/// What a release call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// 204: Docplanner will push again what it considers unprocessed.
    Done,
    /// 429: not allowed yet; try again after this long.
    TooSoon(Duration),
    /// 403: the API client is not on the push model; releasing makes no sense.
    NotPushModel,
}

/// One page of pulled notifications.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub notifications: Vec<serde_json::Value>,
    #[serde(default)]
    pub remaining: u64,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

pub struct DocplannerApi {
    http: reqwest::Client,
    config: ReconcileConfig,
    token: Mutex<Option<(String, Instant)>>,
}

impl DocplannerApi {
    pub fn new(config: ReconcileConfig) -> Result<Self, String> {
        // http:// is allowed for loopback only, which validation has checked.
        let http = crate::https::client(
            "the Docplanner API",
            crate::https::Outbound {
                timeout: REQUEST_TIMEOUT,
                https_only: false,
                follow_redirects: false,
            },
        )?;
        Ok(DocplannerApi {
            http,
            config,
            token: Mutex::new(None),
        })
    }

    /// A valid access token, fetching one by the client-credentials grant when needed.
    async fn token(&self) -> Result<String, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let id = String::from_utf8_lossy(self.config.client_id.expose()).into_owned();
        let secret = String::from_utf8_lossy(self.config.client_secret.expose()).into_owned();
        let response = self
            .http
            .post(&self.config.token_url)
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=integration")
            .send()
            .await
            .map_err(|e| ApiError::Token(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(ApiError::Token(format!(
                "answered {}",
                response.status().as_u16()
            )));
        }
        let reply: TokenReply = read_json(response)
            .await
            .map_err(|_| ApiError::Token("reply is not a token".into()))?;
        // Refresh a little early, but never sooner than halfway through a short-lived token.
        let lifetime = Duration::from_secs(reply.expires_in).min(MAX_WAIT);
        let refresh_at = Instant::now() + lifetime - EARLY_REFRESH.min(lifetime / 2);
        *cached = Some((reply.access_token.clone(), refresh_at));
        Ok(reply.access_token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends a request with the bearer token; on 401 fetches a new token and tries once more.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let response = build(&token)
                .send()
                .await
                .map_err(|e| ApiError::Http(e.without_url().to_string()))?;
            if response.status().as_u16() == 401 && attempt == 0 {
                self.forget_token().await;
                continue;
            }
            return Ok(response);
        }
        Err(ApiError::Status(401))
    }

    /// Pulls up to `batch` notifications (FIFO).
    pub async fn pull(&self) -> Result<Page, ApiError> {
        let url = format!(
            "{}/notifications/multiple?limit={}",
            self.config.base_url, self.config.batch
        );
        let response = self
            .send(|token| self.http.get(&url).bearer_auth(token))
            .await?;
        match response.status().as_u16() {
            200 => read_json(response)
                .await
                .map_err(|e| ApiError::Http(format!("the page is not the documented JSON: {e}"))),
            // Documented for the single endpoint when empty; treated alike here.
            404 => Ok(Page {
                notifications: Vec::new(),
                remaining: 0,
            }),
            status => Err(ApiError::Status(status)),
        }
    }

    /// Asks Docplanner to push again every notification not processed correctly.
    pub async fn release(&self) -> Result<Release, ApiError> {
        let url = format!("{}/notifications/release", self.config.base_url);
        let response = self
            .send(|token| self.http.post(&url).bearer_auth(token))
            .await?;
        match response.status().as_u16() {
            200 | 202 | 204 => Ok(Release::Done),
            429 => {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(3600);
                Ok(Release::TooSoon(Duration::from_secs(wait).min(MAX_WAIT)))
            }
            403 => Ok(Release::NotPushModel),
            status => Err(ApiError::Status(status)),
        }
    }
}

/// Reads a JSON reply of at most `MAX_REPLY_BYTES`, chunk by chunk: a server that sends more is
/// refused before it is buffered.
async fn read_json<T: serde::de::DeserializeOwned>(
    mut response: reqwest::Response,
) -> Result<T, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(format!("reply over {MAX_REPLY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("reply over {MAX_REPLY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
