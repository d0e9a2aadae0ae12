//! Connection limits actix-web has no setting for: a connection serves at most
//! `server.max_requests_per_connection` requests, then the answer says `Connection: close`.
//!
//! Why: a client that keeps one connection forever pins itself to one worker (uneven load across
//! workers and replicas behind a layer-4 balancer) and never lets a draining replica go. Head and
//! body timeouts, keep-alive and connections per worker are actix-web settings (see `startup`).

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web;

use super::AppState;

/// Requests served so far on one connection. A connection lives on one worker thread, so a `Cell`.
#[derive(Clone, Default)]
struct RequestsServed(Rc<Cell<u32>>);

/// `HttpServer::on_connect` hook: gives each new connection its counter.
pub fn on_connect(_connection: &dyn Any, data: &mut Extensions) {
    data.insert(RequestsServed::default());
}

/// Middleware: counts the request and closes the connection after the one that reaches the limit.
pub async fn limit_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = request
        .app_data::<web::Data<AppState>>()
        .map_or(u32::MAX, |state| state.max_requests_per_connection);
    let served = request.conn_data::<RequestsServed>().map(|served| {
        let n = served.0.get().saturating_add(1);
        served.0.set(n);
        n
    });
    let mut response = next.call(request).await?;
    if served.is_some_and(|n| n >= limit) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
