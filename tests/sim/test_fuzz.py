"""Random parameters against create and config: PVE's 400s stay 400s, and nothing crashes.

For every generated request the expected validation outcome is computed with ``schema.validate``
on the very same values; when that says 400, the server must answer exactly that 400.  Otherwise
the handler may refuse PVE-style (e.g. ``no options specified``), but a Python exception in a
handler or worker (logged by the server) fails the test, and the server must keep serving.
"""

from __future__ import annotations

import logging

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoenix.sim.core import PVEError
from phoenix.sim.schema import SCHEMA, Endpoint, validate

CREATE = Endpoint("POST", "/nodes/{node}/qemu", SCHEMA["endpoints"]["/nodes/{node}/qemu"]["POST"])
CONFIG = {m: Endpoint(m, "/nodes/{node}/qemu/{vmid}/config", SCHEMA["endpoints"]["/nodes/{node}/qemu/{vmid}/config"][m])
          for m in ("POST", "PUT")}

PLAUSIBLE = {
    "cores": ["1", "2", "0", "-1", "abc", "64"], "memory": ["512", "2048", "current=1024", "8", "x"],
    "name": ["web-1", "bad_name", "a.b.c", ""], "net0": ["virtio,bridge=vmbr0", "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                                                         "e1000,bridge=vmbr9,tag=5", "bridge=vmbr0", "virtio,tag=99999"],
    "scsi0": ["local-lvm:4", "local-lvm:0,import-from=local:import/x.qcow2", "nostorage:1", "local-lvm:vm-1-disk-0",
              "local:iso/x.iso,media=cdrom", "32"],
    "ide2": ["local-lvm:cloudinit", "none,media=cdrom", "local:cloudinit"], "ipconfig0": ["ip=dhcp", "ip=10.0.0.5/24,gw=10.0.0.1",
                                                                                  "gw=1.2.3.4", "ip=300.1.1.1/24"],
    "sshkeys": ["ssh-ed25519%20AAAA%20me", "not encoded"], "delete": ["cores", "cores,memory", "1bad", "net0;ide2"],
    "tags": ["a;b", "b@d"], "boot": ["order=scsi0;net0", "order=nic9", "cdn"], "agent": ["1", "enabled=1,type=isa", "maybe"],
    "onboot": ["1", "0", "true"], "template": ["1", "0"], "cicustom": ["user=local:snippets/u.yaml", "user=bad"],
    "digest": ["0" * 40, "x"], "skiplock": ["1"], "start": ["1", "0"], "storage": ["local-lvm", "local", "nope"],
    "ostype": ["l26", "dos"], "cpu": ["host", "x86-64-v2-AES"], "nameserver": ["1.1.1.1", "1.1.1.1 x_y"],
    "vga": ["serial0", "std"], "serial0": ["socket"], "searchdomain": ["example.org"], "ciuser": ["ubuntu", "root"],
    "cipassword": ["secret"], "revert": ["cores"], "force": ["1"], "description": ["hello"], "unused0": ["local-lvm:vm-1-disk-9"],
    "poolid": ["prod", "prod/sub", "a/b/c/d", "bad name", "9x"], "vms": ["100", "100,101", "x"], "comment": ["c"],
    "allow-move": ["1", "0"], "type": ["qemu", "storage", "bridge", "vm"], "full": ["1", "0"], "path": ["/", "/vms/100"],
    "userid": ["root@pam", "root@pam!phoenix", "nobody@pve", "bad"], "snapname": ["s1", "current", "1x", "Pending"],
    "vmstate": ["1", "0"], "todisk": ["1", "0"], "statestorage": ["local-lvm", "nope"], "timeout": ["0", "5"],
}

_random_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
                       max_size=30)


def _params(endpoint: Endpoint) -> st.SearchStrategy[dict[str, str]]:
    keys = sorted(k.replace("[n]", "0") for k in endpoint.properties if k not in ("node", "vmid"))
    value = st.one_of(_random_text, st.integers(-5, 10**6).map(str))

    def for_key(key: str) -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(PLAUSIBLE[key]), value) if key in PLAUSIBLE else value

    if not keys:
        return st.just({})
    return st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({key: for_key(key) for key in chosen}))


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, _sim_seed_dir):
    """A module-scoped server with VM 100 to configure, and a collector of server-side crash logs."""
    import shutil

    from phoenix.sim.server import SimServer

    data_dir = tmp_path_factory.mktemp("fuzz") / "sim"
    shutil.copytree(_sim_seed_dir, data_dir, ignore=shutil.ignore_patterns("cluster.json", "cluster.log", "tasks.log", "storage"))
    server = SimServer(data_dir, task_scale=0.0, auth_fail_delay=0.0).start()
    session = requests.Session()           # verify is passed per request: REQUESTS_CA_BUNDLE would override session.verify
    session.headers["Authorization"] = f"PVEAPIToken={server.api_token}"
    created = session.post(f"{server.endpoint}/api2/json/nodes/pve/qemu", data={"vmid": 100, "memory": 512},
                           verify=server.ca_file, timeout=30)
    assert created.status_code == 200, created.text
    collector = _Collector()
    loggers = [logging.getLogger("phoenix.sim.server"), logging.getLogger("phoenix.sim.tasks")]
    for logger in loggers:
        logger.addHandler(collector)
    yield server, session, collector
    for logger in loggers:
        logger.removeHandler(collector)
    session.close()
    server.stop()


