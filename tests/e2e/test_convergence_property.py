"""Property: whatever a VM declares, one apply converges it (the next plan says "No changes."), and a
change to any declared attribute shows up as exactly that attribute — never a perpetual diff."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = st.from_regex(r"[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,6})?", fullmatch=True)
TAGS = st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), max_size=3, unique=True)
HOSTS = st.integers(2, 250)
vm_specs = st.fixed_dictionaries({
    "name": NAMES,
    "cores": st.integers(1, 16),
    "memory_mb": st.integers(2, 64).map(lambda n: n * 256),
    "disk_size_gb": st.integers(4, 200),
    "tags": TAGS,
    "ip": st.one_of(st.just("dhcp"), HOSTS.map(lambda h: f"10.0.0.{h}/24")),
    "features": st.lists(st.sampled_from(["base", "docker"]), unique=True, max_size=2),
    "nameservers": st.lists(st.sampled_from(["10.0.0.1", "1.1.1.1", "9.9.9.9"]), unique=True, min_size=1,
                            max_size=2),
    "start": st.booleans(),
})
CHANGEABLE = {"cores": "cores", "memory_mb": "memory_mb", "tags": "tags", "disk_size_gb": "disk_size_gb"}


def declare(data: dict, spec: dict) -> None:
    vm = data["vms"][0]
    network = {"ip": spec["ip"], "nameservers": spec["nameservers"]}
    if spec["ip"] != "dhcp":
        network["gw"] = str(next(ipaddress.ip_network(spec["ip"], strict=False).hosts()))
    vm.update(name=spec["name"], cores=spec["cores"], memory_mb=spec["memory_mb"],
              disk_size_gb=spec["disk_size_gb"], tags=spec["tags"], features=spec["features"],
              start=spec["start"], network_config=network)
    data["vms"] = [vm]
    data["vm_defaults"]["disk_size_gb"] = 4


@pytest.mark.timeout(600)      # 15 examples × five CLI runs that now wait for the guest: ~130 s on a loaded 2-core box
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=vm_specs, change=st.sampled_from(sorted(CHANGEABLE)), data=st.data())
def test_any_declared_vm_converges_and_changes_show_exactly(fresh_sim, phoenix_cli_for, spec, change, data):
    with fresh_sim() as server:
        check_convergence(phoenix_cli_for(server, lambda d: declare(d, spec)), spec, change, data)


def check_convergence(cli, spec, change, data):
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output                  # converged: no perpetual diff

    current = spec[change]
    if change == "tags":
        new = data.draw(TAGS.filter(lambda t: sorted(t) != sorted(current)))
    elif change == "disk_size_gb":
        new = current + data.draw(st.integers(1, 50))             # disks only grow
    else:
        new = data.draw(vm_specs.map(lambda s: s[change]).filter(lambda v: v != current))
    cli.edit(lambda d: d["vms"][0].update({change: new}))
    as_json = json.loads(cli("plan", "--json", "--allow-reboot").output)
    changed = [rc for rc in as_json["resource_changes"] if rc["action"] != "no-op"]
    assert [rc["address"] for rc in changed] == ["vm.8001"]
    assert [c["attribute"] for c in changed[0]["changes"]] == [CHANGEABLE[change]]
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert cli("plan", "--detailed-exitcode").exit_code == 0
