//! Credentials: key/value pairs from a Kubernetes Secret or the environment.
//!
//! Values never appear in `Debug` or `Display` output; only key names do.

use std::collections::BTreeMap;
use std::fmt;

/// A secret string. `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value, for signing. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Named credential values (Secret keys such as `secretId`, `secretKey`, `token`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    values: BTreeMap<String, SecretString>,
    /// Where they came from, e.g. `secret data/tencent-credentials` or `environment`.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("source", &self.source)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            values: BTreeMap::new(),
            source: source.into(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        // Secrets written by hand often end in a newline; it is never part of a key.
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        if !value.is_empty() {
            self.values.insert(key.to_string(), SecretString(value));
        }
    }

    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.values.get(key)
    }

    /// The value of `key`, or an error naming the missing key and the source.
    pub fn require(&self, key: &str) -> Result<&SecretString, MissingCredential> {
        self.get(key).ok_or_else(|| MissingCredential {
            key: key.to_string(),
            origin: self.source.clone(),
        })
    }

    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Read `(key, ENV_VAR)` pairs from the environment.
    pub fn from_env(pairs: &[(&str, &str)]) -> Self {
        let mut c = Self::new("environment");
        for (key, var) in pairs {
            if let Ok(v) = std::env::var(var) {
                c.insert(key, v);
            }
        }
        c
    }
}

/// A required credential key is absent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("credential {key:?} missing from {origin}")]
pub struct MissingCredential {
    pub key: String,
    pub origin: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let c = Credentials::new("secret ns/creds").with("secretKey", "very-secret-value\n");
        let shown = format!("{c:?} {:?}", c.get("secretKey"));
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("secretKey"));
        assert_eq!(c.get("secretKey").unwrap().expose(), "very-secret-value");
        let e = c.require("secretId").unwrap_err().to_string();
        assert!(e.contains("secretId") && e.contains("ns/creds"), "{e}");
    }
}
