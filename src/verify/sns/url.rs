//! Which URLs we are willing to GET on behalf of an SNS envelope: `SigningCertURL` (before a
//! certificate fetch) and `SubscribeURL` (before confirming a subscription).
//!
//! Both come from the request body, so until verified they are attacker-chosen: an SSRF target
//! or a way to make us trust an attacker's key. The rules are those of the AWS validators (https,
//! host `^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$`, `.pem` path), tightened: no userinfo,
//! no port (not even `:443`), no fragment, no IP literal, and the URL must already be in the
//! canonical form the HTTP client will send. That last rule is what defeats parser tricks such as
//! `/x.pem/..`, `%2e%2e`, backslashes or stray whitespace: the parser would silently rewrite
//! them, and a rewritten URL is refused rather than trusted.

use reqwest::Url;

use super::SnsError;

/// Checks `raw` against the rules above; `require_pem` adds: path ends in a `.pem` file name,
/// only `[A-Za-z0-9._/-]` in the path, no query.
pub fn validate_aws_url(raw: &str, require_pem: bool) -> Result<(), SnsError> {
    parse_aws_url(raw, require_pem)
        .map(drop)
        .map_err(SnsError::InvalidCertUrl)
}

/// Like [`validate_aws_url`], returning the parsed URL to fetch (host lower-cased) or the reason.
pub(super) fn parse_aws_url(raw: &str, require_pem: bool) -> Result<Url, &'static str> {
    // Anything the URL parser would strip or re-encode (tabs, newlines, spaces, non-ASCII) or
    // treat as a separator on some parsers but not others (`\`) is refused outright.
    if !raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return Err("contains whitespace, control, non-ASCII or backslash characters");
    }
    let url = Url::parse(raw).map_err(|_| "not an absolute URL")?;
    if url.scheme() != "https" {
        return Err("scheme must be https");
    }
    // The parser hides a default port (`:443`) and an empty userinfo (`@`), so look at the raw
    // authority as well.
    let authority = raw
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .unwrap_or_default();
    if !url.username().is_empty() || url.password().is_some() || authority.contains('@') {
        return Err("userinfo is not allowed");
    }
    if url.port().is_some() || authority.contains(':') {
        return Err("an explicit port is not allowed");
    }
    // `domain()` is `None` for IPv4/IPv6 literals.
    let host = url.domain().ok_or("the host is an IP address")?;
    if !is_sns_host(host) {
        return Err("the host is not an SNS endpoint");
    }
    if url.fragment().is_some() || raw.contains('#') {
        return Err("a fragment is not allowed");
    }
    // Case-insensitive because the parser lower-cases scheme and host, which is harmless.
    if !url.as_str().eq_ignore_ascii_case(raw) {
        return Err("not in canonical form (dot segments, percent-encoding or a missing path)");
    }
    if require_pem {
        check_pem_path(&url)?;
    }
    Ok(url)
}

/// The file name a certificate URL names (its last path segment), for the local cert directory.
/// Only meaningful for URLs that passed `parse_aws_url(.., true)`, whose path charset excludes
/// `%`, `\` and `..` segments, so the name cannot leave the directory.
pub(super) fn pem_file_name(url: &Url) -> Option<&str> {
    url.path_segments()?.next_back()
}

fn check_pem_path(url: &Url) -> Result<(), &'static str> {
    if url.query().is_some() {
        return Err("a query is not allowed on a certificate URL");
    }
    let path = url.path();
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
    {
        return Err("the path holds characters a certificate URL never has");
    }
    let file = pem_file_name(url).unwrap_or_default();
    let is_pem_name = file
        .strip_suffix(".pem")
        .is_some_and(|stem| !stem.is_empty() && stem != ".");
    if !is_pem_name || path.split('/').any(|s| s == "." || s == "..") {
        return Err("the path must end with a .pem file name");
    }
    Ok(())
}

/// `^sns\.[a-zA-Z0-9-]{3,}\.amazonaws\.com(\.cn)?$`, case-insensitively.
fn is_sns_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let Some(label) = rest
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| rest.strip_suffix(".amazonaws.com"))
    else {
        return false;
    };
    label.len() >= 3
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// providers.md §1.4 (verified decisions) plus the gateway's extra rules.
    #[test]
    fn certificate_url_decision_table() {
        let cases: &[(&str, bool)] = &[
            (
                "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem",
                true,
            ),
            ("https://sns.cn-north-1.amazonaws.com.cn/x.pem", true),
            ("http://sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x.key", false),
            ("https://foo.amazonaws.com/bar.pem", false),
            ("https://sns.us-east-1.amazonaws.com.evil.com/x.pem", false),
            (
                "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem",
                false,
            ),
            // The regex accepts any 3+ character label (the PHP suite's "valid" URL).
            ("https://sns.foo.amazonaws.com/bar.pem", true),
            ("https://SNS.US-EAST-1.AMAZONAWS.COM/x.pem", true),
            ("https://user@sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://user:pw@sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://@sns.us-east-1.amazonaws.com/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com:443/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com:8443/x.pem", false),
            ("https://52.94.1.1/x.pem", false),
            ("https://[::1]/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x?a=.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem?", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem?a=b", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem#frag", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem#", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem/..", false),
            ("https://sns.us-east-1.amazonaws.com/a/../x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/a/%2e%2e/x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x%2epem", false),
            ("https://sns.us-east-1.amazonaws.com/x%2Fy.pem", false),
            ("https://sns.us-east-1.amazonaws.com\\x.pem", false),
            ("https://sns.us-east-1.amazonaws.com/x.pem ", false),
            ("https://sns.us-east-1.amazonaws.com/\tx.pem", false),
            ("https://sns.us-east-1.amazonaws.com/.pem", false),
            ("https://sns.us-east-1.amazonaws.com/", false),
            ("https://sns.us-east-1.amazonaws.com", false),
            ("https://sns.us-east-1.amazonaws.com./x.pem", false),
            ("https://sns.ab.amazonaws.com/x.pem", false),
            ("https://sns.a.b.amazonaws.com/x.pem", false),
            ("https://sns.us_east.amazonaws.com/x.pem", false),
            ("https://sns.xn--bcher-kva.amazonaws.com/x.pem", true),
            ("https://sns.bücher.amazonaws.com/x.pem", false),
            ("//sns.us-east-1.amazonaws.com/x.pem", false),
            ("HTTPS://sns.us-east-1.amazonaws.com/x.pem", true),
        ];
        for &(url, accept) in cases {
            assert_eq!(
                validate_aws_url(url, true).is_ok(),
                accept,
                "{url}: {:?}",
                validate_aws_url(url, true)
            );
        }
    }

    #[test]
    fn subscribe_urls_may_carry_a_query_but_obey_the_host_rules() {
        let real = "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-west-2:131990247566:dongie-standard-topic&Token=2336412f37fb";
        assert_eq!(validate_aws_url(real, false), Ok(()));
        assert!(validate_aws_url(real, true).is_err());
        for bad in [
            "https://evil.example/?Action=ConfirmSubscription",
            "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com:444/?Action=ConfirmSubscription",
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription#x",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            assert!(validate_aws_url(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_name_is_the_last_segment() {
        let url = parse_aws_url("https://sns.us-west-2.amazonaws.com/a/b-1.pem", true).unwrap();
        assert_eq!(pem_file_name(&url), Some("b-1.pem"));
    }
}
