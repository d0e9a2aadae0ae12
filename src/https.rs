//! The outbound HTTP client, built one way for everyone who calls out: SNS certificate fetches and
//! subscription confirmations, the Docplanner API, the schema registry.
//!
//! A leaf: `verify`, `reconcile` and `publish` build their clients here instead of reaching up into
//! `startup`, which is what used to make those modules a cycle.

use std::time::Duration;

/// How one caller's client behaves.
#[derive(Debug, Clone, Copy)]
pub struct Outbound {
    /// Total deadline for one request, body included (and for connecting).
    pub timeout: Duration,
    /// Refuse plain `http://` URLs (the SNS URLs come from the request and are attacker-chosen).
    pub https_only: bool,
    /// Follow 3xx answers. Off wherever a URL's host was checked: a redirect could lead anywhere.
    pub follow_redirects: bool,
}

/// Installs rustls' ring provider as the process default. reqwest is compiled without a provider
/// of its own and panics when none is installed; ring is already in the tree for NATS TLS, so one
/// provider, one C build. Idempotent: a second call finds one installed and leaves it.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider()
        .install_default()
        .is_err();
}

/// Builds a client for `purpose` (named in the error).
pub fn client(purpose: &str, outbound: Outbound) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let redirects = if outbound.follow_redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .redirect(redirects)
        .https_only(outbound.https_only)
        .timeout(outbound.timeout)
        .connect_timeout(outbound.timeout)
        .build()
        .map_err(|e| format!("cannot build the HTTPS client for {purpose}: {e}"))
}
