//! Tencent Cloud error codes and what each means for the reconciler
//! (cloud-apis.md A5).
//!
//! Codes arrive in HTTP 200 bodies as `Response.Error.Code`. A rule matches a
//! code exactly, or a family: `Prefix*` matches `Prefix` itself and every
//! `Prefix.<sub-code>`. The first matching rule wins, so specific codes come
//! before their families. A code no rule knows is Transient (retried with
//! backoff) and is always reported verbatim.
//!
//! Decisions beyond the issue's list, all **(inference)**:
//! - `UnauthorizedOperation*` is **Auth**: the CAM policy of the credentials
//!   lacks a permission, so the fix is on the credentials, not on the spec, and
//!   retrying quickly cannot help.
//! - `ResourceInUse*` other than `.InstanceInProcess` is also Busy.
//! - Plain `LimitExceeded` (the common "quota exceeded" code) is **Quota**;
//!   `LimitExceeded.RequestBacklogExceedsLimit` is Transient;
//!   `LimitExceeded.BootstrapActionsNumLimitExceeded` is Invalid (too many
//!   bootstrap scripts in the spec).
//! - `FailedOperation.DuplicateOrderNotAllowed` is Busy (an order for the
//!   cluster is already open); `.GetCvmConfigQuotaFailed` and
//!   `.GetCvmServerFailed` are Transient; `.NotSupportPod` is Invalid.
//! - `ResourceUnavailable*` is **Capacity**: retried slowly, surfaced, never
//!   hot; but `.ResourceSpecNotDefaultSpec` ("当前资源规格不存在默认规格",
//!   listed for ScaleOutCluster) is **Invalid**: the pool's instance type
//!   must change. It and `InvalidParameter.InvalidInstanceChargeType` /
//!   `.InvalidInstanceType` carry a [`hint`] saying what to change.
//! - `OperationDenied*` is **Invalid** (permanent until the spec changes);
//!   `FailedOperation.NotAuthenticated` is **Auth** (account not verified).
//! - `FailedOperation.GetCamRoleFailed`, `.GetCamServerFailed`,
//!   `.DBException`, `.CheckIfSupportPodStretch` and plain `FailedOperation`
//!   are Transient (a backend dependency failed).
//! - `InvalidAction`, `NoSuchVersion`, `UnsupportedRegion`, `InvalidRegion`
//!   are Invalid.

use clusterscale_core::cloud::{CloudError, ErrorClass};

/// `AuthFailure.SignatureExpire`: the request's timestamp is off by more than five minutes.
pub const SIGNATURE_EXPIRE: &str = "AuthFailure.SignatureExpire";
/// STS `AssumeRoleWithWebIdentity`, the action [`STS_RULES`] are for
/// (`crate::sts::ACTION`; defined here so that the error table depends on
/// nothing above it).
pub const STS_ACTION: &str = "AssumeRoleWithWebIdentity";
/// `InvalidParameter.WebIdentityTokenError` (STS): the web identity token was refused.
pub const WEB_IDENTITY_TOKEN_ERROR: &str = "InvalidParameter.WebIdentityTokenError";

/// Rules for the answers of STS `AssumeRoleWithWebIdentity`
/// ([`STS_ACTION`]), tried before [`RULES`]
/// (docs/credentials-design.md 1.7; the classes are our inference):
/// - `InvalidParameter.WebIdentityTokenError` is **Auth**: the token was
///   refused (issuer, audience, expiry, the provider's keys), not a
///   parameter we could fix in the request.
/// - `InvalidParameter.OverLimit` ("exceeds frequency limit") is
///   **Throttled**, despite its prefix.
/// - `ResourceNotFound.RoleNotFound` is **Invalid** (the role ARN is wrong),
///   not NotFound, which speaks of the cluster.
/// - `AuthFailure*` is **Invalid**: the exchange is not signed
///   (`Authorization: SKIP`), so it means our request is malformed.
///
/// The rest falls through to [`RULES`]: `UnauthorizedOperation` (the trust
/// policy refuses this identity) is Auth, `RequestLimitExceeded` Throttled,
/// `InternalError*` (`.GetRoleError`, `.SystemError`, `.UnknownError`)
/// Transient, `InvalidParameter.ParamError`, `.OverTimeError` and
/// `.AccountNotAvaliable` Invalid.
pub const STS_RULES: &[(&str, ErrorClass)] = &[
    (WEB_IDENTITY_TOKEN_ERROR, ErrorClass::Auth),
    ("InvalidParameter.OverLimit", ErrorClass::Throttled),
    ("ResourceNotFound.RoleNotFound", ErrorClass::Invalid),
    ("AuthFailure*", ErrorClass::Invalid),
];

