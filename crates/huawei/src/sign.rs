//! Huawei Cloud AK/SK request signing, `SDK-HMAC-SHA256`.
//!
//! This follows `huaweicloudsdkcore.signer.Signer.sign` (see cloud-apis.md B4)
//! and reproduces the SDK's vectors in `tests/data/huawei_sdk_hmac.json` byte
//! for byte:
//!
//! 1. `X-Sdk-Date: YYYYMMDDTHHMMSSZ` (UTC) and `Host` are request headers and
//!    are signed like every other header.
//! 2. Signed headers: every header name, lowercased and sorted, except names
//!    that contain `_`.
//! 3. Canonical request: method, canonical URI (always ending in `/`, in the
//!    signature only), sorted and encoded query, `name:trimmed value\n` per
//!    signed header, the signed header list, and the hex SHA-256 of the body
//!    (or the literal `UNSIGNED-PAYLOAD` when `X-Sdk-Content-Sha256` says so).
//! 4. String to sign: `SDK-HMAC-SHA256\n<X-Sdk-Date>\n<hex sha256(canonical request)>`.
//! 5. Signature: hex HMAC-SHA256 keyed by the SK itself (no key derivation).
//!
//! The same functions verify signatures in the fake MRS endpoint.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The algorithm name, first word of the `Authorization` header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The signing-time header.
pub const DATE_HEADER: &str = "X-Sdk-Date";
/// Header that replaces the body hash with [`UNSIGNED_PAYLOAD`].
pub const CONTENT_SHA256_HEADER: &str = "X-Sdk-Content-Sha256";
/// The literal used instead of the body hash for unsigned payloads.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `strftime` format of [`DATE_HEADER`].
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// One request, as far as the signature covers it.
#[derive(Clone, Copy, Debug)]
pub struct RequestParts<'a> {
    /// HTTP method; upper-cased for the signature.
    pub method: &'a str,
    /// The path as in the request line (may be percent-encoded; with or
    /// without a trailing `/`), without the query.
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    /// Every request header that the signature may cover, including `Host`
    /// and `X-Sdk-Date`. Names in any case.
    pub headers: &'a [(String, String)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Every intermediate value of one signature, for tests and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// `;`-joined lowercase header names.
    pub signed_headers: String,
    /// Lowercase hex.
    pub signature: String,
    /// The complete `Authorization` header value.
    pub authorization: String,
}

/// Why a request could not be signed or a signature could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the request has no {DATE_HEADER} header")]
    MissingDate,
    #[error("{DATE_HEADER} {0:?} is not in the form YYYYMMDDTHHMMSSZ")]
    BadDate(String),
    #[error("signed header {0:?} is not present in the request")]
    MissingSignedHeader(String),
    #[error("Authorization header is not an {ALGORITHM} header")]
    BadAuthorization,
}

/// Format a time as an `X-Sdk-Date` value (UTC, `YYYYMMDDTHHMMSSZ`).
pub fn format_sdk_date(at: Timestamp) -> String {
    at.strftime(DATE_FORMAT).to_string()
}

