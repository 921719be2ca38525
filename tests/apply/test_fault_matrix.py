"""The fault matrix: 19 kinds of PVE misbehaviour injected into a full apply of the example.

Transient kinds (gateway statuses, lock timeouts, ``VM is locked``, a task that failed on a lock)
are retried and the apply converges.  Permanent kinds (a plain 500, 400, 403, a task error) stop
only the VM that met them, with PVE's own words; the other VM completes, and once the fault is
gone a re-apply converges.  Which README sentence each row checks: "Retried: …" / "Everything
else is permanent …".
"""

from __future__ import annotations

import pytest

LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"

TRANSIENT = [
    {"endpoint": "GET /cluster/resources", "status": 596, "message": "Broken pipe"},
    {"endpoint": "GET /nodes/{node}/qemu/{vmid}/config", "status": 503, "message": "Service Unavailable"},
    {"endpoint": "POST /nodes/{node}/qemu", "status": 599, "message": "Too many redirections"},
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/template", "status": 500, "message": LOCK_TIMEOUT.format(vmid=8000)},
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/clone", "status": 502, "message": "Bad Gateway"},
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/clone", "status": 500, "message": LOCK_TIMEOUT.format(vmid=8000)},
    {"endpoint": "PUT /nodes/{node}/qemu/{vmid}/resize", "status": 500, "message": LOCK_TIMEOUT.format(vmid=8001)},
    {"endpoint": "PUT /nodes/{node}/qemu/{vmid}/config", "status": 500, "message": "VM is locked (clone)"},
    {"endpoint": "PUT /nodes/{node}/qemu/{vmid}/config", "status": 504, "message": "Gateway Timeout"},
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/status/start", "status": 503, "message": "Service Unavailable"},
    {"endpoint": "GET /nodes/{node}/tasks/{upid}/status", "status": 503, "message": "Service Unavailable"},
    {"task_type": "qmclone", "message": "clone failed: " + LOCK_TIMEOUT.format(vmid=8000)},
    {"task_type": "qmstart", "message": LOCK_TIMEOUT.format(vmid=8001)},
]

PERMANENT = [
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/clone", "status": 500, "message": "storage 'nfs-gone' does not exist"},
    {"endpoint": "PUT /nodes/{node}/qemu/{vmid}/config", "status": 400, "message": "Parameter verification failed."},
    {"endpoint": "POST /nodes/{node}/qemu/{vmid}/status/start", "status": 403,
     "message": "Permission check failed (/vms/8001, VM.PowerMgmt)"},
    {"task_type": "qmclone", "message": "clone failed: no space left on device"},
    {"task_type": "resize", "message": "disk 'scsi0' has no associated volume"},
    {"task_type": "qmstart", "message": "start failed: QEMU exited with code 1"},
]


def _id(fault: dict) -> str:
    where = fault.get("endpoint") or fault["task_type"]
    return f"{where} {fault.get('status', 'task')}".replace(" ", "_")


@pytest.mark.parametrize("fault", TRANSIENT, ids=[_id(f) for f in TRANSIENT])
def test_transient_faults_are_retried_to_convergence(fault, phoenix_cli, sim_control):
    sim_control.fault(count=2, **fault)
    result = phoenix_cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Resources: 3 added" in result.output
    assert phoenix_cli("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("fault", PERMANENT, ids=[_id(f) for f in PERMANENT])
def test_permanent_faults_stop_only_their_vm_with_pves_words(fault, phoenix_cli, sim_control):
    sim_control.fault(count=1, **fault)
    result = phoenix_cli("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert fault["message"] in result.output
    assert "finished with errors (1 failed)" in result.output
    assert result.output.count("Creation complete") == 2, result.output        # the template and the other VM
    assert "Traceback" not in result.output
    result = phoenix_cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert phoenix_cli("plan", "--detailed-exitcode").exit_code == 0
