"""The HTTP calls of Telmate's provider through proxmox-api-go, replayed against the simulator (issue 10).

Written from proxmox-api-go's public Go source: ``Client.GetVersion`` (``Version.mapToSDK`` splits
``version`` on dots), ``CheckUserExistence`` (``/access/users?full=1``, ``userid``), ``getPermissionsRaw``
(``/access/permissions``; ``privilege.extract`` counts a privilege only when it is a JSON number),
``GetVmRefByName``/``GetVmInfo`` (``/cluster/resources?type=vm``: ``vmid`` number, ``node``, ``type``,
optional ``pool``), ``getNextID_Unsafe`` (``/cluster/nextid`` as a string for ``strconv.Atoi``),
``CloneQemuVm`` + ``WaitForCompletion`` (task ``exitstatus`` string, OK|WARNINGS), ``QemuGuest.Update``
(PUT config, then ``pendingChanges``/``pendingConfig`` over ``/pending``: ``cores``/``sockets`` read with
``.(float64)``), ``ResizeQemuDiskRaw`` (``+NG``), ``StatusChangeVm``, ``CreateQemuSnapshot`` (note the
trailing slash of ``/snapshot/``), ``DeleteVmParams`` (``purge``).  Parameters are ``url.Values``,
booleans sent as ``1``/``0``.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from ._replay import Replay, replay_with_template

NODE = "pve"
TEMPLATE = 9000
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f ops@example"


@pytest.fixture
def telmate(sim_server):
    replay = replay_with_template(sim_server, TEMPLATE, "ubuntu-tmpl", ("ide2", "local-lvm:cloudinit"))
    yield replay
    replay.session.close()


def _pending_changes(items: list[dict]) -> bool:
    """vmref.go ``pendingChanges``: an item with ``value`` and more than 2 keys, or without ``value`` and more than 1."""
    return any(len(item) > 2 if "value" in item else len(item) > 1 for item in items)


def _guest_ref(telmate: Replay, name: str) -> dict:
    """``GetVmRefByName``: every resource's ``vmid`` must be a JSON number (asserted ``.(float64)``)."""
    for vm in telmate.call("GET", "/cluster/resources?type=vm"):
        assert isinstance(vm["vmid"], int) and isinstance(vm["node"], str) and vm["type"] == "qemu"
        assert vm.get("pool") is None or isinstance(vm["pool"], str)
        if vm.get("name") == name:
            return vm
    raise AssertionError(f"vm '{name}' not found")


def test_telmate_provider_start_and_vm_lifecycle(telmate):
    # Provider configure: version, the user must exist, then the permission cache.
    version = telmate.call("GET", "/version")["version"]
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) >= (8, 0)
    users = telmate.call("GET", "/access/users?full=1")
    assert any(u["userid"] == "root@pam" for u in users)
    permissions = telmate.call("GET", "/access/permissions")
    assert all(type(flag) is int for privileges in permissions.values() for flag in privileges.values())
    assert permissions["/"]["VM.Allocate"] == 1 and permissions["/vms"]["VM.Config.Cloudinit"] == 1

    # Create by clone: template by name, next id, clone, wait, then read until the clone lock is gone.
    template = _guest_ref(telmate, "ubuntu-tmpl")
    newid = int(telmate.call("GET", "/cluster/nextid"))
    assert telmate.call("POST", "/pools", [("poolid", "tf")]) is None
    upid = telmate.call("POST", f"/nodes/{template['node']}/qemu/{TEMPLATE}/clone",
                        [("newid", newid), ("name", "web-1"), ("full", 1), ("pool", "tf")])
    assert telmate.wait(upid)["exitstatus"] == "OK"
    vm = _guest_ref(telmate, "web-1")
    assert vm["vmid"] == newid and vm["pool"] == "tf" and "lock" not in vm
    base = f"/nodes/{vm['node']}/qemu/{newid}"

    # QemuGuest.Update: PUT config, then the pending list decides whether a reboot is needed.
    sshkeys = quote(KEY, safe="")
    assert telmate.call("PUT", f"{base}/config", [
        ("cores", 2), ("sockets", 1), ("memory", 2048), ("onboot", 1), ("numa", 0), ("ciuser", "ubuntu"),
        ("ipconfig0", "ip=10.0.0.31/24,gw=10.0.0.1"), ("sshkeys", sshkeys), ("agent", "1"),
        ("scsihw", "virtio-scsi-pci")]) is None
    pending = telmate.call("GET", f"{base}/pending")
    assert not _pending_changes(pending)                          # stopped VM: applied at once
    config = {item["key"]: item["value"] for item in pending}
    assert type(config["cores"]) is int and type(config["sockets"]) is int and config["onboot"] == 1
    assert config["numa"] == 0 and config["memory"] == "2048"

    # ResizeQemuDiskRaw: PUT resize with a relative size.
    upid = telmate.call("PUT", f"{base}/resize", [("disk", "scsi0"), ("size", "+2G")])
    assert telmate.wait(upid)["exitstatus"] == "OK"

    # StatusChangeVm start; a change while running stays pending and is typed like /config.
    assert telmate.wait(telmate.call("POST", f"{base}/status/start"))["exitstatus"] == "OK"
    assert telmate.call("GET", f"{base}/status/current")["status"] == "running"
    assert telmate.call("PUT", f"{base}/config", [("cores", 4)]) is None
    pending = {item["key"]: item for item in telmate.call("GET", f"{base}/pending")}
    assert pending["cores"] == {"key": "cores", "value": 2, "pending": 4}
    assert _pending_changes(list(pending.values()))

    # CreateQemuSnapshot posts to ".../snapshot/" (trailing slash), ListQemuSnapshot reads it back.
    assert telmate.wait(telmate.call("POST", f"{base}/snapshot/", [("snapname", "before")]))["exitstatus"] == "OK"
    assert [s["name"] for s in telmate.call("GET", f"{base}/snapshot/")] == ["before", "current"]

    # Destroy: stop, then DeleteVmParams with purge.
    assert telmate.wait(telmate.call("POST", f"{base}/status/stop"))["exitstatus"] == "OK"
    assert telmate.wait(telmate.call("DELETE", f"{base}?purge=1"))["exitstatus"] == "OK"
    assert all(v["vmid"] != newid for v in telmate.call("GET", "/cluster/resources?type=vm"))
