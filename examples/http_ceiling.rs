//! The HTTP ceiling for `scripts/bench`: an actix-web server that reads each request's body and
//! answers 204, with nothing else. hookbridge's throughput is reported as a ratio of this server's,
//! measured in the same run on the same machine, so the ratio holds on a noisy box.
//!
//! `http_ceiling ADDR WORKERS` — prints `listening on PORT` once bound.

use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;

async fn accept(body: Bytes) -> HttpResponse {
    std::hint::black_box(body);
    HttpResponse::NoContent().finish()
}

/// Started the way `hookbridge serve` starts: a tokio runtime, actix-web inside it.
fn main() -> std::io::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let server = HttpServer::new(|| {
        App::new()
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::to(accept))
    })
    .workers(workers)
    .bind(&addr)?;
    for addr in server.addrs() {
        println!("listening on {}", addr.port());
    }
    server.run().await
}
