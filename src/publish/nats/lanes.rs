//! A NATS connection of each HTTP worker's own, for the request path.
//!
//! actix-web runs each worker on a single-threaded runtime of its own, and a NATS client's
//! connection task runs on the runtime that connected it. Through the one client connected at
//! start (on the main runtime), every publish wakes another thread to write it, and every PubAck
//! wakes the worker back. A client connected from the worker's own runtime writes and reads its
//! socket on the worker's thread. On the lean pipeline of `scripts/bench` (docs/performance.md)
//! that was +22 % requests per second and −17 % CPU per webhook.
//!
//! A worker's lane is connected on its first publish, in the background: until it is up (or
//! while it cannot connect) that worker publishes through the shared client, which is also what
//! the spool's drainer, the dead letters of the drainer and the health loop use. Once connected, a
//! lane reconnects by itself like any async-nats client; a publish through a lane that is down
//! fails or times out like one through the shared client, and is spooled or refused the same way.
//! JetStream's `Nats-Msg-Id` dedup is the server's, so which connection carried a message does not
//! matter to it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::publish::config::NatsConfig;

/// After a failed connect, a worker uses the shared client this long before trying again: during
/// an outage, a connect per request would only add load.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Tells publishers apart in a worker's lanes (one process may have several NATS publishers).
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

enum Lane {
    Connecting,
    Ready(Arc<jetstream::Context>),
    Failed(Instant),
}

thread_local! {
    /// This thread's lanes, by publisher id. A worker has one per NATS publisher: a short list.
    static LANES: RefCell<Vec<(usize, Lane)>> = const { RefCell::new(Vec::new()) };
}

/// One publisher's lanes, across the workers.
pub(super) struct Lanes {
    id: usize,
    /// What a lane connects with: the publisher's own settings.
    config: Arc<NatsConfig>,
}

impl Lanes {
    pub(super) fn new(config: &NatsConfig) -> Self {
        Lanes {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config.clone()),
        }
    }

    /// This worker's connection, when the caller runs on a worker's single-threaded runtime and
    /// the lane is up; `None` means: publish through the shared client. The first call on a
    /// worker starts the lane's connection.
    pub(super) fn here(&self) -> Option<Arc<jetstream::Context>> {
        // The main runtime is multi-threaded: a task there has no thread of its own to keep a
        // connection on, and the shared client already lives there.
        if Handle::try_current().ok()?.runtime_flavor() != RuntimeFlavor::CurrentThread {
            return None;
        }
        LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            let Some(i) = lanes.iter().position(|(id, _)| *id == self.id) else {
                lanes.push((self.id, Lane::Connecting));
                self.start_connecting();
                return None;
            };
            let slot = &mut lanes[i].1;
            match slot {
                Lane::Ready(jetstream) => Some(jetstream.clone()),
                Lane::Connecting => None,
                Lane::Failed(at) if at.elapsed() < RETRY_AFTER => None,
                Lane::Failed(_) => {
                    *slot = Lane::Connecting;
                    self.start_connecting();
                    None
                }
            }
        })
    }

    fn start_connecting(&self) {
        // Spawned on this worker's runtime, so the connection's task stays on it, and the result
        // is stored in this thread's lanes.
        drop(tokio::spawn(connect(self.id, self.config.clone())));
    }
}

async fn connect(id: usize, config: Arc<NatsConfig>) {
    let lane = match super::connect_options(&config)
        .connect(config.url.as_str())
        .await
    {
        Ok(client) => Lane::Ready(Arc::new(jetstream::new(client))),
        Err(e) => {
            tracing::debug!(error = %e, "a worker's own NATS connection failed; it uses the shared one");
            Lane::Failed(Instant::now())
        }
    };
    LANES.with(|lanes| {
        if let Some((_, slot)) = lanes.borrow_mut().iter_mut().find(|(i, _)| *i == id) {
            *slot = lane;
        }
    });
}
