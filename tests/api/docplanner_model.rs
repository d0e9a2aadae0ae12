//! A local model of Docplanner's notification API, written from its documentation
//! (providers.md §4.1, §4.6), not a stub with fixed answers:
//! - `POST /oauth/v2/token`: client-credentials grant with HTTP basic client authentication; tokens
//!   expire after `token_ttl` and can be revoked;
//! - `GET /api/v3/integration/notifications/multiple?limit=1..100`: FIFO, removes what it returns,
//!   answers `{"notifications": [...], "remaining": N}`; notifications older than 72 h are gone;
//! - `GET /api/v3/integration/notifications`: one notification, or 404 with the documented body;
//! - `POST /api/v3/integration/notifications/release`: 204 and re-push of every notification whose
//!   push failed; once per hour, otherwise 429 with `Retry-After` in seconds.
//!
//! The model keeps its own clock (real time plus an offset tests can advance).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use serde_json::{Value, json};

const EXPIRY: Duration = Duration::from_secs(72 * 3600);
const RELEASE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct State {
    client_id: String,
    client_secret: String,
    token_ttl: Duration,
    tokens: HashMap<String, Instant>,
    next_token: u64,
    /// (notification, when it was created, on the model clock)
    queue: VecDeque<(Value, Instant)>,
    clock_offset: Duration,
    outage: bool,
    /// Pages padded past any sane size, as a hostile or broken server would send them.
    flood: bool,
    last_release: Option<Instant>,
    release_calls: usize,
    releases_done: usize,
    token_requests: usize,
    /// Notifications whose push was not answered 2xx: `release` pushes them again.
    unprocessed: Vec<Value>,
    push_target: Option<(String, String)>,
}

impl State {
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    fn authorized(&self, req: &HttpRequest) -> bool {
        let Some(token) = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        self.tokens
            .get(token)
            .is_some_and(|expires| *expires > self.now())
    }
}

#[derive(Clone)]
pub struct DocplannerModel {
    state: Arc<Mutex<State>>,
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

impl DocplannerModel {
    pub async fn start(client_id: &str, client_secret: &str, token_ttl: Duration) -> Self {
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            token_ttl,
            ..State::default()
        }));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/oauth/v2/token", web::post().to(token))
                .route(
                    "/api/v3/integration/notifications/multiple",
                    web::get().to(pull_multiple),
                )
                .route("/api/v3/integration/notifications", web::get().to(pull_one))
                .route(
                    "/api/v3/integration/notifications/release",
                    web::post().to(release),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        DocplannerModel {
            state,
            base: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }

    /// A notification becomes pullable.
    pub fn enqueue(&self, notification: Value) {
        let mut s = self.state.lock().unwrap();
        let now = s.now();
        s.queue.push_back((notification, now));
    }

    /// Where `release` re-pushes unprocessed notifications: the gateway's webhook URL and API key.
    pub fn push_to(&self, url: &str, api_key: &str) {
        self.state.lock().unwrap().push_target = Some((url.into(), api_key.into()));
    }

    /// Pushes a notification as Docplanner does: once; a non-2xx answer leaves it unprocessed.
    pub async fn push(&self, notification: Value) -> u16 {
        let target = self
            .state
            .lock()
            .unwrap()
            .push_target
            .clone()
            .expect("push_to first");
        let status = push_once(&target, &notification).await;
        if !(200..300).contains(&status) {
            self.state.lock().unwrap().unprocessed.push(notification);
        }
        status
    }

    /// A notification whose earlier push failed (Docplanner keeps it as not processed correctly).
    pub fn add_unprocessed(&self, notification: Value) {
        self.state.lock().unwrap().unprocessed.push(notification);
    }

    /// Every page from now on carries 8 MiB of padding (streamed, no Content-Length) and nothing.
    pub fn set_flood(&self, flood: bool) {
        self.state.lock().unwrap().flood = flood;
    }

    pub fn set_outage(&self, outage: bool) {
        self.state.lock().unwrap().outage = outage;
    }

    /// Docplanner rotates the client secret: only the new one gets a token from now on.
    pub fn set_client_secret(&self, secret: &str) {
        self.state.lock().unwrap().client_secret = secret.into();
    }

    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// As if another client had released just now.
    pub fn mark_released_now(&self) {
        let mut s = self.state.lock().unwrap();
        s.last_release = Some(s.now());
    }

    pub fn advance_clock(&self, by: Duration) {
        self.state.lock().unwrap().clock_offset += by;
    }

    pub fn release_calls(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.release_calls, s.releases_done)
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().unwrap().token_requests
    }

    pub fn queued(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }
}

impl Drop for DocplannerModel {
    fn drop(&mut self) {
        if Arc::strong_count(&self.state) <= 2 {
            let handle = self.handle.clone();
            drop(tokio::spawn(async move { handle.stop(false).await }));
        }
    }
}

