//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0
//! (cloud-apis.md A6; the official SDKs' `_get_tc3_signature` / `sign_tc3`).
//!
//! The client signs `content-type;host` exactly as the SDKs do, over the exact
//! body bytes it sends. The fake endpoint verifies with the same code
//! ([`verify`]), for whatever header list the caller declared in
//! `SignedHeaders`.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name that starts the Authorization header and the string to sign.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The headers the client signs, as the official SDKs do.
pub const SIGNED_HEADERS: &str = "content-type;host";
/// The last element of the credential scope.
const TERMINATOR: &str = "tc3_request";

type HmacSha256 = Hmac<Sha256>;

/// Everything a signature depends on. The secret key is never printed.
#[derive(Clone, Copy)]
pub struct SigningInput<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    /// `emr` (the first label of the API host).
    pub service: &'a str,
    /// The `Host` header, exactly as sent.
    pub host: &'a str,
    /// The `Content-Type` header, exactly as sent.
    pub content_type: &'a str,
    /// `X-TC-Timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The exact body bytes sent.
    pub payload: &'a [u8],
}

impl fmt::Debug for SigningInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningInput")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("service", &self.service)
            .field("host", &self.host)
            .field("content_type", &self.content_type)
            .field("timestamp", &self.timestamp)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// A computed signature with every intermediate value (the vectors check each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// UTC date of the timestamp, `YYYY-MM-DD`.
    pub date: String,
    pub hashed_payload: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub credential_scope: String,
    pub string_to_sign: String,
    /// Lower-case hex HMAC.
    pub signature: String,
    /// The complete `Authorization` header value.
    pub authorization: String,
}

/// Signing failed before any hashing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("timestamp {0} is outside the representable range")]
    Timestamp(i64),
}

/// Sign a POST to `/` with the SDKs' header set `content-type;host`.
pub fn sign(input: &SigningInput<'_>) -> Result<Signature, SignError> {
    let date = utc_date(input.timestamp)?;
    let headers = [("content-type", input.content_type), ("host", input.host)];
    let hashed_payload = sha256_hex(input.payload);
    let canonical_request =
        canonical_request("POST", "/", "", &headers, SIGNED_HEADERS, &hashed_payload);
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let credential_scope = format!("{date}/{}/{TERMINATOR}", input.service);
    let string_to_sign = string_to_sign(
        input.timestamp,
        &credential_scope,
        &hashed_canonical_request,
    );
    let mac = signing_mac(input.secret_key, &date, input.service, &string_to_sign);
    let signature = hex::encode(mac.finalize().into_bytes());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}",
        input.secret_id
    );
    Ok(Signature {
        date,
        hashed_payload,
        canonical_request,
        hashed_canonical_request,
        credential_scope,
        string_to_sign,
        signature,
        authorization,
    })
}

/// The parts of a received `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    /// Date from the credential scope.
    pub date: String,
    /// Service from the credential scope.
    pub service: String,
    /// Lower-case header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Hex signature as received.
    pub signature: String,
}

/// Parse `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=HEX`.
/// Returns `None` for anything else.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let secret_id = scope.next().filter(|s| !s.is_empty())?;
    let date = scope.next()?;
    let service = scope.next()?;
    if scope.next()? != TERMINATOR || scope.next().is_some() {
        return None;
    }
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return None;
    }
    Some(Authorization {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature?.to_string(),
    })
}

/// Why a received signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("timestamp {0} is outside the representable range")]
    Timestamp(i64),
    #[error(
        "credential scope date {scope} does not match the UTC date {expected} of X-TC-Timestamp"
    )]
    DateMismatch { scope: String, expected: String },
    #[error("signed header {0:?} is missing from the request")]
    MissingSignedHeader(String),
    #[error("SignedHeaders must include content-type and host")]
    RequiredHeadersNotSigned,
    #[error("the signature does not match")]
    Mismatch,
}