/// Ordered classification rules; a trailing `*` marks a family.
pub const RULES: &[(&str, ErrorClass)] = &[
    ("ResourceInUse.InstanceInProcess", ErrorClass::Busy),
    ("ResourceInUse*", ErrorClass::Busy),
    ("RequestLimitExceeded*", ErrorClass::Throttled),
    ("InternalError*", ErrorClass::Transient),
    (
        "LimitExceeded.RequestBacklogExceedsLimit",
        ErrorClass::Transient,
    ),
    (
        "LimitExceeded.BootstrapActionsNumLimitExceeded",
        ErrorClass::Invalid,
    ),
    ("LimitExceeded*", ErrorClass::Quota),
    ("ResourcesSoldOut*", ErrorClass::Capacity),
    ("ResourceInsufficient*", ErrorClass::Capacity),
    ("AuthFailure*", ErrorClass::Auth),
    ("UnauthorizedOperation*", ErrorClass::Auth),
    ("InvalidParameter*", ErrorClass::Invalid),
    ("InvalidParameterValue*", ErrorClass::Invalid),
    ("MissingParameter*", ErrorClass::Invalid),
    ("UnknownParameter*", ErrorClass::Invalid),
    ("UnsupportedOperation*", ErrorClass::Invalid),
    ("InvalidAction", ErrorClass::Invalid),
    ("NoSuchVersion", ErrorClass::Invalid),
    ("UnsupportedRegion", ErrorClass::Invalid),
    ("InvalidRegion", ErrorClass::Invalid),
    ("ResourceNotFound*", ErrorClass::NotFound),
    (
        "FailedOperation.InsufficientAccountBalance",
        ErrorClass::Billing,
    ),
    ("FailedOperation.DuplicateOrderNotAllowed", ErrorClass::Busy),
    (
        "FailedOperation.GetCvmConfigQuotaFailed",
        ErrorClass::Transient,
    ),
    ("FailedOperation.GetCvmServerFailed", ErrorClass::Transient),
    ("FailedOperation.NotSupportPod", ErrorClass::Invalid),
    ("FailedOperation.NotAuthenticated", ErrorClass::Auth),
    ("FailedOperation.GetCamRoleFailed", ErrorClass::Transient),
    ("FailedOperation.GetCamServerFailed", ErrorClass::Transient),
    ("FailedOperation.DBException", ErrorClass::Transient),
    (
        "FailedOperation.CheckIfSupportPodStretch",
        ErrorClass::Transient,
    ),
    ("FailedOperation", ErrorClass::Transient),
    ("OperationDenied*", ErrorClass::Invalid),
    // The instance type asked for is not one the cluster allows: only the
    // spec can fix it (ScaleOutCluster).
    (
        "ResourceUnavailable.ResourceSpecNotDefaultSpec",
        ErrorClass::Invalid,
    ),
    ("ResourceUnavailable*", ErrorClass::Capacity),
    // The SDK's names for transport failures; ours come from `http::transport_error`.
    ("ClientNetworkError", ErrorClass::Transient),
    ("ServerNetworkError", ErrorClass::Transient),
];

/// `ResourceUnavailable.ResourceSpecNotDefaultSpec` (ScaleOutCluster): the
/// instance type is not one the cluster allows.
pub const SPEC_NOT_DEFAULT: &str = "ResourceUnavailable.ResourceSpecNotDefaultSpec";
/// `InvalidParameter.InvalidInstanceChargeType` (ScaleOutCluster).
pub const INVALID_CHARGE_TYPE: &str = "InvalidParameter.InvalidInstanceChargeType";
/// `InvalidParameter.InvalidInstanceType` (ScaleOutCluster).
pub const INVALID_INSTANCE_TYPE: &str = "InvalidParameter.InvalidInstanceType";

