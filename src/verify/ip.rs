//! Source IP allowlists. The client address is the TCP peer, unless the peer is a configured trusted
//! proxy: then the nearest address in the configured forwarding header that is not itself a trusted
//! proxy. A forwarding header from anyone else is ignored, since a client can write anything there.
//!
//! Hops are read from the right (the one our proxy wrote) leftwards. A hop that does not parse ends
//! the walk with a refusal: skipping it would let the next, client-written entry be believed.
//! Forms that parse: `203.0.113.9`, `203.0.113.9:4444`, `2001:db8::1`, `[2001:db8::1]`,
//! `[2001:db8::1]:4444`, and RFC 7239 `for=` pairs (`for=192.0.2.60;proto=https`,
//! `for="[2001:db8::1]:4711"`).

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
        let mut hops = Vec::new();
        for value in headers.get_all(header.as_str()) {
            // A header value that is not text cannot be read safely: refuse.
            hops.extend(value.to_str().ok()?.split(','));
        }
        for hop in hops.into_iter().rev() {
            let ip = parse_hop(hop)?;
            if !trusted(&ip) {
                return Some(ip);
            }
        }
        Some(peer)
    }

    pub fn check(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), VerifyError> {
        match self.client_ip(peer, headers) {
            Some(ip) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            _ => Err(VerifyError::IpNotAllowed),
        }
    }
}

/// One forwarding hop, in any of the forms the module documents; `None` for anything else.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    // RFC 7239: `for=...` among `;`-separated pairs, the value possibly quoted.
    let hop = match hop.split(';').map(str::trim).find_map(|pair| {
        pair.get(..4)
            .filter(|k| k.eq_ignore_ascii_case("for="))
            .and(pair.get(4..))
    }) {
        Some(value) => value.trim_matches('"'),
        None => hop,
    };
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
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
    fn a_hop_that_does_not_parse_ends_the_walk_with_a_refusal() {
        let l = list(true);
        let proxy = Some("10.1.2.3".parse().unwrap());
        // The right-most hop carries a port: parsed, so the forged left entry is never reached.
        assert!(
            l.check(proxy, &xff("203.0.113.5, 198.51.100.9:4444"))
                .is_err()
        );
        assert!(
            l.check(proxy, &xff("198.51.100.1, 203.0.113.9:4444"))
                .is_ok()
        );
        // An unparseable right-most hop: refused, not skipped.
        assert!(l.check(proxy, &xff("203.0.113.9, not-an-ip")).is_err());
        assert!(l.check(proxy, &xff("203.0.113.9, unknown")).is_err());
        assert!(
            l.check(proxy, &xff("203.0.113.9, ")).is_err(),
            "an empty hop"
        );
    }

    #[test]
    fn every_documented_hop_form_parses() {
        for (hop, ip) in [
            ("203.0.113.9", "203.0.113.9"),
            (" 203.0.113.9:4444 ", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("for=192.0.2.60;proto=https;by=203.0.113.43", "192.0.2.60"),
            ("For=\"[2001:db8::1]:4711\"", "2001:db8::1"),
        ] {
            assert_eq!(parse_hop(hop), Some(ip.parse().unwrap()), "{hop}");
        }
        for hop in [
            "",
            "unknown",
            "_hidden",
            "203.0.113.9:port",
            "[2001:db8::1",
            "999.1.1.1",
        ] {
            assert_eq!(parse_hop(hop), None, "{hop}");
        }
    }

    #[test]
    fn bad_cidrs_are_config_errors() {
        assert!(IpAllowlist::parse_nets(&["10.0.0.0/33".into()]).is_err());
        assert!(IpAllowlist::parse_nets(&["nope".into()]).is_err());
    }
}
