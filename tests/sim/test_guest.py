"""The simulated guest follows the cloud-init seed it booted with, runs phoenix's feature runner, and
answers get-host-name, network-get-interfaces, file-read, exec and exec-status like PVE; status/reboot."""

from __future__ import annotations

import hashlib

import pytest
import yaml
from proxmoxer import ResourceException

from phoenix.guest.runner import (CLOUD_INIT_RESULT, INSTANCE_ID_PATH, RUNNER_PATH, STATUS_PATH,
                                  feature_script_path, parse_cloud_init_result, parse_status, runner_script)
from phoenix.sim.model.images import synthetic_qcow2

from ._tasks import run

NODE = "pve"


def user_data(hostname: str, features: list[str]) -> str:
    files = [{"path": RUNNER_PATH, "permissions": "0755", "content": runner_script()}]
    files += [{"path": feature_script_path(n), "permissions": "0755", "content": f"#!/bin/bash\necho {n}\n"}
              for n in features]
    return "#cloud-config\n" + yaml.safe_dump({
        "hostname": hostname, "write_files": files,
        "runcmd": [["systemctl", "start", "qemu-guest-agent"], [RUNNER_PATH, *features]]})


@pytest.fixture
def vm(proxmox, sim_server):
    """VM 100: agent image, cloud-init drive, user-data snippet with the runner and two features, running."""
    root = sim_server.sim.storage_dir("local")
    (root / "import").mkdir(parents=True, exist_ok=True)
    (root / "import" / "agent.qcow2").write_bytes(synthetic_qcow2(1 << 30, with_agent=True))
    (root / "snippets").mkdir(parents=True, exist_ok=True)
    (root / "snippets" / "u100.yaml").write_text(user_data("guest-one", ["base", "docker"]))
    run(proxmox, proxmox.nodes(NODE).qemu.post(
        vmid=100, name="vm-100", agent="enabled=1", net0="virtio,bridge=vmbr0", ide2="local-lvm:cloudinit",
        ipconfig0="ip=10.0.0.101/24,gw=10.0.0.1", cicustom="user=local:snippets/u100.yaml",
        scsi0="local-lvm:0,import-from=local:import/agent.qcow2", start=1))
    return proxmox.nodes(NODE).qemu(100)


def read(vm, path: str) -> str:
    return vm.agent("file-read").get(file=path)["content"]


def ipv4(vm, name: str = "eth0") -> list[str]:
    nic = next(i for i in vm.agent("network-get-interfaces").get()["result"] if i["name"] == name)
    return [f"{a['ip-address']}/{a['prefix']}" for a in nic["ip-addresses"] if a["ip-address-type"] == "ipv4"]


def error_of(call) -> tuple[int, str]:
    with pytest.raises(ResourceException) as info:
        call()
    return info.value.status_code, info.value.content


def test_guest_reports_what_its_seed_says(vm, sim_server):
    assert vm.agent("get-host-name").get() == {"result": {"host-name": "guest-one"}}
    assert ipv4(vm) == ["10.0.0.101/24"]
    mac = vm.config.get()["net0"].split(",")[0].split("=")[1].lower()
    eth0 = next(i for i in vm.agent("network-get-interfaces").get()["result"] if i["name"] == "eth0")
    assert eth0["hardware-address"] == mac
    drive = sim_server.sim.model.vms[100].ci_generated
    instance_id = hashlib.sha1((drive["user"] + drive["network"]).encode()).hexdigest()
    assert read(vm, INSTANCE_ID_PATH) == instance_id + "\n"
    status = parse_status(read(vm, STATUS_PATH))
    assert status.done and status.exit_code == 0 and status.instance_id == instance_id
    assert [(f.name, f.exit_code, f.log_tail) for f in status.features] == [
        ("base", 0, ("phoenix feature base: done",)), ("docker", 0, ("phoenix feature docker: done",))]
    assert parse_cloud_init_result(read(vm, CLOUD_INIT_RESULT)) == []
    assert read(vm, feature_script_path("docker")) == "#!/bin/bash\necho docker\n"
    assert read(vm, "/var/log/phoenix/feature-base.log") == "phoenix feature base: done\n"


