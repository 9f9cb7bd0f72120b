//! Inputs the fuzz targets (fuzz/, tests/fuzz/run.sh) found, replayed on
//! stable in the normal suite against the same public functions, each with
//! the invariant it broke. The inputs are in tests/data/fuzz/, byte for byte
//! as libFuzzer wrote them.

use clusterscale_huawei::interpret::choose_task_hosts;
use clusterscale_huawei::wire::ListHostsResponse;

/// huawei_response: ListHosts named one Task host twice (as pages that moved
/// between requests do); a scale-in chose it twice, so the resize would have
/// named the same server twice and removed fewer nodes than planned.
#[test]
fn a_host_listed_twice_is_chosen_once() {
    let input = include_bytes!("data/fuzz/huawei_response-duplicate-task-host");
    // Byte 0 selects the HTTP status (0x80: index 0, 200, with a request id).
    assert_eq!(input[0], 0x80);
    let list: ListHostsResponse = serde_json::from_slice(&input[1..]).expect("the body parses");
    let ids: Vec<&str> = list.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "vm-task-0",
            "vm-task-1",
            "vm-task-1",
            "vm-task-3",
            "vm-task-4"
        ]
    );
    let prefer = vec!["vm-task-4".to_string(), "vm-task-3".to_string()];
    for count in [1, 3, 4, 5, i32::MAX] {
        let chosen = choose_task_hosts(&list.hosts, "task_node_analysis_group", &prefer, count);
        let mut distinct = chosen.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), chosen.len(), "count {count}: {chosen:?}");
        assert!(
            chosen.len() <= 3,
            "three distinct Task hosts of the group: {chosen:?}"
        );
    }
    // vm-task-4's group name was mutated (`task_node_analysis_group$`), so
    // it is not of the group. The preferred host first, then stopped hosts
    // before running ones, by name, highest first; vm-task-1 once.
    assert_eq!(
        choose_task_hosts(&list.hosts, "task_node_analysis_group", &prefer, i32::MAX),
        ["vm-task-3", "vm-task-1", "vm-task-0"]
    );
}