/// What to change, for codes whose text alone does not say it.
pub fn hint(code: &str) -> Option<&'static str> {
    match code {
        SIGNATURE_EXPIRE => Some(
            "hint: clock skew; X-TC-Timestamp must be within 5 minutes of Tencent's time: \
             check this machine's clock and NTP",
        ),
        WEB_IDENTITY_TOKEN_ERROR => Some(
            "hint: STS refused the projected ServiceAccount token: check its audience (the CAM \
             OIDC provider's client id), that it has not expired, and that the provider's issuer \
             and keys match the cluster's",
        ),
        SPEC_NOT_DEFAULT | INVALID_INSTANCE_TYPE => Some(
            "hint: the pool's instance type is not one this cluster allows for Task nodes: \
             set taskPools[].tencent.instanceType to a spec the cluster allows, or leave it unset \
             to use the cluster's default spec",
        ),
        INVALID_CHARGE_TYPE => Some(
            "hint: the pool's charge type is refused: use POSTPAID_BY_HOUR or SPOTPAID in the pool \
             (SPOTPAID is for Task nodes only)",
        ),
        _ => None,
    }
}

/// How long to wait after a code this table does not know: such a code is
/// retried (as Transient) but slowly, and reported verbatim.
pub const UNKNOWN_CODE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(300);

/// The class of a known Tencent error code.
pub fn lookup(code: &str) -> Option<ErrorClass> {
    RULES
        .iter()
        .find(|(pattern, _)| matches(pattern, code))
        .map(|(_, class)| *class)
}

/// The class of a Tencent error code. Unknown codes are Transient.
pub fn classify(code: &str) -> ErrorClass {
    lookup(code).unwrap_or(ErrorClass::Transient)
}

/// The class of a code answered to `action`: [`STS_RULES`] first for the
/// STS exchange, then [`RULES`].
pub fn lookup_for(action: &str, code: &str) -> Option<ErrorClass> {
    let sts = if action == STS_ACTION {
        STS_RULES
            .iter()
            .find(|(pattern, _)| matches(pattern, code))
            .map(|(_, class)| *class)
    } else {
        None
    };
    sts.or_else(|| lookup(code))
}

/// [`lookup_for`], unknown codes Transient.
pub fn classify_for(action: &str, code: &str) -> ErrorClass {
    lookup_for(action, code).unwrap_or(ErrorClass::Transient)
}

fn matches(pattern: &str, code: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(family) => {
            code == family
                || code
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
        None => code == pattern,
    }
}