/// Parse an `X-Sdk-Date` value.
pub fn parse_sdk_date(value: &str) -> Result<Timestamp, SignError> {
    jiff::civil::DateTime::strptime(DATE_FORMAT, value)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| SignError::BadDate(value.to_string()))
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Percent-encode every byte except `A-Z a-z 0-9 - _ . ~` (upper-case hex),
/// as the SDK's `quote(s, safe='~')` does.
pub fn url_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes; malformed escapes are kept literally (as Python's
/// `unquote` does). `+` is not a space.
pub fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The canonical URI: decode the path, encode each segment, and end it in `/`.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode(path);
    let encoded: Vec<String> = decoded.split(|&b| b == b'/').map(url_encode).collect();
    let mut uri = encoded.join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The canonical query: `(key, value)` pairs sorted, both sides encoded, `k=v` joined by `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k.as_bytes()), url_encode(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("&")
}

/// The header names the SDK signs: all of them, lowercased and sorted,
/// except names containing `_`.
pub fn signed_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .filter(|(name, _)| !name.contains('_'))
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn header_value<'h>(headers: &'h [(String, String)], lower_name: &str) -> Option<&'h str> {
    // The SDK keeps the last value when a name repeats in different case.
    headers
        .iter()
        .rev()
        .find(|(name, _)| name.eq_ignore_ascii_case(lower_name))
        .map(|(_, value)| value.as_str())
}

/// The canonical request for `parts`, covering `signed_headers` (lowercase names).
pub fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
) -> Result<String, SignError> {
    let mut canonical_headers = String::new();
    for name in signed_headers {
        let value = header_value(parts.headers, name)
            .ok_or_else(|| SignError::MissingSignedHeader(name.clone()))?;
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value.trim());
        canonical_headers.push('\n');
    }
    let payload = match header_value(parts.headers, &CONTENT_SHA256_HEADER.to_ascii_lowercase()) {
        Some(v) if v.trim() == UNSIGNED_PAYLOAD => UNSIGNED_PAYLOAD.to_string(),
        _ => sha256_hex(parts.body),
    };
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.to_ascii_uppercase(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canonical_headers,
        signed_headers.join(";"),
        payload
    ))
}

/// Sign with the given header list (the verifier uses the list the client sent).
pub fn sign_with_headers(
    access_key: &str,
    secret_key: &str,
    parts: &RequestParts<'_>,
    signed_headers: &[String],
) -> Result<Signed, SignError> {
    let date = header_value(parts.headers, &DATE_HEADER.to_ascii_lowercase())
        .ok_or(SignError::MissingDate)?;
    let canonical_request = canonical_request(parts, signed_headers)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}",
        date.trim(),
        sha256_hex(canonical_request.as_bytes())
    );
    let signature = hmac_sha256_hex(secret_key.as_bytes(), string_to_sign.as_bytes());
    let signed_headers = signed_headers.join(";");
    let authorization = format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    Ok(Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    })
}

/// Sign a request the way the SDK does: every header in `parts.headers`
/// (which must include `Host` and `X-Sdk-Date`) except names containing `_`.
pub fn sign(
    access_key: &str,
    secret_key: &str,
    parts: &RequestParts<'_>,
) -> Result<Signed, SignError> {
    let names = signed_header_names(parts.headers);
    sign_with_headers(access_key, secret_key, parts, &names)
}

/// The fields of an `SDK-HMAC-SHA256` `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// Lowercase header names, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Result<Authorization, SignError> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SignError::BadAuthorization)?;
    let mut access_key = None;
    let mut signed_headers = None;
    let mut signature = None;
    for field in rest.split(',') {
        let (k, v) = field
            .trim()
            .split_once('=')
            .ok_or(SignError::BadAuthorization)?;
        match k {
            "Access" => access_key = Some(v.to_string()),
            "SignedHeaders" => {
                signed_headers = Some(v.split(';').map(str::to_string).collect::<Vec<_>>());
            }
            "Signature" => signature = Some(v.to_string()),
            _ => return Err(SignError::BadAuthorization),
        }
    }
    match (access_key, signed_headers, signature) {
        (Some(access_key), Some(signed_headers), Some(signature))
            if !access_key.is_empty() && !signature.is_empty() =>
        {
            Ok(Authorization {
                access_key,
                signed_headers,
                signature,
            })
        }
        _ => Err(SignError::BadAuthorization),
    }
}

