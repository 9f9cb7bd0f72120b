//! The check a cloud's OIDC federation makes of a Kubernetes ServiceAccount
//! token (a JWT from the apiserver's TokenRequest API, as a projected token
//! volume holds it): its RS256 signature against the issuer's public key
//! (the apiserver's `--service-account-key-file`), then `iss`, `aud`, `exp`
//! and `nbf` against the fake's own clock. Tencent STS
//! `AssumeRoleWithWebIdentity` and Huawei IAM's id-token exchange both start
//! with it.

use jiff::Timestamp;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// An OIDC provider as the cloud knows it: the issuer URL and its key.
#[derive(Clone)]
pub struct OidcProvider {
    pub issuer: String,
    key: DecodingKey,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    pub exp: i64,
}

/// Why a token is refused; each fake maps it to its cloud's code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("the token is not a JWT signed with RS256: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify against the provider's key")]
    BadSignature,
    #[error("the token's issuer {got:?} is not the provider's {want:?}")]
    WrongIssuer { got: String, want: String },
    #[error("the token's audience {got:?} does not include {want:?}")]
    WrongAudience { got: Vec<String>, want: String },
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    aud: Audience,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

/// `aud` is a string or a list of strings (the apiserver writes a list).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    fn into_vec(self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a],
            Audience::Many(v) => v,
            Audience::None => Vec::new(),
        }
    }
}

impl OidcProvider {
    /// A provider whose tokens are signed by the RSA key whose public half is
    /// `public_key_pem` (PKCS#1 or SubjectPublicKeyInfo PEM).
    pub fn from_pem(issuer: &str, public_key_pem: &str) -> Result<Self, String> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .map_err(|e| format!("the provider's public key: {e}"))?;
        Ok(Self {
            issuer: issuer.to_string(),
            key,
        })
    }

    /// Check `token` for `audience` at `now`.
    pub fn verify(
        &self,
        token: &str,
        audience: &str,
        now: Timestamp,
    ) -> Result<TokenClaims, TokenRefusal> {
        let header = decode_header(token).map_err(|e| TokenRefusal::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenRefusal::Malformed(format!("alg {:?}", header.alg)));
        }
        // Signature only here; the claims are checked below against the
        // fake's clock, not the machine's.
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = decode::<Claims>(token, &self.key, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
                _ => TokenRefusal::Malformed(e.to_string()),
            })?
            .claims;
        if claims.iss != self.issuer {
            return Err(TokenRefusal::WrongIssuer {
                got: claims.iss,
                want: self.issuer.clone(),
            });
        }
        let now = now.as_second();
        if claims.exp <= now {
            return Err(TokenRefusal::Expired {
                exp: claims.exp,
                now,
            });
        }
        if let Some(nbf) = claims.nbf.filter(|&nbf| nbf > now) {
            return Err(TokenRefusal::NotYetValid { nbf, now });
        }
        let aud = claims.aud.into_vec();
        if !aud.iter().any(|a| a == audience) {
            return Err(TokenRefusal::WrongAudience {
                got: aud,
                want: audience.to_string(),
            });
        }
        Ok(TokenClaims {
            sub: claims.sub,
            exp: claims.exp,
        })
    }
}

/// A test key pair and tokens signed with it, for tests of the fakes
/// without an apiserver. The key is a fixed test key, generated for this
/// purpose only (`openssl genrsa 2048`); it guards nothing.
pub mod testing {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    pub const PRIVATE_KEY_PEM: &str = include_str!("oidc/test-key.pem");
    pub const PUBLIC_KEY_PEM: &str = include_str!("oidc/test-key.pub.pem");
    pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    /// A ServiceAccount token as TokenRequest writes one.
    pub fn token(sub: &str, audience: &str, iat: i64, exp: i64) -> String {
        token_from(ISSUER, sub, audience, iat, exp, PRIVATE_KEY_PEM)
    }

    /// The same, from any issuer and key.
    pub fn token_from(
        issuer: &str,
        sub: &str,
        audience: &str,
        iat: i64,
        exp: i64,
        private_key_pem: &str,
    ) -> String {
        let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).expect("test key");
        let claims = json!({
            "iss": issuer,
            "sub": sub,
            "aud": [audience],
            "iat": iat,
            "nbf": iat,
            "exp": exp,
        });
        encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).expect("signed")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    const SUB: &str = "system:serviceaccount:clusterscale:clusterscale";

    fn provider() -> OidcProvider {
        OidcProvider::from_pem(ISSUER, PUBLIC_KEY_PEM).unwrap()
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn a_valid_token_gives_its_subject() {
        let t = token(SUB, "sts.tencentcloudapi.com", 1000, 1600);
        let c = provider()
            .verify(&t, "sts.tencentcloudapi.com", at(1200))
            .unwrap();
        assert_eq!(c.sub, SUB);
        assert_eq!(c.exp, 1600);
    }

    #[test]
    fn each_check_refuses() {
        let p = provider();
        let t = token(SUB, "aud-a", 1000, 1600);
        assert!(matches!(
            p.verify(&t, "aud-b", at(1200)),
            Err(TokenRefusal::WrongAudience { .. })
        ));
        assert!(matches!(
            p.verify(&t, "aud-a", at(1600)),
            Err(TokenRefusal::Expired { .. })
        ));
        assert!(matches!(
            p.verify(&t, "aud-a", at(999)),
            Err(TokenRefusal::NotYetValid { .. })
        ));
        let other = token_from("https://other", SUB, "aud-a", 1000, 1600, PRIVATE_KEY_PEM);
        assert!(matches!(
            p.verify(&other, "aud-a", at(1200)),
            Err(TokenRefusal::WrongIssuer { .. })
        ));
        // A flipped signature byte.
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            p.verify(&forged, "aud-a", at(1200)),
            Err(TokenRefusal::BadSignature)
        );
        assert!(matches!(
            p.verify("not-a-jwt", "aud-a", at(1200)),
            Err(TokenRefusal::Malformed(_))
        ));
    }
}