/// Recompute the signature of a received POST to `/` and compare it in
/// constant time. `header` returns a request header's value by lower-case name.
/// Header values are trimmed and lower-cased, as the Signature v3 document
/// specifies (the SDKs' values are lower-case already).
pub fn verify<'h>(
    auth: &Authorization,
    secret_key: &str,
    timestamp: i64,
    header: impl Fn(&str) -> Option<&'h str>,
    payload: &[u8],
) -> Result<(), VerifyError> {
    let expected_date = utc_date(timestamp).map_err(|_| VerifyError::Timestamp(timestamp))?;
    if auth.date != expected_date {
        return Err(VerifyError::DateMismatch {
            scope: auth.date.clone(),
            expected: expected_date,
        });
    }
    if !(auth.signed_headers.iter().any(|h| h == "content-type")
        && auth.signed_headers.iter().any(|h| h == "host"))
    {
        return Err(VerifyError::RequiredHeadersNotSigned);
    }
    let mut values = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = header(name).ok_or_else(|| VerifyError::MissingSignedHeader(name.clone()))?;
        values.push(value.trim().to_lowercase());
    }
    let headers: Vec<(&str, &str)> = auth
        .signed_headers
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(String::as_str))
        .collect();
    let signed_headers = auth.signed_headers.join(";");
    let canonical = canonical_request(
        "POST",
        "/",
        "",
        &headers,
        &signed_headers,
        &sha256_hex(payload),
    );
    let credential_scope = format!("{}/{}/{TERMINATOR}", auth.date, auth.service);
    let to_sign = string_to_sign(
        timestamp,
        &credential_scope,
        &sha256_hex(canonical.as_bytes()),
    );
    let received = hex::decode(&auth.signature).map_err(|_| VerifyError::Mismatch)?;
    signing_mac(secret_key, &auth.date, &auth.service, &to_sign)
        .verify_slice(&received)
        .map_err(|_| VerifyError::Mismatch)
}

/// `YYYY-MM-DD` of a Unix timestamp in UTC.
pub fn utc_date(timestamp: i64) -> Result<String, SignError> {
    let ts =
        jiff::Timestamp::from_second(timestamp).map_err(|_| SignError::Timestamp(timestamp))?;
    Ok(ts.strftime("%Y-%m-%d").to_string())
}

fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(&str, &str)],
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}")
}

fn string_to_sign(
    timestamp: i64,
    credential_scope: &str,
    hashed_canonical_request: &str,
) -> String {
    format!("{ALGORITHM}\n{timestamp}\n{credential_scope}\n{hashed_canonical_request}")
}

