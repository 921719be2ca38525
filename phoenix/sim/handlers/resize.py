"""``PUT .../resize``: a ``resize`` task since qemu-server 8.0.2; every check happens inside the worker."""

from __future__ import annotations

import re

from phoenix.sim import propstr
from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers._vmutil import assert_root_for_skiplock, check_lock, spawn, vm_of


@route("PUT", "/nodes/{node}/qemu/{vmid}/resize")
def resize_vm(req: Request) -> str:
    skiplock = assert_root_for_skiplock(req)
    node, vmid = req.node, req.vmid
    disk, size_text, digest = req.params["disk"], str(req.params["size"]), req.params.get("digest")
    with req.sim.mutex:
        vm_of(req)

    def work(task) -> None:
        sim = task.sim
        with sim.locks.vm(vmid):
            with sim.mutex:
                cluster = sim.model
                vm = cluster.vm_on(node, vmid)
                if digest and digest != vm.digest:
                    raise PVEError("checksum mismatch (file change by other user?)\n")
                check_lock(vm, skiplock)
                value = vm.conf.get(disk)
                if value is None:
                    raise PVEError(f"disk '{disk}' does not exist\n")
                drive = propstr.parse_drive(value)
                volid = drive.get("file", "")
                if not volid or volid == "none":
                    raise PVEError(f"disk '{disk}' has no associated volume\n")
                if drive.get("media") == "cdrom":
                    raise PVEError("you can't resize a cdrom\n")
                volume = cluster.volume(node, volid)
                if volume is None:
                    raise PVEError(f"Could not determine current size of volume '{volid}'\n")
                match = re.fullmatch(r"(\+)?(\d+(?:\.\d+)?)([KMGT]?)", size_text)
                if not match:
                    raise PVEError(f"invalid size '{size_text}'\n")
                amount = propstr.parse_size(match.group(2) + match.group(3))
                new_size = int(volume.size + amount if match.group(1) else amount)
                if new_size < volume.size:
                    raise PVEError("shrinking disks is not supported\n")
                if new_size == volume.size:
                    return
                task.log("Image resized.")
            task.sleep(0.5)
            with sim.mutex:
                cluster = sim.model
                vm = cluster.vm_on(node, vmid)
                volume = cluster.volume(node, volid)
                volume.size = new_size
                drive = propstr.parse_drive(vm.conf[disk])
                drive["size"] = propstr.format_size(new_size)
                vm.conf[disk] = propstr.print_drive(drive)
                sim.save()

    return spawn(req, "resize", vmid, work)
