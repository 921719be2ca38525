"""VM config endpoints: ``GET/POST/PUT .../config`` and ``GET .../pending`` (qemu-server ``update_vm_api``).

The synchronous part (checks, digest, lock, new disks, writing ``[PENDING]``) runs in the request
as in PVE; applying (stopped VM) or hot-plugging (running VM) is the ``qmconfig`` worker for
POST and inline for PUT.
"""

from __future__ import annotations

import re

from phoenix.sim.core import PVEError, Request, param_error, route
from phoenix.sim.handlers._vmutil import assert_root_for_skiplock, check_lock, spawn, validate_sshkeys, vm_of
from phoenix.sim.handlers.qemu import with_mac
from phoenix.sim.model import disks
from phoenix.sim.model.pending import apply_pending, cleanup_pending, drive_removed, hotplug_pending
from phoenix.sim.model.shacrypt import encrypt_pw, is_crypted
from phoenix.sim.model.vm import MASKED_PASSWORD, is_drive_key, typed_config

UPDATE_ONLY = {"background_delay", "delete", "digest", "force", "import-working-storage", "node", "revert",
               "skiplock", "vmid"}


@route("GET", "/nodes/{node}/qemu/{vmid}/config")
def get_config(req: Request) -> dict:
    if req.params.get("snapshot"):
        name = req.params["snapshot"]
        with req.sim.mutex:
            vm = vm_of(req)
            if name not in vm.snapshots:
                raise PVEError(f"snapshot '{name}' does not exist\n")
            section, digest = dict(vm.snapshots[name]), vm.digest
        return {**typed_config(section), "digest": digest}
    with req.sim.mutex:
        vm = vm_of(req)
        conf = dict(vm.conf) if req.params.get("current") else vm.merged_conf()
        digest = vm.digest
    if "cipassword" in conf:
        conf["cipassword"] = MASKED_PASSWORD
    result = dict(vm.memo("_typed_config", (conf,), lambda snapshot: typed_config(dict(snapshot[0]))))
    result["digest"] = digest
    return result


@route("GET", "/nodes/{node}/qemu/{vmid}/pending")
def get_pending(req: Request) -> list:
    with req.sim.mutex:
        vm = vm_of(req)
        conf, pending, deletes = dict(vm.conf), dict(vm.pending), vm.pending_deletes()
        conf["digest"] = vm.digest
    pending.pop("delete", None)
    conf, pending = typed_config(conf), typed_config(pending)   # the same check_type parse as GET /config
    if "cipassword" in conf:
        conf["cipassword"] = MASKED_PASSWORD
    if "cipassword" in pending:
        pending["cipassword"] = MASKED_PASSWORD + " "             # Qemu.pm L1913-1915: with a trailing space
    if not pending and not deletes:                             # a converged VM: what the loop below gives
        return [{"key": key, "value": value} for key, value in sorted(conf.items())]
    return _pending_items(conf, pending, deletes)


def _pending_items(conf: dict, pending: dict, deletes: dict[str, bool]) -> list:
    """One entry per key of the current config, the pending section or the pending deletions."""
    result = []
    for key in sorted(set(conf) | set(pending) | set(deletes)):
        item: dict = {"key": key}
        if key in conf:
            item["value"] = conf[key]
        if key in pending:
            item["pending"] = pending[key]
        if key in deletes:
            item["delete"] = 2 if deletes[key] or key not in conf else 1
        result.append(item)
    return result


def _split_list(text: str | None) -> list[str]:
    return [item for item in re.split(r"[,;\s]+", text or "") if item]


