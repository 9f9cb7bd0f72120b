//! Fixture builders for tests (this crate's unit tests, `tests/`, benches):
//! a typical value with one call, then builder methods for what a test
//! cares about, instead of full struct literals.
//!
//! ```
//! use clusterscale_core::api::{HuaweiSpec, OperationRecord, ScaledClusterSpec};
//! let spec = ScaledClusterSpec::test().huawei(HuaweiSpec::test().endpoint("http://127.0.0.1:1"));
//! let op = OperationRecord::test().out(1, 3).unaccepted();
//! assert_eq!((op.count, spec.core.count), (2, 3));
//! ```

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    AccountRef, Direction, HuaweiPoolSpec, HuaweiSpec, NodeGroup, OperationRecord,
    ScaledClusterSpec, SecretRef, SimulatedPoolSpec, TaskPoolSpec, TencentPoolSpec, TencentSpec,
};
use crate::cloud::Submitted;

/// The instant fixtures start at (2023-11-14T22:13:20Z).
pub fn epoch() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("a valid timestamp")
}

impl OperationRecord {
    /// An accepted "add 2 Task nodes, 0 -> 2", id `op`, sent once at [`epoch`].
    pub fn test() -> Self {
        OperationRecord {
            id: "op".into(),
            group: NodeGroup::Task,
            pool: None,
            direction: Direction::Out,
            count: 2,
            from_count: 0,
            to_count: 2,
            started_at: Time(epoch()),
            accepted: true,
            attempts: 1,
            request_id: None,
            flow_id: None,
            trace_id: None,
            node_ids: vec![],
            unmatched_preferred_nodes: vec![],
            finished_at: None,
            outcome: None,
            message: None,
        }
    }

    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn group(mut self, group: NodeGroup) -> Self {
        self.group = group;
        self
    }

    /// An operation on the Task pool `name` of `spec.taskPools`.
    pub fn pool(mut self, name: &str) -> Self {
        self.group = NodeGroup::Task;
        self.pool = Some(name.into());
        self
    }

    /// Scale-out from `from` to `to` nodes.
    pub fn out(self, from: i32, to: i32) -> Self {
        self.resize(Direction::Out, from, to)
    }

    /// Scale-in from `from` to `to` nodes.
    pub fn scale_in(self, from: i32, to: i32) -> Self {
        self.resize(Direction::In, from, to)
    }

    fn resize(mut self, direction: Direction, from: i32, to: i32) -> Self {
        self.direction = direction;
        self.from_count = from;
        self.to_count = to;
        self.count = (to - from).abs();
        self
    }

    /// Only the write-ahead record exists: the call was never confirmed.
    pub fn unaccepted(mut self) -> Self {
        self.accepted = false;
        self
    }

    pub fn attempts(mut self, attempts: i32) -> Self {
        self.attempts = attempts;
        self
    }

    pub fn started_at(mut self, at: Timestamp) -> Self {
        self.started_at = Time(at);
        self
    }

    /// The ids the cloud answered the call with.
    pub fn submitted(mut self, submitted: &Submitted) -> Self {
        self.request_id = submitted.request_id.clone();
        self.flow_id = submitted.flow_id.clone();
        self.trace_id = submitted.trace_id.clone();
        self.node_ids = submitted.node_ids.clone();
        self
    }
}

impl HuaweiSpec {
    /// Cluster `c` of project `p` in cn-north-4, Secret `hw`, default endpoints.
    pub fn test() -> Self {
        HuaweiSpec {
            region: "cn-north-4".into(),
            project_id: "p".into(),
            cluster_id: "c".into(),
            credentials_secret_ref: Some(SecretRef { name: "hw".into() }),
            account_ref: None,
            endpoint: None,
            iam_endpoint: None,
            core_node_group: None,
            task_node_group: None,
            task_node_spec: None,
            skip_bootstrap_scripts: false,
            scale_without_start: false,
        }
    }

    pub fn cluster(mut self, project_id: &str, cluster_id: &str) -> Self {
        self.project_id = project_id.into();
        self.cluster_id = cluster_id.into();
        self
    }

    /// The MRS endpoint (a fake's base URL, say).
    pub fn endpoint(mut self, base: impl Into<String>) -> Self {
        self.endpoint = Some(base.into());
        self
    }

    pub fn iam_endpoint(mut self, base: impl Into<String>) -> Self {
        self.iam_endpoint = Some(base.into());
        self
    }

    /// Keys from CloudAccount `name` instead of a Secret.
    pub fn account(mut self, name: &str) -> Self {
        self.credentials_secret_ref = None;
        self.account_ref = Some(AccountRef { name: name.into() });
        self
    }
}