/// Compare two signatures in constant time (for the verifier).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official SDK's vectors (tests/data/huawei_sdk_hmac.json), one test
    /// each, every intermediate value compared byte for byte.
    mod vectors {
        use super::*;
        use serde_json::Value;

        const VECTORS: &str = include_str!("../../../tests/data/huawei_sdk_hmac.json");

        fn vector(name: &str) -> Value {
            let all: Value = serde_json::from_str(VECTORS).expect("vector file parses");
            all["vectors"]
                .as_array()
                .expect("vectors array")
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("vector {name} present"))
                .clone()
        }

        fn scalar(v: &Value) -> String {
            match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                other => other.to_string(),
            }
        }

        fn check(name: &str) {
            let v = vector(name);
            let inputs = &v["inputs"];
            let expected = &v["expected"];
            let headers: Vec<(String, String)> = inputs["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect();
            let query: Vec<(String, String)> = inputs["query_params"]
                .as_array()
                .expect("query")
                .iter()
                .map(|p| (scalar(&p[0]), scalar(&p[1])))
                .collect();
            let body = hex::decode(inputs["body_hex"].as_str().expect("hex")).expect("body hex");
            assert_eq!(body, inputs["body_utf8"].as_str().expect("utf8").as_bytes());
            let path = inputs["path"].as_str().expect("path");
            let parts = RequestParts {
                method: inputs["method"].as_str().expect("method"),
                path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let signed = sign(
                inputs["ak"].as_str().expect("ak"),
                inputs["sk"].as_str().expect("sk"),
                &parts,
            )
            .expect("signs");
            assert_eq!(
                sha256_hex(&body),
                expected["hashed_payload"].as_str().unwrap()
            );
            assert_eq!(
                signed.canonical_request,
                expected["canonical_request"].as_str().unwrap()
            );
            assert_eq!(
                sha256_hex(signed.canonical_request.as_bytes()),
                expected["hashed_canonical_request"].as_str().unwrap()
            );
            assert_eq!(
                signed.string_to_sign,
                expected["string_to_sign"].as_str().unwrap()
            );
            assert_eq!(
                signed.signed_headers,
                expected["signed_headers"].as_str().unwrap()
            );
            assert_eq!(signed.signature, expected["signature"].as_str().unwrap());
            assert_eq!(
                signed.authorization,
                expected["authorization"].as_str().unwrap()
            );
            // The request line keeps the path as given (no trailing slash).
            let request_uri = if query.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", canonical_query(&query))
            };
            assert_eq!(request_uri, expected["request_uri"].as_str().unwrap());
            // And the verifier accepts what the signer produced.
            let auth = parse_authorization(&signed.authorization).expect("parses");
            let again = sign_with_headers(
                &auth.access_key,
                inputs["sk"].as_str().unwrap(),
                &parts,
                &auth.signed_headers,
            )
            .expect("re-signs");
            assert!(signatures_equal(&again.signature, &auth.signature));
        }

        #[test]
        fn mrs_get_cluster_details() {
            check("mrs_get_cluster_details");
        }

        #[test]
        fn mrs_put_cluster_scale_out() {
            check("mrs_put_cluster_scale_out");
        }

        #[test]
        fn huawei_doc_example_vpc_list() {
            check("huawei_doc_example_vpc_list");
        }

        #[test]
        fn every_vector_in_the_file_is_tested() {
            let all: Value = serde_json::from_str(VECTORS).unwrap();
            let names: Vec<&str> = all["vectors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            for name in &names {
                check(name);
            }
            assert_eq!(names.len(), 3);
        }
    }

    #[test]
    fn canonical_uri_appends_slash_and_encodes_segments() {
        assert_eq!(
            canonical_uri("/v1.1/p/cluster_infos/c"),
            "/v1.1/p/cluster_infos/c/"
        );
        assert_eq!(canonical_uri("/v1.1/p/"), "/v1.1/p/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        // Decoded before splitting, as the SDK does: an encoded `/` separates segments.
        assert_eq!(canonical_uri("/a b/%7Ex/%2Fy"), "/a%20b/~x//y/");
        assert_eq!(canonical_uri("/caf%C3%A9"), "/caf%C3%A9/");
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        let q = vec![
            ("pageSize".to_string(), "100".to_string()),
            ("currentPage".to_string(), "1".to_string()),
            ("a b".to_string(), "x/y*".to_string()),
        ];
        assert_eq!(
            canonical_query(&q),
            "a%20b=x%2Fy%2A&currentPage=1&pageSize=100"
        );
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn headers_with_underscore_are_not_signed() {
        let h = vec![
            ("X-Sdk-Date".to_string(), "20240115T083000Z".to_string()),
            ("Host".to_string(), "h".to_string()),
            ("x_custom".to_string(), "v".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        assert_eq!(
            signed_header_names(&h),
            vec!["content-type", "host", "x-sdk-date"]
        );
    }

    #[test]
    fn unsigned_payload_replaces_body_hash() {
        let h = vec![
            ("Host".to_string(), "h".to_string()),
            ("X-Sdk-Date".to_string(), "20240115T083000Z".to_string()),
            (
                CONTENT_SHA256_HEADER.to_string(),
                UNSIGNED_PAYLOAD.to_string(),
            ),
        ];
        let parts = RequestParts {
            method: "post",
            path: "/x",
            query: &[],
            headers: &h,
            body: b"binary",
        };
        let signed = sign("ak", "sk", &parts).unwrap();
        assert!(signed.canonical_request.starts_with("POST\n/x/\n\n"));
        assert!(signed.canonical_request.ends_with("\nUNSIGNED-PAYLOAD"));
    }

    #[test]
    fn dates_round_trip() {
        let t = Timestamp::from_second(1_705_363_199).unwrap();
        assert_eq!(format_sdk_date(t), "20240115T235959Z");
        assert_eq!(parse_sdk_date("20240115T235959Z").unwrap(), t);
        assert!(parse_sdk_date("2024-01-15T23:59:59Z").is_err());
        let h = vec![("Host".to_string(), "h".to_string())];
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: &[],
            headers: &h,
            body: b"",
        };
        assert_eq!(sign("a", "s", &parts).unwrap_err(), SignError::MissingDate);
    }

    #[test]
    fn authorization_parses_and_rejects_garbage() {
        let a = parse_authorization(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=ab12",
        )
        .unwrap();
        assert_eq!(a.access_key, "AK");
        assert_eq!(a.signed_headers, vec!["host", "x-sdk-date"]);
        assert_eq!(a.signature, "ab12");
        for bad in [
            "",
            "Bearer x",
            "SDK-HMAC-SHA256 Access=AK",
            "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=1",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=1, Extra=2",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb"), b"a/b");
        assert_eq!(percent_decode("a%2"), b"a%2");
        assert_eq!(percent_decode("%zz"), b"%zz");
        assert_eq!(percent_decode("a+b"), b"a+b");
        assert_eq!(percent_decode("%é"), "%é".as_bytes());
    }
}
