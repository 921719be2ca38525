"""Cloud-init endpoints: ``GET/PUT .../cloudinit`` and ``GET .../cloudinit/dump`` (qemu-server API2/Qemu.pm)."""

from __future__ import annotations

from phoenix.sim.core import Request, route
from phoenix.sim.handlers._vmutil import check_lock, regenerate_cloudinit, vm_of
from phoenix.sim.model import cloudinit
from phoenix.sim.model.vm import CLOUDINIT_OPTIONS, MASKED_PASSWORD

LISTED_OPTIONS = tuple(CLOUDINIT_OPTIONS) + ("name",)


@route("GET", "/nodes/{node}/qemu/{vmid}/cloudinit")
def cloudinit_pending(req: Request) -> list:
    """Current cloud-init values against those the drive was generated from (``[special:cloudinit]``)."""
    with req.sim.mutex:
        vm = vm_of(req)
        conf, recorded = dict(vm.conf), dict(vm.cloudinit)
    if "cipassword" in conf:
        conf["cipassword"] = MASKED_PASSWORD
    if "cipassword" in recorded:
        recorded["cipassword"] = MASKED_PASSWORD
    added = [k for k in (recorded.pop("added", "") or "").split(",") if k]
    result = [{"key": key, "pending": conf[key]} for key in added if key in conf]
    for key in LISTED_OPTIONS:
        if not conf.get(key) or key in added:
            continue
        item = {"key": key}
        if recorded.get(key):
            item["value"], item["pending"] = recorded[key], conf[key]
        else:
            item["value"] = conf[key]
        result.append(item)
    for key in recorded:
        if not conf.get(key):
            result.append({"key": key, "delete": 1})
    return result


@route("PUT", "/nodes/{node}/qemu/{vmid}/cloudinit")
def cloudinit_update(req: Request) -> None:
    """Regenerate the drive now (fails like a start would on a missing cicustom snippet)."""
    with req.sim.locks.vm(req.vmid), req.sim.mutex:
        vm = vm_of(req)
        check_lock(vm)
        regenerate_cloudinit(req.sim.model, vm)
        req.sim.save()
    return None


@route("GET", "/nodes/{node}/qemu/{vmid}/cloudinit/dump")
def cloudinit_dump(req: Request) -> str:
    with req.sim.mutex:
        vm = vm_of(req)
        conf = dict(vm.conf)
    return cloudinit.dump(conf, vm.vmid, req.params["type"])