async fn push_once(target: &(String, String), notification: &Value) -> u16 {
    hookbridge::startup::install_crypto_provider();
    reqwest::Client::new()
        .post(&target.0)
        .header("X-Api-Key", &target.1)
        .header("content-type", "application/json")
        .body(notification.to_string())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

type Shared = web::Data<Arc<Mutex<State>>>;

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"errors": [], "message": "Service unavailable"}))
}

async fn token(req: HttpRequest, body: String, state: Shared) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if s.outage {
        return unavailable();
    }
    s.token_requests += 1;
    let expected = format!("{}:{}", s.client_id, s.client_secret);
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    if presented.as_deref() != Some(expected.as_bytes()) {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    s.next_token += 1;
    let token = format!("model-token-{}", s.next_token);
    // A lifetime past the clock's range (a test of the client's arithmetic) is a century here.
    let expires = s
        .now()
        .checked_add(s.token_ttl)
        .unwrap_or_else(|| s.now() + Duration::from_secs(100 * 365 * 24 * 3600));
    s.tokens.insert(token.clone(), expires);
    HttpResponse::Ok().json(json!({"access_token": token, "token_type": "bearer", "expires_in": s.token_ttl.as_secs(), "scope": "integration"}))
}

fn drop_expired(s: &mut State) {
    let now = s.now();
    s.queue
        .retain(|(_, created)| now.duration_since(*created) < EXPIRY);
}

async fn pull_multiple(req: HttpRequest, state: Shared) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if s.outage {
        return unavailable();
    }
    if !s.authorized(&req) {
        return HttpResponse::Unauthorized().json(json!({"errors": [], "message": "Unauthorized"}));
    }
    let limit: usize = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1);
    if !(1..=100).contains(&limit) {
        return HttpResponse::BadRequest()
            .json(json!({"errors": [], "message": "limit must be 1..100"}));
    }
    if s.flood {
        // Valid JSON of the documented shape, with an unknown field 8 MiB long: only a size cap
        // refuses it.
        let pad = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let parts = std::iter::once(bytes::Bytes::from_static(
            br#"{"notifications":[],"remaining":0,"pad":""#,
        ))
        .chain(std::iter::repeat_n(pad, 128))
        .chain(std::iter::once(bytes::Bytes::from_static(br#""}"#)));
        let chunks = futures_util::stream::iter(parts.map(Ok::<_, std::io::Error>));
        return HttpResponse::Ok()
            .content_type("application/vnd.docplanner+json; charset=UTF-8")
            .streaming(chunks);
    }
    drop_expired(&mut s);
    let take = limit.min(s.queue.len());
    let notifications: Vec<Value> = s.queue.drain(..take).map(|(n, _)| n).collect();
    HttpResponse::Ok()
        .content_type("application/vnd.docplanner+json; charset=UTF-8")
        .json(json!({"notifications": notifications, "remaining": s.queue.len()}))
}

async fn pull_one(req: HttpRequest, state: Shared) -> HttpResponse {
    let mut s = state.lock().unwrap();
    if s.outage {
        return unavailable();
    }
    if !s.authorized(&req) {
        return HttpResponse::Unauthorized().json(json!({"errors": [], "message": "Unauthorized"}));
    }
    drop_expired(&mut s);
    match s.queue.pop_front() {
        Some((n, _)) => HttpResponse::Ok().json(n),
        None => HttpResponse::NotFound()
            .json(json!({"errors": [], "message": "No notifications found"})),
    }
}

async fn release(req: HttpRequest, state: Shared) -> HttpResponse {
    let (target, again) = {
        let mut s = state.lock().unwrap();
        if s.outage {
            return unavailable();
        }
        if !s.authorized(&req) {
            return HttpResponse::Unauthorized()
                .json(json!({"errors": [], "message": "Unauthorized"}));
        }
        s.release_calls += 1;
        let now = s.now();
        if let Some(last) = s.last_release
            && now.duration_since(last) < RELEASE_EVERY
        {
            let wait = RELEASE_EVERY - now.duration_since(last);
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", wait.as_secs().max(1).to_string()))
                .json(json!({"errors": [], "message": "Release allowed once per hour"}));
        }
        s.last_release = Some(now);
        s.releases_done += 1;
        (s.push_target.clone(), std::mem::take(&mut s.unprocessed))
    };
    // Re-dispatch what was not processed correctly; what fails again stays unprocessed.
    if let Some(target) = target {
        let state = state.get_ref().clone();
        tokio::spawn(async move {
            for n in again {
                let status = push_once(&target, &n).await;
                if !(200..300).contains(&status) {
                    state.lock().unwrap().unprocessed.push(n);
                }
            }
        });
    }
    HttpResponse::NoContent().finish()
}
