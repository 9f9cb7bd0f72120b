//! Typed error classes: the class of a failed cloud call ([`ErrorClass`]),
//! the reasons a pass stops before it reaches the cloud ([`Precondition`]),
//! and what `status.lastError.class` records ([`FailureClass`]). Each
//! serialises to the same string it always had, so the status keeps its shape.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a cloud call failed; decides what happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Rate limited: back off briefly.
    Throttled,
    /// The cluster is locked by another operation: requeue until idle.
    Busy,
    /// Network error, timeout, 5xx, internal error: retry with backoff.
    /// (Whether it took effect is `cloud::CloudError::effect`, not the class.)
    Transient,
    /// Sold out / insufficient resources: retry slowly, surface.
    Capacity,
    /// Account quota exceeded: surface, retry slowly.
    Quota,
    /// Bad credentials or signature: never retried quickly.
    Auth,
    /// The request was invalid: permanent until the spec changes.
    Invalid,
    /// The cluster does not exist.
    NotFound,
    /// Unpaid order or insufficient balance.
    Billing,
}

impl ErrorClass {
    /// Whether retrying alone is expected to get past it (throttled, busy,
    /// transient, sold out): such an error degrades a resource only when it
    /// persists; the others need somebody's help at once.
    pub fn heals_by_retry(self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled | ErrorClass::Busy | ErrorClass::Transient | ErrorClass::Capacity
        )
    }

    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Throttled,
        ErrorClass::Busy,
        ErrorClass::Transient,
        ErrorClass::Capacity,
        ErrorClass::Quota,
        ErrorClass::Auth,
        ErrorClass::Invalid,
        ErrorClass::NotFound,
        ErrorClass::Billing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "Throttled",
            ErrorClass::Busy => "Busy",
            ErrorClass::Transient => "Transient",
            ErrorClass::Capacity => "Capacity",
            ErrorClass::Quota => "Quota",
            ErrorClass::Auth => "Auth",
            ErrorClass::Invalid => "Invalid",
            ErrorClass::NotFound => "NotFound",
            ErrorClass::Billing => "Billing",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a pass stopped before it reached the cloud. Also the `code`, the
/// Event reason and the Degraded reason of such a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// The spec breaks a rule, or the client cannot be built from it.
    InvalidSpec,
    /// The Secret (or a key of it) is missing.
    CredentialsMissing,
    /// An older ScaledCluster manages the same remote cluster.
    DuplicateTarget,
    /// The CloudAccount named by `accountRef` cannot give keys: it does not
    /// exist, it is the other cloud's, its Secret is unreadable, or its
    /// workload identity cannot be exchanged (the message has the cloud's
    /// code and request id).
    AccountNotReady,
}

impl Precondition {
    pub const ALL: [Precondition; 4] = [
        Precondition::InvalidSpec,
        Precondition::CredentialsMissing,
        Precondition::DuplicateTarget,
        Precondition::AccountNotReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Precondition::InvalidSpec => "InvalidSpec",
            Precondition::CredentialsMissing => "CredentialsMissing",
            Precondition::DuplicateTarget => "DuplicateTarget",
            Precondition::AccountNotReady => "AccountNotReady",
        }
    }

    /// True when only a change of the spec can clear it; the others are
    /// re-checked on the resync (a Secret may appear, a claimant go away).
    pub fn waits_for_spec_change(self) -> bool {
        match self {
            Precondition::InvalidSpec => true,
            Precondition::CredentialsMissing
            | Precondition::DuplicateTarget
            | Precondition::AccountNotReady => false,
        }
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of `status.lastError`: a cloud call's, a precondition's, or
/// an accepted operation that failed. Serialised as a plain string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    Cloud(ErrorClass),
    Precondition(Precondition),
    /// An accepted operation ended failed (the cloud said so, or the counts).
    OperationFailed,
    /// A class this version does not know (written by another version or by
    /// hand), kept verbatim so that such a status still reads.
    Unrecognized(String),
}

const OPERATION_FAILED: &str = "OperationFailed";

impl FailureClass {
    pub fn as_str(&self) -> &str {
        match self {
            FailureClass::Cloud(c) => c.as_str(),
            FailureClass::Precondition(p) => p.as_str(),
            FailureClass::OperationFailed => OPERATION_FAILED,
            FailureClass::Unrecognized(s) => s,
        }
    }

    /// The cloud error class, when it is one.
    pub fn cloud(&self) -> Option<ErrorClass> {
        match self {
            FailureClass::Cloud(c) => Some(*c),
            _ => None,
        }
    }
}

impl From<ErrorClass> for FailureClass {
    fn from(c: ErrorClass) -> Self {
        FailureClass::Cloud(c)
    }
}

impl From<Precondition> for FailureClass {
    fn from(p: Precondition) -> Self {
        FailureClass::Precondition(p)
    }
}

impl FromStr for FailureClass {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(c) = ErrorClass::ALL.into_iter().find(|c| c.as_str() == s) {
            return Ok(FailureClass::Cloud(c));
        }
        if let Some(p) = Precondition::ALL.into_iter().find(|p| p.as_str() == s) {
            return Ok(FailureClass::Precondition(p));
        }
        if s == OPERATION_FAILED {
            return Ok(FailureClass::OperationFailed);
        }
        Ok(FailureClass::Unrecognized(s.to_string()))
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FailureClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let Ok(class) = s.parse();
        Ok(class)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_round_trips_through_its_string() {
        let all = ErrorClass::ALL
            .into_iter()
            .map(FailureClass::from)
            .chain(Precondition::ALL.into_iter().map(FailureClass::from))
            .chain([FailureClass::OperationFailed]);
        for class in all {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.as_str()));
            assert_eq!(serde_json::from_str::<FailureClass>(&json).unwrap(), class);
        }
    }

    #[test]
    fn an_unknown_class_reads_and_writes_back_verbatim() {
        let class: FailureClass = serde_json::from_str("\"SomethingNew\"").unwrap();
        assert_eq!(class, FailureClass::Unrecognized("SomethingNew".into()));
        assert_eq!(serde_json::to_string(&class).unwrap(), "\"SomethingNew\"");
    }

    #[test]
    fn only_an_invalid_spec_waits_for_a_spec_change() {
        let waiting: Vec<_> = Precondition::ALL
            .into_iter()
            .filter(|p| p.waits_for_spec_change())
            .collect();
        assert_eq!(waiting, [Precondition::InvalidSpec]);
    }
}
