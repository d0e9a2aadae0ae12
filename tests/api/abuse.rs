//! Slow and abusive clients: a request head or body that never finishes, a connection that never
//! ends, and a source that sends faster than its rate limit. Each limit is set small in the config
//! so the test waits a fraction of a second, never a default's worth.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::brokers::NatsServer;
use crate::consumers::read_nats;
use crate::helpers::{
    AppOptions, CRONOFY_SECRET, TestApp, config_text, cronofy_change, cronofy_sign,
    spawn_with_config, test_env, unique,
};

/// A gateway on a fresh NATS whose `[server]` and `[sources.cronofy]` tables get `server_lines`
/// and `source_lines` added.
async fn app_with(nats: &NatsServer, server_lines: &str, source_lines: &str) -> TestApp {
    let (stream, prefix) = (unique("S"), unique("t"));
    let options = AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    };
    let text = config_text(&options, &stream, &prefix)
        .replacen("[server]\n", &format!("[server]\n{server_lines}\n"), 1)
        .replacen(
            "[sources.cronofy.verify]",
            &format!("{source_lines}\n[sources.cronofy.verify]"),
            1,
        );
    spawn_with_config(&text, &test_env(), stream, prefix).await
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

fn signed_request(channel: &str) -> String {
    let body = cronofy_change(channel);
    format!(
        "POST /webhooks/cronofy HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
         Cronofy-HMAC-SHA256: {}\r\nContent-Length: {}\r\n\r\n{body}",
        cronofy_sign(CRONOFY_SECRET, &body),
        body.len()
    )
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) off `stream`: (head, body).
/// `None` when the server closed the connection first.
async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the server answers or closes within 10 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..]).into_owned();
    Some((head, body))
}

/// True when the server closes the connection within 10 s (a read returns end of stream).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Asserts a refusal: the status line, the reply's `code`, the `outcome` counted once, and nothing
/// on the app's subjects.
async fn assert_refused(
    app: &TestApp,
    nats: &NatsServer,
    (head, body): (String, String),
    status: u16,
    code: &str,
    outcome: &str,
) {
    assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["code"], code);
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", outcome)]
        ),
        1.0
    );
    let published = read_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.>", app.prefix),
        0,
        Duration::from_millis(300),
    )
    .await;
    assert!(published.is_empty(), "a refused webhook was published");
}

/// Slowloris: a client that opens a request and never finishes its headers holds a connection
/// only until `request_head_timeout_ms`, then gets 408 and is disconnected.
#[tokio::test]
async fn a_request_head_that_never_finishes_gets_408_and_is_disconnected() {
    let nats = NatsServer::start();
    let app = app_with(&nats, "request_head_timeout_ms = 300", "").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();

    stream
        .write_all(b"POST /webhooks/cronofy HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream)
        .await
        .expect("a 408 before the close");

    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(closed_by_server(&mut stream).await);
    app.wait_ready(200, Duration::from_secs(5)).await;
}

/// A body that trickles in is cut off at `body_timeout_ms` with 408 `body_timeout`, counted as
/// `timed_out`, and nothing is published.
#[tokio::test]
async fn a_body_that_never_finishes_gets_408_and_nothing_is_published() {
    let nats = NatsServer::start();
    let app = app_with(&nats, "body_timeout_ms = 300", "").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let full = signed_request("chn_slow_body");
    let cut = full.len() - 40;

    stream.write_all(&full.as_bytes()[..cut]).await.unwrap();
    let response = read_response(&mut stream).await.expect("an answer");

    assert_refused(&app, &nats, response, 408, "body_timeout", "timed_out").await;
}

/// After `max_requests_per_connection` requests the answer says `Connection: close` and the
/// server closes; the earlier answers keep the connection open. Every request is still served.
#[tokio::test]
async fn a_connection_is_closed_after_its_request_limit() {
    let nats = NatsServer::start();
    let app = app_with(&nats, "max_requests_per_connection = 3", "").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();

    let mut heads = Vec::new();
    for i in 0..3 {
        stream
            .write_all(signed_request(&format!("chn_conn_{i}")).as_bytes())
            .await
            .unwrap();
        let (head, _) = read_response(&mut stream).await.expect("an answer");
        heads.push(head);
    }

    for head in &heads {
        assert!(head.starts_with("http/1.1 2"), "{head}");
    }
    assert!(!heads[0].contains("connection: close"), "{}", heads[0]);
    assert!(!heads[1].contains("connection: close"), "{}", heads[1]);
    assert!(heads[2].contains("connection: close"), "{}", heads[2]);
    assert!(closed_by_server(&mut stream).await);
    let published = read_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.>", app.prefix),
        3,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(published.len(), 3);
}

/// An idle keep-alive connection is closed after `keep_alive_secs`.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let nats = NatsServer::start();
    let app = app_with(&nats, "keep_alive_secs = 1", "").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    stream
        .write_all(signed_request("chn_keep_alive").as_bytes())
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await.expect("an answer");
    assert!(head.starts_with("http/1.1 2"), "{head}");

    assert!(
        closed_by_server(&mut stream).await,
        "the idle connection stays open"
    );
}

/// A source over its rate limit gets 429 with `Retry-After` and the `rate_limited` code; the
/// limited webhook is not published. Forgeries do not spend the budget (they are refused first).
#[tokio::test]
async fn a_source_over_its_rate_limit_gets_429_with_retry_after() {
    let nats = NatsServer::start();
    let app = app_with(
        &nats,
        "",
        "[sources.cronofy.rate_limit]\nper_second = 0.1\nburst = 2",
    )
    .await;
    let forged = app
        .post_cronofy("cronofy", &cronofy_change("chn_forged"), Some("bm90IGl0"))
        .await;
    assert_eq!(forged.status().as_u16(), 401);

    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..3 {
        let body = cronofy_change(&format!("chn_rate_{i}"));
        let response = app
            .post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
            .await;
        statuses.push(response.status().as_u16());
        last = Some(response);
    }

    assert_eq!(
        &statuses[..2],
        &[200, 200],
        "the burst passes: {statuses:?}"
    );
    assert_eq!(statuses[2], 429);
    let limited = last.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    let reply: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(reply["code"], "rate_limited");
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "rate_limited")]
        ),
        1.0
    );
    let published = read_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.>", app.prefix),
        2,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(published.len(), 2, "the limited webhook is not published");
}

/// A chunked body (no `Content-Length` to refuse up front) is cut off as soon as it passes the
/// source's limit: 413, counted as `too_large`, nothing published.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_while_streaming() {
    let nats = NatsServer::start();
    let app = app_with(&nats, "", "body_limit_bytes = 1024").await;
    let mut stream = TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));

    stream
        .write_all(
            b"POST /webhooks/cronofy HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Cronofy-HMAC-SHA256: c2lnbmF0dXJl\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // The server may answer and close before it has read everything; later writes may fail.
    for _ in 0..3 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ignored = stream.write_all(b"0\r\n\r\n").await;
    let response = read_response(&mut stream).await.expect("an answer");

    assert_refused(&app, &nats, response, 413, "payload_too_large", "too_large").await;
}