/// A `Response.Error` as a [`CloudError`]: code verbatim, message verbatim plus
/// a hint where the code alone would mislead (clock skew).
pub fn cloud_error(
    action: &str,
    code: &str,
    message: &str,
    request_id: Option<String>,
) -> CloudError {
    let class = classify_for(action, code);
    let message = match hint(code) {
        Some(h) => format!("{message} ({h})"),
        None => message.to_string(),
    };
    let error = CloudError::new(class, action, code, message).with_request_id(request_id);
    if lookup_for(action, code).is_none() {
        error.with_retry_after(UNKNOWN_CODE_BACKOFF)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn unknown_code_is_transient_with_slow_backoff_and_verbatim() {
        let e = cloud_error(
            "ScaleOutInstance",
            "FailedOperation.SomethingNew",
            "new text",
            Some("rid".into()),
        );
        assert_eq!(e.class, Transient);
        assert_eq!(e.retry_after(), UNKNOWN_CODE_BACKOFF);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("FailedOperation.SomethingNew", "new text")
        );
        let known = cloud_error("ScaleOutInstance", "InternalError.CvmError", "x", None);
        assert_eq!(
            known.retry_after(),
            Transient.retry_after(),
            "known codes keep their class's backoff"
        );
    }

    /// One named row per code listed in cloud-apis.md A5 (plus the
    /// inference rows documented above). A failure names the code.
    #[test]
    fn every_documented_code_has_its_class() {
        let table: &[(&str, ErrorClass)] = &[
            // Common authentication errors.
            ("AuthFailure.SignatureExpire", Auth),
            ("AuthFailure.SecretIdNotFound", Auth),
            ("AuthFailure.SignatureFailure", Auth),
            ("AuthFailure.TokenFailure", Auth),
            ("AuthFailure.InvalidSecretId", Auth),
            ("AuthFailure.InvalidAuthorization", Auth),
            ("AuthFailure.MFAFailure", Auth),
            ("AuthFailure.UnauthorizedOperation", Auth),
            // Other common errors.
            ("RequestLimitExceeded", Throttled),
            ("RequestLimitExceeded.UinLimitExceeded", Throttled),
            (
                "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
                Throttled,
            ),
            ("InternalError", Transient),
            ("LimitExceeded", Quota),
            ("ResourceInUse", Busy),
            ("ResourceNotFound", NotFound),
            ("InvalidParameter", Invalid),
            ("InvalidParameterValue", Invalid),
            ("MissingParameter", Invalid),
            ("UnknownParameter", Invalid),
            ("UnauthorizedOperation", Auth),
            ("UnsupportedOperation", Invalid),
            ("InvalidAction", Invalid),
            ("NoSuchVersion", Invalid),
            // The SDK's transport errors.
            ("ClientNetworkError", Transient),
            ("ServerNetworkError", Transient),
            // Ours: transport failures (`http::transport_error`) and unreadable bodies.
            ("Timeout", Transient),
            ("ConnectError", Transient),
            ("NetworkError", Transient),
            ("MalformedResponse", Transient),
            // ScaleOutInstance.
            ("FailedOperation.DuplicateOrderNotAllowed", Busy),
            ("FailedOperation.GetCvmConfigQuotaFailed", Transient),
            ("FailedOperation.GetCvmServerFailed", Transient),
            ("FailedOperation.NotSupportPod", Invalid),
            ("InternalError.CvmError", Transient),
            ("InternalError.TradeCgwError", Transient),
            ("InternalError.WoodServerError", Transient),
            ("InvalidParameter.InvalidClientToken", Invalid),
            ("InvalidParameter.InvalidCoreCount", Invalid),
            ("InvalidParameter.InvalidCount", Invalid),
            ("InvalidParameter.InvalidCountNum", Invalid),
            ("InvalidParameter.InvalidTaskCount", Invalid),
            ("InvalidParameter.InvalidTimeSpan", Invalid),
            ("InvalidParameter.InvalidTimeUnit", Invalid),
            ("InvalidParameter.InvalidPaymode", Invalid),
            ("InvalidParameter.InvalidResourceSpec", Invalid),
            ("ResourceInUse.InstanceInProcess", Busy),
            ("ResourceInsufficient.DiskInsufficient", Capacity),
            ("ResourceInsufficient.InstanceInsufficient", Capacity),
            ("ResourceNotFound.ClusterNotFound", NotFound),
            ("ResourceNotFound.InstanceNotFound", NotFound),
            ("ResourcesSoldOut", Capacity),
            ("ResourcesSoldOut.CvmSoldOut", Capacity),
            ("ResourcesSoldOut.CbsSoldOut", Capacity),
            // TerminateTasks.
            ("InvalidParameter.InvalidResourceIds", Invalid),
            ("InvalidParameter.InvalidJobFlow", Invalid),
            ("UnsupportedOperation.ServiceNotSupport", Invalid),
            // TerminateClusterNodes.
            ("InvalidParameter.InvalidNodeFlag", Invalid),
            ("ResourceNotFound.CvmInstanceNotFound", NotFound),
            // Examples from the full EMR list.
            ("FailedOperation.InsufficientAccountBalance", Billing),
            ("LimitExceeded.RequestBacklogExceedsLimit", Transient),
            ("LimitExceeded.BootstrapActionsNumLimitExceeded", Invalid),
            // Unknown codes: Transient, reported verbatim.
            ("SomethingNew.NeverSeenBefore", Transient),
            // errors.go codes that matched no row before.
            ("FailedOperation", Transient),
            ("FailedOperation.NotAuthenticated", Auth),
            ("FailedOperation.GetCamRoleFailed", Transient),
            ("FailedOperation.GetCamServerFailed", Transient),
            ("FailedOperation.DBException", Transient),
            ("FailedOperation.CheckIfSupportPodStretch", Transient),
            ("OperationDenied", Invalid),
            ("ResourceUnavailable", Capacity),
            ("ResourceUnavailable.ResourceSpecNotDefaultSpec", Invalid),
            ("ResourceUnavailable.SomethingElse", Capacity),
            // ScaleOutCluster.
            ("InvalidParameter.InvalidInstanceChargeType", Invalid),
            ("InvalidParameter.InvalidInstanceType", Invalid),
            ("InvalidParameter.InvalidSoftDeployInfo", Invalid),
        ];
        let mut wrong = Vec::new();
        for (code, expected) in table {
            let got = classify(code);
            if got != *expected {
                wrong.push(format!("{code}: expected {expected}, got {got}"));
            }
        }
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    /// docs/credentials-design.md 1.7: the codes of AssumeRoleWithWebIdentity.
    #[test]
    fn sts_codes_have_their_class_for_the_exchange_only() {
        let sts = STS_ACTION;
        let table: &[(&str, ErrorClass)] = &[
            ("InvalidParameter.WebIdentityTokenError", Auth),
            ("UnauthorizedOperation", Auth),
            ("InvalidParameter.ParamError", Invalid),
            ("InvalidParameter.OverLimit", Throttled),
            ("RequestLimitExceeded", Throttled),
            ("InternalError.GetRoleError", Transient),
            ("InternalError.SystemError", Transient),
            ("InternalError.UnknownError", Transient),
            ("ResourceNotFound.RoleNotFound", Invalid),
            ("InvalidParameter.OverTimeError", Invalid),
            ("InvalidParameter.AccountNotAvaliable", Invalid),
            ("AuthFailure.SignatureFailure", Invalid),
            ("InvalidAction", Invalid),
            ("UnsupportedRegion", Invalid),
            ("MissingParameter", Invalid),
        ];
        for (code, expected) in table {
            assert_eq!(classify_for(sts, code), *expected, "{code}");
            assert!(lookup_for(sts, code).is_some(), "{code} is known");
        }
        // EMR's answers keep EMR's table.
        assert_eq!(
            classify_for("DescribeInstances", "AuthFailure.TokenFailure"),
            Auth
        );
        assert_eq!(
            classify_for("DescribeInstances", "InvalidParameter.OverLimit"),
            Invalid
        );
        let e = cloud_error(
            sts,
            WEB_IDENTITY_TOKEN_ERROR,
            "WebIdentityToken error. | id token error | Expired token",
            Some("r-sts".into()),
        );
        assert_eq!(
            (e.class, e.action.as_str(), e.request_id.as_deref()),
            (Auth, sts, Some("r-sts"))
        );
        assert!(
            e.message.starts_with("WebIdentityToken error.") && e.message.contains("audience"),
            "{}",
            e.message
        );
    }

    #[test]
    fn families_match_whole_segments_only() {
        assert_eq!(
            classify("InternalErrorX"),
            Transient,
            "unknown, not the InternalError family"
        );
        assert_eq!(classify("AuthFailureish"), Transient);
        assert_eq!(classify("ResourceInUseLike"), Transient);
        assert_eq!(classify("ResourcesSoldOutNow"), Transient);
    }

    #[test]
    fn signature_expire_carries_a_clock_skew_hint_and_codes_stay_verbatim() {
        let e = cloud_error(
            "DescribeInstances",
            SIGNATURE_EXPIRE,
            "Signature expired.",
            Some("req-1".into()),
        );
        assert_eq!((e.class, e.code.as_str()), (Auth, SIGNATURE_EXPIRE));
        assert!(
            e.message.starts_with("Signature expired.") && e.message.contains("clock"),
            "{}",
            e.message
        );
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        let e = cloud_error("ScaleOutInstance", "Brand.NewCode", "as sent", None);
        assert_eq!(
            (e.class, e.code.as_str(), e.message.as_str()),
            (Transient, "Brand.NewCode", "as sent")
        );
    }

    #[test]
    fn pool_refusals_are_permanent_and_say_what_to_change() {
        let e = cloud_error(
            "ScaleOutCluster",
            SPEC_NOT_DEFAULT,
            "当前资源规格不存在默认规格",
            Some("r".into()),
        );
        assert_eq!(e.class, Invalid);
        assert!(!e.class.heals_by_retry());
        assert!(
            e.message.starts_with("当前资源规格不存在默认规格")
                && e.message.contains("taskPools[].tencent.instanceType"),
            "{}",
            e.message
        );
        let e = cloud_error(
            "ScaleOutCluster",
            INVALID_CHARGE_TYPE,
            "bad charge type",
            None,
        );
        assert_eq!(e.class, Invalid);
        assert!(
            e.message.contains("POSTPAID_BY_HOUR or SPOTPAID"),
            "{}",
            e.message
        );
        let e = cloud_error("ScaleOutCluster", INVALID_INSTANCE_TYPE, "x", None);
        assert!(e.message.contains("instanceType"), "{}", e.message);
        assert_eq!(hint("InternalError"), None);
    }
}
