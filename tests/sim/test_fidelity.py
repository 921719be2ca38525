"""Details clients rely on (issue 10): JSON types of /pending, canonical drive strings, cleanup_pending,
clean failure of create, the import error text, agent info/osinfo, the simulator's own property-string parser."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from phoenix.sim import propstr

from ._tasks import run
from .test_agent import put_import_image

NODE = "pve"


@pytest.fixture
def vm(proxmox):
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, memory=512, cores=2, sockets=1, onboot=1, numa=0,
                                              scsi0="local-lvm:1", ide2="local-lvm:cloudinit", numa0="cpus=0-1",
                                              ipconfig0="ip=10.0.0.5/24,gw=10.0.0.1", agent="1"))
    return proxmox.nodes(NODE).qemu(100)


def test_pending_has_the_json_types_of_config(vm):
    vm.config.put(cores=4)
    vm.status.start.post()
    vm.config.put(cores=3, sockets=2)
    items = {item["key"]: item for item in vm.pending.get()}
    config = vm.config.get(current=1)
    for key in ("cores", "sockets", "onboot", "numa", "numa0", "memory", "scsi0"):
        assert type(items[key]["value"]) is type(config[key]), key
    assert items["cores"] == {"key": "cores", "value": 4, "pending": 3}
    assert config["numa"] == 0 and config["numa0"] == "cpus=0-1" and config["memory"] == "512"


def test_drives_are_stored_in_canonical_form(proxmox, vm):
    vm.config.put(ide0="file=cdrom,media=cdrom,", sata0="none",
                  scsi0="local-lvm:vm-100-disk-0,ssd=on,discard=on,iothread=true")
    config = vm.config.get()
    assert config["ide0"] == "cdrom,media=cdrom" and config["sata0"] == "none,media=cdrom"
    assert config["scsi0"] == "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=1G,ssd=1"
    with pytest.raises(Exception) as info:
        vm.config.put(scsi1="local-lvm:1,bogus=1")
    assert info.value.status_code == 400


def test_writing_the_current_value_leaves_nothing_pending(proxmox, vm, sim_server):
    run(proxmox, vm.status.start.post())
    vm.config.put(cores=2, ipconfig0="ip=10.0.0.5/24,gw=10.0.0.1",
                  scsi0="local-lvm:vm-100-disk-0,size=1G")          # same values, re-sent
    assert [i for i in vm.pending.get() if "pending" in i or "delete" in i] == []
    assert "[special:cloudinit]" not in sim_server.sim.model.vms[100].render()
    vm.config.put(delete="tags")                                     # deleting an unset key: nothing pending
    assert all("delete" not in item for item in vm.pending.get())


def test_failed_create_leaves_no_config(proxmox, sim_server, sim_control):
    sim_control.fault(task_type="qmcreate", message="injected")
    status = run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, memory=512, scsi0="local-lvm:1"))
    assert status["exitstatus"] == "injected"
    assert 100 not in sim_server.sim.model.vms
    assert not [v for v in sim_server.sim.model.volumes.values() if v.vmid == 100]


def test_import_error_says_its_prefix_once(proxmox):
    status = run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, scsi0="local-lvm:0,import-from=local:import/no.qcow2"))
    assert status["exitstatus"] == "cannot import from 'local:import/no.qcow2' - volume does not exist"


def test_agent_info_and_osinfo(proxmox, sim_server):
    source = put_import_image(sim_server, "agent.qcow2", with_agent=True)
    run(proxmox, proxmox.nodes(NODE).qemu.post(vmid=100, scsi0=f"local-lvm:0,import-from={source}", agent="1"))
    vm = proxmox.nodes(NODE).qemu(100)
    run(proxmox, vm.status.start.post())
    osinfo = vm.agent("get-osinfo").get()["result"]
    assert {"id", "kernel-release", "machine", "name", "pretty-name", "version-id"} <= set(osinfo)
    info = vm.agent.info.get()["result"]
    assert {"name": "guest-ping", "enabled": True, "success-response": True} in info["supported_commands"]


def test_the_simulator_has_its_own_property_string_parser():
    sim = Path(propstr.__file__).parent
    for path in sim.rglob("*.py"):
        imported = {node.module for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module}
        assert not any(name.startswith("phoenix.pve") for name in imported), path


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True),
                       st.from_regex(r"[A-Za-z0-9:/._-]{1,12}", fullmatch=True), max_size=6))
def test_split_reads_back_what_print_writes(values):
    fmt = {"file": {"default_key": 1}}
    values = dict(values)
    values.pop("file", None)
    values["file"] = "local:iso/x.iso"
    assert propstr.split(propstr.print_property_string(fmt, values), "file") == values
