//! A source's admission limits: `[sources.NAME.allow]` (who may call) and
//! `[sources.NAME.rate_limit]` (how often).

use serde::Deserialize;

use crate::section::ConfigIssue;
use crate::verify::ip::IpAllowlist;

/// `[sources.NAME.allow]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    /// Addresses or CIDRs the provider sends from.
    pub ips: Vec<String>,
    /// Our own proxies / load balancers, whose forwarding header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies put the client address in, such as `X-Forwarded-For`.
    pub forwarded_header: Option<String>,
}

/// `[sources.NAME.rate_limit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained webhooks per second (may be fractional: 0.5 is one every two seconds).
    pub per_second: f64,
    /// Webhooks allowed at once above the sustained rate; defaults to one second's worth.
    pub burst: Option<u32>,
}

/// `[sources.NAME.rate_limit]`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained webhooks per second.
    pub per_second: f64,
    /// Webhooks allowed at once above the sustained rate.
    pub burst: u32,
}

/// Checks `[allow]`; `key` is its path.
pub(super) fn validate_allow(
    key: &str,
    a: &RawAllow,
    issues: &mut Vec<ConfigIssue>,
) -> Option<IpAllowlist> {
    let ips = IpAllowlist::parse_nets(&a.ips)
        .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.ips"), e)))
        .ok()?;
    let proxies = IpAllowlist::parse_nets(&a.trusted_proxies)
        .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.trusted_proxies"), e)))
        .ok()?;
    if a.forwarded_header.is_some() && proxies.is_empty() {
        issues.push(ConfigIssue::new(
            format!("{key}.forwarded_header"),
            "is only believed from trusted_proxies; list them",
        ));
    }
    Some(IpAllowlist {
        allowed: ips,
        trusted_proxies: proxies,
        forwarded_header: a.forwarded_header.clone(),
    })
}

/// Checks `[rate_limit]`; `key` is its path.
pub(super) fn validate_rate_limit(
    key: &str,
    r: &RawRateLimit,
    issues: &mut Vec<ConfigIssue>,
) -> Option<RateLimit> {
    // Past a million a second the GCRA interval rounds to zero nanoseconds.
    if r.per_second.is_finite() && r.per_second > 0.0 && r.per_second <= 1e6 {
        return Some(RateLimit {
            per_second: r.per_second,
            burst: r.burst.unwrap_or(r.per_second.ceil() as u32).max(1),
        });
    }
    issues.push(ConfigIssue::new(
        format!("{key}.per_second"),
        "must be greater than 0 and at most 1000000",
    ));
    None
}
