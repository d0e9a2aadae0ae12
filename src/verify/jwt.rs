//! JWTs with `jsonwebtoken`: the accepted algorithms are listed in config (the crate has no `none`),
//! and a token whose header names any other algorithm is refused before its signature is looked at,
//! which closes the "HS256 signed with the RSA public key" confusion.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use super::VerifyError;
use crate::secret::Secret;

/// `[sources.NAME.verify.jwt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Accepted algorithms, for example `["HS256"]` or `["RS256", "ES256"]`; one key family only.
    pub algorithms: Vec<String>,
    /// Issuer the token must carry in `iss`, when set.
    pub issuer: Option<String>,
    /// Audiences of which the token's `aud` must contain one, when set.
    pub audience: Option<Vec<String>>,
    /// Refuse tokens without `exp` (default true).
    #[serde(default = "default_true")]
    pub require_exp: bool,
    /// Clock skew allowed on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_leeway() -> u64 {
    30
}

#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// `key` is the HMAC secret for HS* or a PEM public key for RS*/PS*/ES*/EdDSA.
    pub fn new(settings: &JwtSettings, key: &Secret) -> Result<Self, String> {
        if settings.algorithms.is_empty() {
            return Err("list at least one algorithm".into());
        }
        let algorithms: Vec<Algorithm> = settings
            .algorithms
            .iter()
            .map(|a| {
                if a.eq_ignore_ascii_case("none") {
                    return Err("`none` is never accepted".to_owned());
                }
                a.parse::<Algorithm>()
                    .map_err(|_| format!("unknown algorithm `{a}`"))
            })
            .collect::<Result<_, _>>()?;
        let family = |a: &Algorithm| match a {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "hmac",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => "rsa",
            Algorithm::ES256 | Algorithm::ES384 => "ec",
            Algorithm::EdDSA => "ed",
        };
        let first = family(&algorithms[0]);
        if algorithms.iter().any(|a| family(a) != first) {
            return Err("algorithms must share one key type (HMAC, RSA, EC or EdDSA)".into());
        }
        let bytes = key.expose();
        let key = match first {
            "hmac" => DecodingKey::from_secret(bytes),
            "rsa" => DecodingKey::from_rsa_pem(bytes)
                .map_err(|e| format!("key is not an RSA public key PEM: {e}"))?,
            "ec" => DecodingKey::from_ec_pem(bytes)
                .map_err(|e| format!("key is not an EC public key PEM: {e}"))?,
            _ => DecodingKey::from_ed_pem(bytes)
                .map_err(|e| format!("key is not an Ed25519 public key PEM: {e}"))?,
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = settings.require_exp;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if settings.require_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        match &settings.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(aud) => validation.set_audience(aud),
            None => validation.validate_aud = false,
        }
        Ok(JwtVerifier { key, validation })
    }

    /// Validates `token`, returning its claims.
    pub fn verify(&self, token: &str) -> Result<serde_json::Value, VerifyError> {
        decode::<serde_json::Value>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                VerifyError::Jwt(match e.kind() {
                    ErrorKind::ExpiredSignature => "jwt_expired",
                    ErrorKind::ImmatureSignature => "jwt_not_yet_valid",
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        "jwt_algorithm_not_allowed"
                    }
                    ErrorKind::InvalidSignature => "jwt_bad_signature",
                    ErrorKind::InvalidIssuer => "jwt_wrong_issuer",
                    ErrorKind::InvalidAudience => "jwt_wrong_audience",
                    ErrorKind::MissingRequiredClaim(_) => "jwt_missing_claim",
                    _ => "jwt_malformed",
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn settings(algs: &[&str]) -> JwtSettings {
        JwtSettings {
            algorithms: algs.iter().map(|s| s.to_string()).collect(),
            issuer: Some("serviceoptimizer".into()),
            audience: Some(vec!["hookbridge".into()]),
            require_exp: true,
            leeway_secs: 0,
        }
    }

    fn token(alg: Algorithm, key: &[u8], claims: serde_json::Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn valid_token_passes_and_each_claim_failure_has_its_code() {
        let v = JwtVerifier::new(&settings(&["HS256"]), &Secret::from_bytes("k")).unwrap();
        let good = json!({"iss": "serviceoptimizer", "aud": "hookbridge", "exp": now() + 60});
        assert!(
            v.verify(&token(Algorithm::HS256, b"k", good.clone()))
                .is_ok()
        );
        let cases = [
            (
                token(Algorithm::HS256, b"other", good.clone()),
                "jwt_bad_signature",
            ),
            (
                token(
                    Algorithm::HS256,
                    b"k",
                    json!({"iss": "serviceoptimizer", "aud": "hookbridge", "exp": now() - 60}),
                ),
                "jwt_expired",
            ),
            (
                token(
                    Algorithm::HS256,
                    b"k",
                    json!({"iss": "x", "aud": "hookbridge", "exp": now() + 60}),
                ),
                "jwt_wrong_issuer",
            ),
            (
                token(
                    Algorithm::HS256,
                    b"k",
                    json!({"iss": "serviceoptimizer", "aud": "else", "exp": now() + 60}),
                ),
                "jwt_wrong_audience",
            ),
            (
                token(
                    Algorithm::HS256,
                    b"k",
                    json!({"iss": "serviceoptimizer", "aud": "hookbridge"}),
                ),
                "jwt_missing_claim",
            ),
            (
                token(Algorithm::HS512, b"k", good.clone()),
                "jwt_algorithm_not_allowed",
            ),
            ("not.a.jwt".to_owned(), "jwt_malformed"),
        ];
        for (t, code) in cases {
            assert_eq!(v.verify(&t), Err(VerifyError::Jwt(code)), "{code}");
        }
    }

    #[test]
    fn alg_none_is_refused_in_config_and_on_the_wire() {
        assert!(JwtVerifier::new(&settings(&["none"]), &Secret::from_bytes("k")).is_err());
        let v = JwtVerifier::new(&settings(&["HS256"]), &Secret::from_bytes("k")).unwrap();
        // {"alg":"none"} . {"iss":...} . (empty signature)
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJzZXJ2aWNlb3B0aW1pemVyIiwiYXVkIjoiaG9va2JyaWRnZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(v.verify(unsigned).is_err());
    }

    #[test]
    fn mixed_key_families_are_config_errors() {
        assert!(
            JwtVerifier::new(&settings(&["HS256", "RS256"]), &Secret::from_bytes("k")).is_err()
        );
        assert!(JwtVerifier::new(&settings(&["RS256"]), &Secret::from_bytes("not a pem")).is_err());
    }
}
