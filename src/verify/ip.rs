//! Source IP allowlists. The client address is the TCP peer, unless the peer is a configured trusted
//! proxy: then the nearest address in the configured forwarding header that is not itself a trusted
//! proxy. A forwarding header from anyone else is ignored, since a client can write anything there.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

use super::VerifyError;

#[derive(Debug, Clone)]
pub struct IpAllowlist {
    pub allowed: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    /// Header the trusted proxies append the client to, for example `X-Forwarded-For`.
    pub forwarded_header: Option<String>,
}

impl IpAllowlist {
    /// Parses CIDRs (`10.0.0.0/8`) or single addresses (`192.0.2.7`).
    pub fn parse_nets(items: &[String]) -> Result<Vec<IpNet>, String> {
        items
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
            })
            .collect()
    }

    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        let Some(header) = &self.forwarded_header else {
            return Some(peer);
        };
        if !trusted(&peer) {
            return Some(peer);
        }
        // Walk from the nearest hop outwards; the first address not of our own proxies is the client.
        let hops: Vec<IpAddr> = headers
            .get_all(header.as_str())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        Some(
            hops.into_iter()
                .rev()
                .find(|ip| !trusted(ip))
                .unwrap_or(peer),
        )
    }

    pub fn check(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), VerifyError> {
        match self.client_ip(peer, headers) {
            Some(ip) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            _ => Err(VerifyError::IpNotAllowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn list(proxy_header: bool) -> IpAllowlist {
        IpAllowlist {
            allowed: IpAllowlist::parse_nets(&["203.0.113.0/24".into(), "2001:db8::1".into()])
                .unwrap(),
            trusted_proxies: IpAllowlist::parse_nets(&["10.0.0.0/8".into()]).unwrap(),
            forwarded_header: proxy_header.then(|| "x-forwarded-for".into()),
        }
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn peer_is_checked_without_a_proxy_header() {
        let l = list(false);
        assert!(
            l.check(Some("203.0.113.9".parse().unwrap()), &HeaderMap::new())
                .is_ok()
        );
        assert!(
            l.check(Some("198.51.100.1".parse().unwrap()), &xff("203.0.113.9"))
                .is_err()
        );
        assert!(l.check(None, &HeaderMap::new()).is_err());
    }

    #[test]
    fn forwarded_header_counts_only_behind_a_trusted_proxy() {
        let l = list(true);
        // Through our proxy: the client is the last untrusted hop.
        assert!(
            l.check(
                Some("10.1.2.3".parse().unwrap()),
                &xff("198.51.100.1, 203.0.113.9, 10.0.0.2")
            )
            .is_ok()
        );
        // A client forging the header directly is judged by its own address.
        assert!(
            l.check(Some("198.51.100.1".parse().unwrap()), &xff("203.0.113.9"))
                .is_err()
        );
        // A spoofed leftmost entry does not help when the real client is further right.
        assert!(
            l.check(
                Some("10.1.2.3".parse().unwrap()),
                &xff("203.0.113.9, 198.51.100.1")
            )
            .is_err()
        );
    }

    #[test]
    fn bad_cidrs_are_config_errors() {
        assert!(IpAllowlist::parse_nets(&["10.0.0.0/33".into()]).is_err());
        assert!(IpAllowlist::parse_nets(&["nope".into()]).is_err());
    }
}
