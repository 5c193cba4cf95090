"""render(): the block QA reads in the terminal and the failure message."""

from lhsoak import diagnosis


def test_render_shows_every_finding_with_its_key_facts(world, make):
    stuck = world.block_cronjob(
        "soak-bak", scheduled=make.clock("11:30"), phase="Pending", node="node-2", suffix="b7m2q"
    )
    world.put(
        make.node("node-2", since=make.clock("11:33:10")),
        make.node("node-3", ready="Unknown", since=make.clock("11:45"), unreachable=True),
    )
    pod_name = f"{stuck['metadata']['name']}-b7m2q"

    text = diagnosis.render(world.diagnose(stalled={"soak-bak"}))

    lines = text.splitlines()
    assert lines[0] == "Diagnosis: 2 findings, most specific first"
    assert lines[1].startswith(
        f"1. [stuck-pending-job] soak-bak: job pod {pod_name} Pending for 30m30s on node node-2"
    )
    assert lines[2].startswith(f"   Pod longhorn-system/{pod_name}: phase Pending for 30m30s")
    for fact in (
        f"bootID {make.BOOT_IDS['node-2']}",
        "skipped 6 ticks",
        "longhorn#9185",
        f"kubectl -n longhorn-system delete pod {pod_name}",
        f"   objects: Pod longhorn-system/{pod_name}, Job longhorn-system/{stuck['metadata']['name']}, "
        "CronJob longhorn-system/soak-bak, Node node-2",
        "2. [node-not-ready] node node-3 NotReady",
    ):
        assert fact in text, f"{fact!r} missing from:\n{text}"


def test_render_of_no_findings_says_so():
    assert diagnosis.render([]) == "Diagnosis: no cause found in the cluster state."