def test_changed_ipconfig_shows_only_after_a_reboot(vm, proxmox, sim_server):
    before = parse_status(read(vm, STATUS_PATH)).instance_id
    vm.config.put(ipconfig0="ip=10.0.0.111/24,gw=10.0.0.1")
    assert ipv4(vm) == ["10.0.0.101/24"]                           # the guest still runs the old seed
    upid = vm.status.reboot.post()
    assert run(proxmox, upid)["exitstatus"] == "OK" and ":qmreboot:100:" in upid
    sim_server.sim.tasks.wait_idle()
    starts = [t for t in proxmox.nodes(NODE).tasks.get(typefilter="qmstart") if t["user"] == "root@pam"]
    assert starts and starts[0]["status"] == "OK"                  # qm cleanup's own start task
    assert vm.status.current.get()["status"] == "running"
    assert ipv4(vm) == ["10.0.0.111/24"]
    status = parse_status(read(vm, STATUS_PATH))
    assert status.instance_id != before and status.instance_id == read(vm, INSTANCE_ID_PATH).strip()
    assert status.done and not status.failed                       # the runner ran again for the new instance


def test_failing_feature_fault_and_rerun_through_exec(vm, proxmox, sim_server, sim_control):
    sim_control.fault(feature="base", vmid=100, exit_code=6,
                      log=["fetching", "curl: (6) Could not resolve host: download.docker.com"])
    vm.config.put(ipconfig0="ip=10.0.0.102/24,gw=10.0.0.1")       # a new seed, so cloud-init runs again
    run(proxmox, vm.status.reboot.post())
    sim_server.sim.tasks.wait_idle()
    status = parse_status(read(vm, STATUS_PATH))
    assert status.done and status.exit_code == 1
    (failed,) = status.failed
    assert (failed.name, failed.exit_code, failed.last_line) == (
        "base", 6, "curl: (6) Could not resolve host: download.docker.com")
    assert status.features[1].exit_code == 0                       # the next feature still ran
    assert parse_cloud_init_result(read(vm, CLOUD_INIT_RESULT))    # cloud-init status: error
    pid = vm.agent.exec.post(command=[RUNNER_PATH, "base", "docker"])["pid"]
    result = vm.agent("exec-status").get(pid=pid)
    assert result["exited"] == 1 and result["exitcode"] == 0 and "2 of 2 features succeeded" in result["out-data"]
    assert not parse_status(read(vm, STATUS_PATH)).failed
    assert error_of(lambda: vm.agent("exec-status").get(pid=pid)) == (500, "Agent error: Invalid parameter 'pid'")


def test_same_seed_reboot_runs_nothing_again(vm, proxmox, sim_server, sim_control):
    before = read(vm, STATUS_PATH)
    sim_control.fault(feature="docker", exit_code=3)
    run(proxmox, vm.status.reboot.post())
    sim_server.sim.tasks.wait_idle()
    assert read(vm, STATUS_PATH) == before                        # runcmd is per instance
    assert sim_control.session.get(sim_control._url("faults"), verify=sim_control.verify).json()["features"]


def test_agent_command_errors(vm, proxmox):
    with pytest.raises(ResourceException) as info:
        vm.agent.exec.post()                                      # 9.x schema: command is not optional
    assert info.value.status_code == 400 and "command" in info.value.errors
    code, text = error_of(lambda: vm.agent.exec.post(command="no-such-tool"))
    assert code == 500 and text.startswith("Agent error: Guest agent command failed") and "no-such-tool" in text
    assert error_of(lambda: read(vm, "/etc/none")) == (
        500, "Agent error: failed to open file '/etc/none' (mode: 'r'): No such file or directory")
    pid = vm.agent.exec.post(command=["cat", "/etc/hostname"])["pid"]
    assert vm.agent("exec-status").get(pid=pid) == {"exited": 1, "exitcode": 0, "out-data": "guest-one\n"}
    part = vm.agent("file-read").get(file="/etc/hostname", offset=2, count=3)
    assert part == {"content": "est", "bytes-read": 3, "truncated": 1}
    run(proxmox, vm.status.stop.post())
    assert error_of(lambda: vm.agent("get-host-name").get()) == (500, "VM 100 is not running")
    assert error_of(lambda: vm.status.reboot.post()) == (500, "VM 100 not running")
    assert error_of(lambda: proxmox.nodes(NODE).qemu(999).status.reboot.post()) == (
        500, "unable to find configuration file for VM 999 on node 'pve'")


def test_power_off_keeps_the_files_on_disk(vm, proxmox):
    status = read(vm, STATUS_PATH)
    run(proxmox, vm.status.stop.post())
    run(proxmox, vm.status.start.post())
    assert read(vm, STATUS_PATH) == status and read(vm, CLOUD_INIT_RESULT)