impl TencentSpec {
    /// Instance `emr-1` in ap-guangzhou, pay-as-you-go, Secret `tc`, default endpoint.
    pub fn test() -> Self {
        TencentSpec {
            region: "ap-guangzhou".into(),
            instance_id: "emr-1".into(),
            pay_mode: 0,
            time_unit: None,
            time_span: None,
            credentials_secret_ref: Some(SecretRef { name: "tc".into() }),
            account_ref: None,
            endpoint: None,
            pre_executed_file_settings: None,
        }
    }

    pub fn instance(mut self, instance_id: &str) -> Self {
        self.instance_id = instance_id.into();
        self
    }

    pub fn secret(mut self, name: &str) -> Self {
        self.credentials_secret_ref = Some(SecretRef { name: name.into() });
        self.account_ref = None;
        self
    }

    /// Keys from CloudAccount `name` instead of a Secret.
    pub fn account(mut self, name: &str) -> Self {
        self.credentials_secret_ref = None;
        self.account_ref = Some(AccountRef { name: name.into() });
        self
    }

    /// The EMR endpoint (a fake's base URL, say).
    pub fn endpoint(mut self, base: impl Into<String>) -> Self {
        self.endpoint = Some(base.into());
        self
    }
}

impl ScaledClusterSpec {
    /// Core 3, Task 0 on the simulated cloud, default policy
    /// ([`ScaledClusterSpec::simulated`]).
    pub fn test() -> Self {
        ScaledClusterSpec::simulated(3, 0)
    }

    pub fn counts(mut self, core: i32, task: i32) -> Self {
        self.core.count = core;
        self.task.count = task;
        self
    }

    /// Target this Huawei MRS cluster instead.
    pub fn huawei(self, huawei: HuaweiSpec) -> Self {
        Self {
            huawei: Some(Box::new(huawei)),
            ..self.without_cloud()
        }
    }

    /// Target this Tencent EMR cluster instead.
    pub fn tencent(self, tencent: TencentSpec) -> Self {
        Self {
            tencent: Some(Box::new(tencent)),
            ..self.without_cloud()
        }
    }

    /// The same policy with no cloud block; every field named, so that a new
    /// cloud's block cannot be left set by mistake.
    fn without_cloud(self) -> Self {
        let ScaledClusterSpec {
            tencent: _,
            huawei: _,
            simulated: _,
            core,
            task,
            task_pools,
            scale_in,
            max_step,
            cooldown_seconds,
            paused,
            dry_run,
        } = self;
        ScaledClusterSpec {
            tencent: None,
            huawei: None,
            simulated: None,
            core,
            task,
            task_pools,
            scale_in,
            max_step,
            cooldown_seconds,
            paused,
            dry_run,
        }
    }

    pub fn cooldown_seconds(mut self, seconds: i32) -> Self {
        self.cooldown_seconds = seconds;
        self
    }

    /// Add the Task pool `pool` to `spec.taskPools`.
    pub fn with_pool(mut self, pool: TaskPoolSpec) -> Self {
        self.task_pools.push(pool);
        self
    }
}

impl TaskPoolSpec {
    /// Pool `name` of `count` nodes with the simulated cloud's block.
    pub fn simulated(name: &str, count: i32, initial: i32) -> Self {
        Self {
            simulated: Some(SimulatedPoolSpec {
                initial_count: initial,
            }),
            ..TaskPoolSpec::named(name, count)
        }
    }

    pub fn bounds(mut self, min: i32, max: i32) -> Self {
        self.min = min;
        self.max = max;
        self
    }
}