def _check(target, method: str, path: str, endpoint: Endpoint, path_params: dict[str, str], params: dict[str, str]):
    server, session, collector = target
    try:
        validate(endpoint, dict(params), path_params)
        expected_errors = None
    except PVEError as error:
        expected_errors = error.errors
    where = {"params": params} if method in ("GET", "DELETE") else {"data": params}   # a GET body is a 501 on PVE
    response = session.request(method, f"{server.endpoint}/api2/json{path}", **where, verify=server.ca_file, timeout=30)
    if expected_errors is not None:
        assert response.status_code == 400, (params, response.status_code, response.text)
        assert response.json()["errors"] == expected_errors
    else:
        assert response.status_code != 400 or response.json().get("errors"), (params, response.text)
    crashes = [r.getMessage() for r in collector.records]
    collector.records.clear()
    assert not crashes, (params, crashes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(params=_params(CREATE), vmid=st.sampled_from(["100", "101", "102", "50", "abc"]))
def test_create_with_random_params(fuzz_target, params, vmid):
    params = {**params, "vmid": vmid}
    _check(fuzz_target, "POST", "/nodes/pve/qemu", CREATE, {"node": "pve"}, params)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(params=_params(CONFIG["POST"]))
def test_post_config_with_random_params(fuzz_target, params):
    _check(fuzz_target, "POST", "/nodes/pve/qemu/100/config", CONFIG["POST"], {"node": "pve", "vmid": "100"}, params)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(params=_params(CONFIG["PUT"]))
def test_put_config_with_random_params(fuzz_target, params):
    _check(fuzz_target, "PUT", "/nodes/pve/qemu/100/config", CONFIG["PUT"], {"node": "pve", "vmid": "100"}, params)


# The endpoints issue 10 added: random parameters must give PVE's 400s, never a crash (500 from Python).
NEW_ENDPOINTS = [
    ("GET", "/pools", {}), ("POST", "/pools", {}), ("PUT", "/pools", {}), ("DELETE", "/pools", {}),
    ("GET", "/pools/{poolid}", {"poolid": "prod"}), ("PUT", "/pools/{poolid}", {"poolid": "prod"}),
    ("GET", "/access/users", {}), ("GET", "/access/permissions", {}), ("GET", "/cluster/tasks", {}),
    ("GET", "/cluster/ha/resources", {}), ("GET", "/nodes/{node}/network", {"node": "pve"}),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending", {"node": "pve", "vmid": "100"}),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot", {"node": "pve", "vmid": "100"}),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot", {"node": "pve", "vmid": "100"}),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", {"node": "pve", "vmid": "100", "snapname": "s1"}),
    ("PUT", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", {"node": "pve", "vmid": "100", "snapname": "s1"}),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", {"node": "pve", "vmid": "100", "snapname": "s1"}),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", {"node": "pve", "vmid": "100", "snapname": "s2"}),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reset", {"node": "pve", "vmid": "100"}),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/suspend", {"node": "pve", "vmid": "100"}),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/resume", {"node": "pve", "vmid": "100"}),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/info", {"node": "pve", "vmid": "100"}),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo", {"node": "pve", "vmid": "100"}),
]


@st.composite
def _new_endpoint_call(draw):
    method, template, path_params = draw(st.sampled_from(NEW_ENDPOINTS))
    endpoint = Endpoint(method, template, SCHEMA["endpoints"][template][method])
    return method, template, endpoint, path_params, draw(_params(endpoint))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(call=_new_endpoint_call())
def test_new_endpoints_with_random_params(fuzz_target, call):
    method, template, endpoint, path_params, params = call
    path = template
    for key, value in path_params.items():
        path = path.replace("{" + key + "}", value)
    _check(fuzz_target, method, path, endpoint, path_params, params)


def test_server_still_serves_after_fuzzing(fuzz_target):
    server, session, _ = fuzz_target
    assert session.get(f"{server.endpoint}/api2/json/version", verify=server.ca_file, timeout=10).status_code == 200
