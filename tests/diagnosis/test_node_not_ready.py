"""Rule 8: nodes whose Ready condition is not True, with what of the soak they host."""

from lhsoak import diagnosis


def test_unreachable_node_names_since_boot_id_taints_and_what_it_hosts(world, make):
    world.put(
        make.node("node-2", ready="Unknown", since=make.clock("11:45"), unreachable=True),
    )

    findings = world.diagnose()

    assert [f.category for f in findings] == ["node-not-ready"], diagnosis.render(findings)
    finding = findings[0]
    assert finding.job is None
    assert finding.summary.startswith(
        "node node-2 NotReady (Ready=Unknown NodeStatusUnknown) since 2025-03-20T11:45:00Z (15m30s ago), "
        "taints node.kubernetes.io/unreachable:NoSchedule, node.kubernetes.io/unreachable:NoExecute; hosts "
    )
    assert finding.summary.endswith("; hosts volumes soak-vol-2")  # its Failed job pod is history
    assert f"bootID {make.BOOT_IDS['node-2']}" in finding.detail
    assert '"Kubelet stopped posting node status."' in finding.detail
    assert "Last heartbeat 2025-03-20T11:44:20Z (16m10s ago)." in finding.detail
    assert finding.jobs == {"soak-bak"}
    assert finding.data["node_ready"] == "Unknown"


def test_ready_nodes_are_not_a_finding(world):
    assert [f for f in world.diagnose() if f.category == "node-not-ready"] == []


def test_live_job_pods_on_the_node_are_named(world, make):
    scheduled = make.clock("12:00")
    running = make.job("soak-snap", scheduled=scheduled)
    world.put(
        make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=scheduled, active=[running]),
        running,
        make.pod(running, phase="Running", node="node-3", created=scheduled, suffix="h5j6k"),
        make.node("node-3", ready="Unknown", since=make.clock("12:00:10"), unreachable=True),
    )

    finding = next(f for f in world.diagnose() if f.category == "node-not-ready")

    assert finding.summary.endswith(f"; hosts job pods {running['metadata']['name']}-h5j6k")
    assert finding.jobs == {"soak-snap"}
    assert [ref.kind for ref in finding.objects] == ["Node", "Pod"]


def test_a_node_the_kubelet_reports_not_ready_is_explained_as_such(world, make):
    world.put(make.node("node-1", ready="False", since=make.clock("11:59")))

    finding = next(f for f in world.diagnose() if f.category == "node-not-ready")

    assert finding.summary.startswith(
        "node node-1 NotReady (Ready=False KubeletNotReady) since 2025-03-20T11:59:00Z"
    )
    assert '"container runtime network not ready' in finding.detail
    assert "The kubelet itself reports the node not ready" in finding.detail
    assert "node-monitor-grace-period" not in finding.detail