/// One spec per refusal of [`validate_spec`](crate::api::validate::validate_spec), each breaking exactly that rule
/// of an otherwise valid spec: `(field, part of the message, spec)`. Shared by
/// the validation tests and the controller's (which check the Degraded condition).
pub fn refusals() -> Vec<(&'static str, &'static str, ScaledClusterSpec)> {
    let sim = || ScaledClusterSpec::simulated(3, 0);
    let with = |f: &dyn Fn(&mut ScaledClusterSpec)| {
        let mut s = sim();
        f(&mut s);
        s
    };
    let tencent = || TencentSpec {
        region: "ap-guangzhou".into(),
        instance_id: "emr-b3zor8nr".into(),
        pay_mode: 0,
        time_unit: None,
        time_span: None,
        credentials_secret_ref: Some(SecretRef {
            name: "emr-creds".into(),
        }),
        account_ref: None,
        endpoint: None,
        pre_executed_file_settings: None,
    };
    let huawei = || HuaweiSpec {
        region: "cn-north-4".into(),
        project_id: "0123456789abcdef0123456789abcdef".into(),
        cluster_id: "0f1e2d3c-4b5a-4968-8776-655443322110".into(),
        credentials_secret_ref: Some(SecretRef {
            name: "emr-creds".into(),
        }),
        account_ref: None,
        endpoint: None,
        iam_endpoint: None,
        core_node_group: None,
        task_node_group: None,
        task_node_spec: None,
        skip_bootstrap_scripts: false,
        scale_without_start: false,
    };
    let on_tencent = |f: &dyn Fn(&mut TencentSpec)| {
        with(&|s| {
            s.simulated = None;
            let mut t = tencent();
            f(&mut t);
            s.tencent = Some(Box::new(t));
        })
    };
    let on_huawei = |f: &dyn Fn(&mut HuaweiSpec)| {
        with(&|s| {
            s.simulated = None;
            let mut h = huawei();
            f(&mut h);
            s.huawei = Some(Box::new(h));
        })
    };
    let pool = |f: &dyn Fn(&mut TaskPoolSpec)| {
        with(&|s| {
            let mut p = TaskPoolSpec::named("batch", 0);
            f(&mut p);
            s.task_pools.push(p);
        })
    };
    let spot = || TaskPoolSpec {
        tencent: Some(TencentPoolSpec::default()),
        ..TaskPoolSpec::named("spot", 1)
    };
    let spot_with = |f: &dyn Fn(&mut TencentPoolSpec)| {
        let mut t = TencentPoolSpec::default();
        f(&mut t);
        TaskPoolSpec {
            tencent: Some(t),
            ..spot()
        }
    };
    let group = |g: &str| TaskPoolSpec {
        huawei: Some(HuaweiPoolSpec {
            node_group: g.into(),
        }),
        ..TaskPoolSpec::named("batch", 1)
    };
    vec![
        ("spec", "(found 0)", with(&|s| s.simulated = None)),
        (
            "spec",
            "(found 2)",
            with(&|s| s.tencent = Some(Box::new(tencent()))),
        ),
        (
            "spec.core.count",
            "at least 3 (got 2)",
            with(&|s| s.core.count = 2),
        ),
        (
            "spec.task.count",
            ">= 0 (got -1)",
            with(&|s| s.task.count = -1),
        ),
        ("spec.task.min", ">= 0 (got -1)", with(&|s| s.task.min = -1)),
        (
            "spec.task.min",
            "<= spec.task.max (min 5 > max 4)",
            with(&|s| {
                s.task.count = 4;
                s.task.min = 5;
                s.task.max = 4;
            }),
        ),
        (
            "spec.task.max",
            "between 0 and 500 (got 501)",
            with(&|s| s.task.max = 501),
        ),
        (
            "spec.core.count + spec.task.count",
            "at most 500 (got 501)",
            with(&|s| s.task.count = 498),
        ),
        (
            "spec.core.count + spec.task.count + spec.taskPools[].count",
            "at most 500 (got 501)",
            pool(&|p| p.count = 498),
        ),
        (
            "spec.taskPools",
            "at most 8 pools (got 9)",
            with(&|s| {
                s.task_pools = (0..9)
                    .map(|i| TaskPoolSpec::named(format!("p{i}"), 0))
                    .collect()
            }),
        ),
        (
            "spec.taskPools[].name",
            "must be a DNS label",
            pool(&|p| p.name = "Batch_1".into()),
        ),
        (
            "spec.taskPools[].name",
            "must not be task",
            pool(&|p| p.name = "task".into()),
        ),
        (
            "spec.taskPools[].name",
            "must be unique (\"a\" appears twice)",
            with(&|s| s.task_pools = vec![TaskPoolSpec::named("a", 0); 2]),
        ),
        (
            "spec.taskPools[].count",
            "pool batch: must be >= 0 (got -1)",
            pool(&|p| p.count = -1),
        ),
        (
            "spec.taskPools[].min",
            "pool batch: must be >= 0 (got -1)",
            pool(&|p| p.min = -1),
        ),
        (
            "spec.taskPools[].min",
            "pool batch: must be <= spec.taskPools[].max (min 5 > max 4)",
            pool(&|p| {
                p.min = 5;
                p.max = 4;
            }),
        ),
        (
            "spec.taskPools[].max",
            "pool batch: must be between 0 and 500 (got 501)",
            pool(&|p| p.max = 501),
        ),
        (
            "spec.taskPools[]",
            "pool spot: sets tencent, but a pool may set only the block of the spec's cloud",
            with(&|s| s.task_pools = vec![spot()]),
        ),
        (
            "spec.taskPools[].tencent.instanceType",
            "pool spot: must be 1-64 letters, digits, '.', '-' or '_'",
            on_tencent(&|_| ()).with_pool(spot_with(&|t| {
                t.instance_type = Some("SA5 2XLARGE32".into())
            })),
        ),
        (
            "spec.taskPools[].tencent.yarnNodeLabel",
            "pool spot: must be a YARN node label",
            on_tencent(&|_| ()).with_pool(spot_with(&|t| t.yarn_node_label = Some("-spot".into()))),
        ),
        (
            "spec.taskPools[].huawei.nodeGroup",
            "pool batch: required on a huawei cluster",
            on_huawei(&|_| ()).with_pool(TaskPoolSpec::named("batch", 1)),
        ),
        (
            "spec.taskPools[].huawei.nodeGroup",
            "pool batch: must be 1-64 letters, digits, '_' or '-' (got \"node group\")",
            on_huawei(&|_| ()).with_pool(group("node group")),
        ),
        (
            "spec.taskPools[].huawei.nodeGroup",
            "pool batch: node group node_group_2 is spec.huawei.coreNodeGroup (the Core group)",
            on_huawei(&|h| h.core_node_group = Some("node_group_2".into()))
                .with_pool(group("node_group_2")),
        ),
        (
            "spec.taskPools[].huawei.nodeGroup",
            "pool batch: node group node_group_3 is pool first's node group too",
            on_huawei(&|_| ())
                .with_pool(TaskPoolSpec {
                    name: "first".into(),
                    ..group("node_group_3")
                })
                .with_pool(group("node_group_3")),
        ),
        (
            "spec.taskPools[].simulated.initialCount",
            "pool batch: must be >= 0 (got -1)",
            with(&|s| s.task_pools = vec![TaskPoolSpec::simulated("batch", 0, -1)]),
        ),
        ("spec.maxStep", ">= 0 (got -1)", with(&|s| s.max_step = -1)),
        (
            "spec.cooldownSeconds",
            ">= 0 (got -1)",
            with(&|s| s.cooldown_seconds = -1),
        ),
        (
            "spec.scaleIn.gracefulTimeoutSeconds",
            "0 or between 60 and 1800 (got 59)",
            with(&|s| s.scale_in.graceful_timeout_seconds = 59),
        ),
        (
            "spec.tencent.instanceId",
            "must not be empty",
            on_tencent(&|t| t.instance_id = " ".into()),
        ),
        (
            "spec.tencent.region",
            "must not be empty",
            on_tencent(&|t| t.region = String::new()),
        ),
        (
            "spec.tencent.payMode",
            "0 or 1 (got 2)",
            on_tencent(&|t| t.pay_mode = 2),
        ),
        (
            "spec.tencent.credentialsSecretRef.name",
            "must not be empty",
            on_tencent(&|t| {
                t.credentials_secret_ref = Some(SecretRef {
                    name: String::new(),
                })
            }),
        ),
        (
            "spec.tencent.accountRef.name",
            "must not be empty",
            on_tencent(&|t| {
                t.credentials_secret_ref = None;
                t.account_ref = Some(AccountRef { name: " ".into() });
            }),
        ),
        (
            "spec.tencent",
            "exactly one of credentialsSecretRef or accountRef must be set",
            on_tencent(&|t| t.account_ref = Some(AccountRef { name: "a".into() })),
        ),
        (
            "spec.huawei.region",
            "must not be empty",
            on_huawei(&|h| h.region = String::new()),
        ),
        (
            "spec.huawei.projectId",
            "must not be empty",
            on_huawei(&|h| h.project_id = String::new()),
        ),
        (
            "spec.huawei.clusterId",
            "must not be empty",
            on_huawei(&|h| h.cluster_id = "\t".into()),
        ),
        (
            "spec.huawei.credentialsSecretRef.name",
            "must not be empty",
            on_huawei(&|h| {
                h.credentials_secret_ref = Some(SecretRef {
                    name: String::new(),
                })
            }),
        ),
        (
            "spec.huawei.accountRef.name",
            "must not be empty",
            on_huawei(&|h| {
                h.credentials_secret_ref = None;
                h.account_ref = Some(AccountRef {
                    name: String::new(),
                });
            }),
        ),
        (
            "spec.huawei",
            "exactly one of credentialsSecretRef or accountRef must be set",
            on_huawei(&|h| h.credentials_secret_ref = None),
        ),
        (
            "spec.simulated.initialCore",
            "initialCore and initialTask must be >= 0",
            with(&|s| s.simulated.as_mut().expect("simulated").initial_core = -1),
        ),
        (
            "spec.simulated.initialCore",
            "initialCore and initialTask must be >= 0",
            with(&|s| s.simulated.as_mut().expect("simulated").initial_task = -1),
        ),
        (
            "spec.simulated.operationSeconds",
            "must be >= 0",
            with(&|s| s.simulated.as_mut().expect("simulated").operation_seconds = -1),
        ),
    ]
}
