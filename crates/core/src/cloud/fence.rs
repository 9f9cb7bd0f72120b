//! The fence in front of every cloud write.
//!
//! A leader can be frozen (a paused VM or container, a stopped process, CPU
//! starvation) after its write-ahead record is stored and before its cloud
//! call. If it stays frozen past its lease, another replica takes over and
//! may settle that operation; when the frozen one wakes, its reconcile would
//! go straight on to the call. The fence decides, in the task that makes the
//! call and immediately before each request of it leaves this process,
//! whether this process may still write.
//!
//! The engine checks the fence before it calls `Cloud::scale_out` /
//! `scale_in`, and runs the call inside [`scope`]; the clients call [`check`]
//! immediately before sending each request, so that waits inside a scale
//! call (a rate limiter, a token fetch, MRS's pre-check read) are covered
//! too. Outside a scope the fence is open (the CLI, tests).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{CloudError, Effect, ErrorClass};

/// Whether this process may still write to the cloud. The operator's is the
/// leader lease by the monotonic clock; a process that is the only writer
/// uses [`AlwaysOpen`].
pub trait Fence: Send + Sync + fmt::Debug {
    fn is_open(&self) -> bool;
}

/// The fence of a process that is the only writer (the CLI, or
/// `--leader-elect=false`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysOpen;

impl Fence for AlwaysOpen {
    fn is_open(&self) -> bool {
        true
    }
}

/// The code of the error [`check`] returns when the fence is closed.
pub const FENCE_CLOSED: &str = "ClusterScale.FenceClosed";

tokio::task_local! {
    static FENCE: Arc<dyn Fence>;
}

/// Run `f` (a scale call) with `fence` in force for every request it sends.
pub async fn scope<F: Future>(fence: Arc<dyn Fence>, f: F) -> F::Output {
    FENCE.scope(fence, f).await
}

/// Immediately before a request leaves: an error (nothing sent, so
/// [`Effect::Refused`], code [`FENCE_CLOSED`]) when the fence of the
/// current [`scope`] is closed.
pub fn check(action: &str) -> Result<(), CloudError> {
    let open = FENCE.try_with(|f| f.is_open()).unwrap_or(true);
    if open {
        return Ok(());
    }
    Err(CloudError::new(
        ErrorClass::Transient,
        action,
        FENCE_CLOSED,
        "not sent: this process may no longer write to the cloud (the fence closed)",
    )
    .with_effect(Effect::Refused))
}

/// Whether `e` is [`check`]'s refusal.
pub fn closed(e: &CloudError) -> bool {
    e.code == FENCE_CLOSED
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Debug, Default)]
    struct Flag(AtomicBool);

    impl Fence for Flag {
        fn is_open(&self) -> bool {
            !self.0.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn check_refuses_only_inside_a_closed_scope() {
        assert!(check("A").is_ok(), "no scope: open");
        let flag = Arc::new(Flag::default());
        let inside = scope(flag.clone(), async {
            let before = check("A").is_ok();
            flag.0.store(true, Ordering::SeqCst);
            (before, check("ScaleOutInstance"))
        })
        .await;
        assert!(inside.0);
        let e = inside.1.expect_err("closed");
        assert!(closed(&e) && !e.may_have_applied(), "{e:?}");
        assert_eq!(e.action, "ScaleOutInstance");
        assert!(check("A").is_ok(), "the scope ended");
    }
}
