"""``status/reboot`` (behaviors.md §18): a ``qmreboot`` task shuts the VM down, then — like qmeventd's
``qm cleanup`` on real PVE — a separate ``qmstart`` task (user root@pam) starts it again, which
applies pending changes and regenerates the cloud-init drive.  A reboot is how a running guest
gets a changed cloud-init seed."""

from __future__ import annotations

from phoenix.sim.core import PVEError, Request, route
from phoenix.sim.handlers._vmutil import spawn, start_vm, stop_vm, vm_of


@route("POST", "/nodes/{node}/qemu/{vmid}/status/reboot")
def status_reboot(req: Request) -> str:
    node, vmid = req.node, req.vmid
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.require_node(node)
        if vmid not in cluster.vms or cluster.vms[vmid].node != node:
            raise PVEError(f"unable to find configuration file for VM {vmid} on node '{node}'\n")
        vm = vm_of(req)
        if getattr(vm, "qmpstatus", None) in ("paused", "prelaunch", "suspended"):
            raise PVEError("VM is paused - cannot shutdown\n")
        if not vm.running:
            raise PVEError(f"VM {vmid} not running\n")

    def work(task) -> None:
        sim = task.sim
        with sim.mutex:
            if not sim.model.vm_on(node, vmid).running:
                return                                    # stopped meanwhile: nothing to do, task OK
        stop_vm(sim, task, node, vmid)
        sim.tasks.spawn(node, "qmstart", str(vmid), "root@pam",
                        lambda start: start_vm(start.sim, start, node, vmid))

    return spawn(req, "qmreboot", vmid, work)
