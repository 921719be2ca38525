"""The HTTP calls bpg/terraform-provider-proxmox makes for clone + cloud-init + resize + start + read + destroy,
replayed against the simulator, asserting what the provider relies on (issue 10).

Written from bpg's public Go source (proxmoxtf/resource/vm/vm.go ``vmCreateClone``/``vmRead``/``vmDelete``,
proxmox/nodes/vms/vms.go, proxmox/pools/pool.go, vms_types.go): the provider form-encodes request bodies
(go-querystring ``url`` tags, booleans as ``1``/``0``), sends drives as ``file=<vol>,<opts>`` with a trailing
comma when there are no options, sizes in bytes, sshkeys QueryEscaped with ``+`` → ``%20``; it decodes
``cores``/``sockets`` into ``*int64`` (a JSON number), ``onboot``/``template`` into ``CustomBool`` (true only
for the JSON number ``1`` or ``true``), drives by taking the part without ``=`` as the volume.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ._replay import Replay, drive_file, replay_with_template

NODE = "pve"
TEMPLATE, VMID = 9000, 201
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f ops@example"


@pytest.fixture
def bpg(sim_server):
    replay = replay_with_template(sim_server, TEMPLATE, "tmpl")
    yield replay
    replay.session.close()


def _wait_unlocked(bpg: Replay) -> dict:
    """vms.go ``WaitForVMConfigUnlock``: GET config until it has no ``lock``."""
    for _ in range(100):
        config = bpg.call("GET", f"/nodes/{NODE}/qemu/{VMID}/config")
        if "lock" not in config:
            return config
    raise AssertionError("config stayed locked")


def _wait_status(bpg: Replay, wanted: str) -> dict:
    """vms.go ``WaitForVMStatus``: GET status/current until ``status`` is the wanted one."""
    for _ in range(100):
        status = bpg.call("GET", f"/nodes/{NODE}/qemu/{VMID}/status/current")
        if status["status"] == wanted:
            return status
    raise AssertionError(f"VM never became {wanted}")


def test_bpg_clone_cloudinit_resize_start_read_destroy(bpg):
    version = bpg.call("GET", "/version")
    assert isinstance(version["version"], str) and isinstance(version["release"], str)
    # proxmox_virtual_environment_pool: POST pools (poolid, comment)
    assert bpg.call("POST", "/pools", [("poolid", "prod"), ("comment", "managed by terraform")]) is None

    # vmCreateClone: CloneVM (clone.go body: newid, full as int, name, pool)
    upid = bpg.call("POST", f"/nodes/{NODE}/qemu/{TEMPLATE}/clone",
                    [("full", 0), ("name", "web"), ("newid", VMID), ("pool", "prod")])
    assert bpg.wait(upid)["exitstatus"] == "OK"
    config = _wait_unlocked(bpg)

    # UpdateVM (PUT config): CPU, memory, agent, cloud-init drive and options, as vmCreateClone encodes them
    sshkeys = quote(KEY, safe="").replace("+", "%20")
    assert bpg.call("PUT", f"/nodes/{NODE}/qemu/{VMID}/config", [
        ("agent", "enabled=1,fstrim_cloned_disks=0,type=virtio"), ("cores", 2), ("sockets", 1),
        ("memory", 2048), ("onboot", 1), ("numa", 0), ("ide2", "file=local-lvm:cloudinit,media=cdrom,"),
        ("ciuser", "ops"), ("sshkeys", sshkeys), ("ipconfig0", "ip=10.0.0.21/24,gw=10.0.0.1"),
        ("nameserver", "1.1.1.1"), ("searchdomain", "example.org"), ("ide0", "file=cdrom,media=cdrom,"),
        ("scsi0", f"file={config['scsi0'].split(',')[0]},size={2 << 30},iothread=1,")]) is None
    config = bpg.call("GET", f"/nodes/{NODE}/qemu/{VMID}/config")
    assert drive_file(config["ide2"]).startswith("local-lvm:vm-201-cloudinit")
    assert drive_file(config["ide0"]) == "cdrom"                    # canonical: "cdrom,media=cdrom"
    assert config["ide0"] == "cdrom,media=cdrom" and config["scsi0"].endswith(",iothread=1,size=2G")
    assert type(config["cores"]) is int and type(config["sockets"]) is int
    assert config["onboot"] == 1 and config["numa"] == 0             # CustomBool: only the number 1 is true
    assert config["memory"] == "2048" and isinstance(config["digest"], str)

    # ResizeVMDisk: PUT resize (disk, size) → a task since PVE 8
    upid = bpg.call("PUT", f"/nodes/{NODE}/qemu/{VMID}/resize", [("disk", "scsi0"), ("size", "10G")])
    assert bpg.wait(upid)["exitstatus"] == "OK"

    # StartVM: POST status/start with timeout, then WaitForVMStatus running
    assert bpg.wait(bpg.call("POST", f"/nodes/{NODE}/qemu/{VMID}/status/start", [("timeout", 1800)]))["exitstatus"] == "OK"
    status = _wait_status(bpg, "running")
    for field in ("cpus", "maxmem", "maxdisk", "pid", "vmid", "uptime", "agent"):
        assert type(status[field]) is int, field
    assert status["maxdisk"] == 10 << 30 and status["qmpstatus"] == "running"

    # vmRead: node from cluster resources, config, status, then findPoolForVM (list pools, get each)
    vms = bpg.call("GET", "/cluster/resources?type=vm")
    assert next(v for v in vms if v["vmid"] == VMID)["node"] == NODE
    config = bpg.call("GET", f"/nodes/{NODE}/qemu/{VMID}/config")
    assert "pool" not in config                                      # PoolID comes from the pools API
    pools = bpg.call("GET", "/pools")
    assert pools == [{"poolid": "prod", "comment": "managed by terraform"}]
    [pool] = bpg.call("GET", "/pools?poolid=prod")
    assert any(m["id"] == f"qemu/{VMID}" and m["type"] == "qemu" and m["node"] == NODE and m["vmid"] == VMID
               for m in pool["members"])

    # vmDelete: shutdown (forceStop) → stopped → DELETE with purge and destroy-unreferenced-disks
    upid = bpg.call("POST", f"/nodes/{NODE}/qemu/{VMID}/status/shutdown", [("forceStop", 1), ("timeout", 300)])
    assert bpg.wait(upid)["exitstatus"] == "OK"
    _wait_status(bpg, "stopped")
    upid = bpg.call("DELETE", f"/nodes/{NODE}/qemu/{VMID}?destroy-unreferenced-disks=1&purge=1")
    assert bpg.wait(upid)["exitstatus"] == "OK"
    gone = bpg.raw("GET", f"/nodes/{NODE}/qemu/{VMID}/config")
    assert gone.status_code == 500 and "does not exist" in gone.reason   # api.ErrResourceDoesNotExist
    assert bpg.call("GET", "/pools?poolid=prod")[0]["members"] == []
    assert ("GET", "/pools") in bpg.calls