def _write_pending(req: Request) -> bool:
    """The synchronous part of update_vm_api; returns whether there is anything to apply."""
    params = {k: v for k, v in req.params.items() if k not in UPDATE_ONLY}
    deletes = _split_list(req.params.get("delete"))
    reverts = _split_list(req.params.get("revert"))
    force = bool(req.params.get("force"))
    skiplock = assert_root_for_skiplock(req)
    if not params and not deletes and not reverts:
        raise PVEError("no options specified\n")
    for key in deletes:
        if key in params:
            raise param_error({"delete": f"you can't use '-{key}' and -delete {key}' at the same time"})
        if key in reverts:
            raise param_error({"delete": f"you can't use '-delete {key}' and '-revert {key}' at the same time"})
    for key in reverts:
        if key in params:
            raise param_error({"revert": f"you can't use '-{key}' and '-revert {key}' at the same time"})
    if params.get("sshkeys") is not None:
        validate_sshkeys(params["sshkeys"])
    vm = vm_of(req)
    cluster = req.sim.model
    digest = req.params.get("digest")
    if digest and digest != vm.digest:
        raise PVEError("checksum mismatch (file change by other user?)\n")
    check_lock(vm, skiplock)
    merged = vm.merged_conf()
    for key, value in sorted(params.items()):
        if is_drive_key(key):
            disks.check_drive(cluster, req.node, key, str(value), None, req.user, {**merged, **{key: str(value)}})
    for key in reverts:
        vm.pending.pop(key, None)
        pending_deletes = vm.pending_deletes()
        pending_deletes.pop(key, None)
        vm.set_pending_deletes(pending_deletes)
    pending_deletes = vm.pending_deletes()
    for key in deletes:
        if key not in vm.conf and key not in vm.pending:
            continue
        if key == "cipassword":
            vm.conf.pop(key, None)
            continue
        if key.startswith("unused") and key in vm.conf:   # update_vm_api frees it at once, running or not
            drive_removed(cluster, vm, key, vm.conf.pop(key))
            continue
        vm.pending.pop(key, None)
        if key in vm.conf:
            pending_deletes[key] = force
    vm.set_pending_deletes(pending_deletes)
    allocated: list[str] = []
    for key, value in sorted(params.items()):
        value = str(value)
        if key == "cipassword":
            ostype = merged.get("ostype", "other")
            vm.conf[key] = value if is_crypted(value) or ostype.startswith("w") else encrypt_pw(value)
            continue
        if is_drive_key(key):
            value = disks.create_drive(cluster, req.node, vm.vmid, key, value, None, allocated)
        elif re.fullmatch(r"net\d+", key):
            value = with_mac(cluster, value)
        vm.pending[key] = value
        pending_deletes.pop(key, None)
    vm.set_pending_deletes(pending_deletes)
    cleanup_pending(vm)
    req.sim.save()
    return bool(vm.pending)


def _apply(sim, node: str, vmid: int) -> None:
    with sim.mutex:
        cluster = sim.model
        vm = cluster.vm_on(node, vmid)
        if vm.running:
            hotplug_pending(cluster, vm)
        else:
            apply_pending(cluster, vm)
        sim.save()


def _early_lock_check(req: Request) -> None:
    """The config lock is checked before the flock is taken, so ``lock: clone`` fails at once; the
    root-only ``skiplock`` check comes first of all (update_vm_api, Qemu.pm L2092)."""
    assert_root_for_skiplock(req)
    with req.sim.mutex:
        check_lock(vm_of(req), bool(req.params.get("skiplock")) and req.user == "root@pam")


@route("POST", "/nodes/{node}/qemu/{vmid}/config")
def update_config_async(req: Request) -> str | None:
    _early_lock_check(req)
    with req.sim.locks.vm(req.vmid), req.sim.mutex:
        _write_pending(req)
    node, vmid = req.node, req.vmid

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid):
            with sim.mutex:
                vm = sim.model.vm_on(node, vmid)
                check_lock(vm, bool(req.params.get("skiplock")))
                for key, value in sorted(vm.pending.items()):
                    if key != "delete":
                        task.log(f"update VM {vmid}: -{key} {value if key != 'cipassword' else '<hidden>'}")
            task.sleep(0.2)
            _apply(sim, node, vmid)

    upid = spawn(req, "qmconfig", vmid, work)
    if req.params.get("background_delay"):
        task = req.sim.tasks.get(upid)
        if task is not None and task.done.wait(float(req.params["background_delay"])):
            if task.exitstatus == "OK":
                return None
            raise PVEError(f"failed to update VM {vmid}: {task.exitstatus}\n")
    return upid


@route("PUT", "/nodes/{node}/qemu/{vmid}/config")
def update_config_sync(req: Request) -> None:
    _early_lock_check(req)
    with req.sim.locks.vm(req.vmid):
        with req.sim.mutex:
            _write_pending(req)
        _apply(req.sim, req.node, req.vmid)
    return None