/// The final HMAC, keyed by the derived signing key and fed the string to sign.
fn signing_mac(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> HmacSha256 {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, TERMINATOR.as_bytes());
    let mut mac = HmacSha256::new_from_slice(&k_signing).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct File {
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        inputs: Inputs,
        sdk_headers_sent: std::collections::BTreeMap<String, String>,
        expected: Expected,
    }

    #[derive(serde::Deserialize)]
    struct Inputs {
        secret_id: String,
        secret_key: String,
        service: String,
        host: String,
        timestamp: i64,
        content_type: String,
        payload_utf8: String,
        payload_hex: String,
    }

    #[derive(serde::Deserialize)]
    struct Expected {
        date: String,
        hashed_payload: String,
        canonical_request: String,
        hashed_canonical_request: String,
        credential_scope: String,
        string_to_sign: String,
        signed_headers: String,
        authorization: String,
        signature: String,
    }

    fn vectors() -> Vec<Vector> {
        let file: File = serde_json::from_str(include_str!("../../../tests/data/tencent_tc3.json"))
            .expect("vector file parses");
        assert!(!file.vectors.is_empty());
        file.vectors
    }

    /// Every vector from the official SDK, byte for byte, at every stage.
    #[test]
    fn sdk_vectors_reproduce_byte_for_byte() {
        for v in vectors() {
            let payload = hex::decode(&v.inputs.payload_hex).expect("payload hex");
            assert_eq!(
                payload,
                v.inputs.payload_utf8.as_bytes(),
                "{}: payload_hex == payload_utf8",
                v.name
            );
            let s = sign(&SigningInput {
                secret_id: &v.inputs.secret_id,
                secret_key: &v.inputs.secret_key,
                service: &v.inputs.service,
                host: &v.inputs.host,
                content_type: &v.inputs.content_type,
                timestamp: v.inputs.timestamp,
                payload: &payload,
            })
            .expect("signs");
            let n = &v.name;
            assert_eq!(s.date, v.expected.date, "{n}: date");
            assert_eq!(
                s.hashed_payload, v.expected.hashed_payload,
                "{n}: hashed payload"
            );
            assert_eq!(
                s.canonical_request, v.expected.canonical_request,
                "{n}: canonical request"
            );
            assert_eq!(
                s.hashed_canonical_request, v.expected.hashed_canonical_request,
                "{n}: hashed canonical request"
            );
            assert_eq!(
                s.credential_scope, v.expected.credential_scope,
                "{n}: credential scope"
            );
            assert_eq!(
                s.string_to_sign, v.expected.string_to_sign,
                "{n}: string to sign"
            );
            assert_eq!(
                SIGNED_HEADERS, v.expected.signed_headers,
                "{n}: signed headers"
            );
            assert_eq!(s.signature, v.expected.signature, "{n}: signature");
            assert_eq!(
                s.authorization, v.expected.authorization,
                "{n}: authorization"
            );
            assert_eq!(
                Some(&s.authorization),
                v.sdk_headers_sent.get("Authorization"),
                "{n}: header sent"
            );
        }
    }

    /// The verifier accepts every vector as the SDK sent it, and rejects any change.
    #[test]
    fn verify_accepts_sdk_requests_and_rejects_tampering() {
        for v in vectors() {
            let payload = hex::decode(&v.inputs.payload_hex).expect("payload hex");
            let sent = &v.sdk_headers_sent;
            let auth = parse_authorization(&sent["Authorization"]).expect("parses");
            assert_eq!(auth.secret_id, v.inputs.secret_id);
            let header = |name: &str| match name {
                "content-type" => sent.get("Content-Type").map(String::as_str),
                "host" => sent.get("Host").map(String::as_str),
                _ => None,
            };
            let key = &v.inputs.secret_key;
            let ts = v.inputs.timestamp;
            assert_eq!(
                verify(&auth, key, ts, header, &payload),
                Ok(()),
                "{}",
                v.name
            );
            let mut tampered = payload.clone();
            tampered.push(b' ');
            assert_eq!(
                verify(&auth, key, ts, header, &tampered),
                Err(VerifyError::Mismatch)
            );
            assert_eq!(
                verify(&auth, "wrong", ts, header, &payload),
                Err(VerifyError::Mismatch)
            );
            assert_eq!(
                verify(&auth, key, ts + 1, header, &payload),
                Err(VerifyError::Mismatch)
            );
            let other_host = |name: &str| {
                if name == "host" {
                    Some("evil.example.com")
                } else {
                    header(name)
                }
            };
            assert_eq!(
                verify(&auth, key, ts, other_host, &payload),
                Err(VerifyError::Mismatch)
            );
            assert!(matches!(
                verify(&auth, key, ts + 86_400, header, &payload),
                Err(VerifyError::DateMismatch { .. })
            ));
        }
    }

    #[test]
    fn date_is_utc_at_day_boundaries() {
        assert_eq!(utc_date(1_700_086_399).unwrap(), "2023-11-15");
        assert_eq!(utc_date(1_700_006_400).unwrap(), "2023-11-15");
        assert_eq!(utc_date(1_700_006_399).unwrap(), "2023-11-14");
        assert!(utc_date(i64::MAX).is_err());
    }

    #[test]
    fn parse_rejects_malformed_headers() {
        for bad in [
            "",
            "TC3-HMAC-SHA256",
            "HMAC-SHA1 Credential=a/2023-11-14/emr/tc3_request, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=a/2023-11-14/emr/other, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=/2023-11-14/emr/tc3_request, SignedHeaders=host, Signature=00",
            "TC3-HMAC-SHA256 Credential=a/2023-11-14/emr/tc3_request, SignedHeaders=host",
            "TC3-HMAC-SHA256 Credential=a/2023-11-14/emr/tc3_request, SignedHeaders=;, Signature=00",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let input = SigningInput {
            secret_id: "AKIDexample",
            secret_key: "very-secret-key",
            service: "emr",
            host: "emr.tencentcloudapi.com",
            content_type: "application/json",
            timestamp: 1,
            payload: b"{}",
        };
        let shown = format!("{input:?}");
        assert!(
            !shown.contains("very-secret-key") && shown.contains("AKIDexample"),
            "{shown}"
        );
    }
}
