"""The VM settings beyond the original ones, through the real CLI against the simulator: declared,
applied, converged (``No changes.``), changed and removed like the old ones."""

from __future__ import annotations


def _one_vm(d: dict) -> None:
    d["vms"] = d["vms"][:1]


NICS = [{"ip": "10.0.0.101/24", "gw": "10.0.0.1", "ip6": "2001:db8::101/64", "gw6": "fe80::1"},
        {"bridge": "vmbr1", "vlan": 20, "firewall": True, "mtu": 9000, "ip": "dhcp", "ip6": "auto"}]


def _with_nics(nics: list[dict]):
    def edit(d: dict) -> None:
        _one_vm(d)
        d["vms"][0]["network_config"] = {}
        d["vms"][0]["networks"] = nics
    return edit


def test_several_nics_and_ipv6_apply_converge_and_a_dropped_nic_is_removed(phoenix_cli, proxmox):
    cli = phoenix_cli
    cli.edit(_with_nics(NICS))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert config["ipconfig0"] == "ip=10.0.0.101/24,gw=10.0.0.1,ip6=2001:db8::101/64,gw6=fe80::1"
    assert config["ipconfig1"] == "ip=dhcp,ip6=auto"
    net1 = dict(part.split("=", 1) for part in config["net1"].split(",")[1:])
    assert net1 == {"bridge": "vmbr1", "firewall": "1", "mtu": "9000", "tag": "20"}
    assert config["net1"].startswith("virtio=")                     # PVE picked a MAC
    result = cli("plan", "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes." in result.output, result.output

    # A MAC PVE picked is kept when the NIC changes; the running VM takes a NIC change live.
    mac = config["net1"].split(",")[0]
    cli.edit(_with_nics([NICS[0], {**NICS[1], "vlan": 30}]))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "net1" in result.output
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert config["net1"].split(",")[0] == mac and "tag=30" in config["net1"]

    # The second NIC leaves the file: netN and ipconfigN leave the VM (its cloud-init change is held back
    # on the running VM without --allow-reboot, as every cloud-init change is).
    cli.edit(_with_nics(NICS[:1]))
    result = cli("plan")
    assert "net1" in result.output and "ipconfig1" in result.output, result.output
    assert "ipconfig1: the guest applies cloud-init changes only at its next boot" in result.output, result.output
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert "net1" not in config and "ipconfig1" not in config and "net0" in config
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def _with_disks(disks: list[dict], **vm):
    def edit(d: dict) -> None:
        _one_vm(d)
        d["vms"][0].update(disks=disks, **vm)
    return edit


def _volumes(proxmox) -> set[str]:
    return {v["volid"] for v in proxmox.nodes("pve").storage("local-lvm").content.get()}


def test_extra_disks_grow_never_shrink_and_leave_as_pve_detaches_them(phoenix_cli, proxmox):
    cli = phoenix_cli
    disks = [{"interface": "scsi1", "size_gb": 4, "ssd": True, "discard": True},
             {"interface": "virtio1", "size_gb": 2, "iothread": True}]
    cli.edit(_with_disks(disks))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    vm = proxmox.nodes("pve").qemu(8001)
    config = vm.config.get()
    assert config["scsi1"].endswith(",discard=on,size=4G,ssd=1") and "iothread=1" in config["virtio1"]
    assert cli("plan", "--detailed-exitcode").exit_code == 0

    # Grow: a resize, live on the running VM, no config write.
    cli.edit(_with_disks([{**disks[0], "size_gb": 6}, disks[1]]))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "size=6G" in vm.config.get()["scsi1"]
    # Shrink: a plan error naming the disk, nothing done.
    cli.edit(_with_disks([{**disks[0], "size_gb": 3}, disks[1]]))
    result = cli("plan")
    assert result.exit_code == 1 and "scsi1 size_gb 3 is smaller than the current disk (6 GiB)" in result.output
    assert "Traceback" not in result.output
    # A changed option needs the next boot: held back on the running VM without --allow-reboot.
    cli.edit(_with_disks([{**disks[0], "size_gb": 6, "ssd": False}, disks[1]]))
    result = cli("plan")
    assert "scsi1: applying needs a reboot" in result.output, result.output

    # Dropped from the file: detached as PVE does (unusedN), the volume kept ...
    cli.edit(_with_disks([disks[1]]))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = vm.config.get()
    assert "scsi1" not in config and config["unused0"].startswith("local-lvm:vm-8001-disk-")
    kept = config["unused0"]
    assert kept in _volumes(proxmox)
    # ... and destroyed only when the file says so.
    virtio1 = config["virtio1"].split(",")[0]
    cli.edit(_with_disks([], removed_disks="delete"))
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = vm.config.get()
    assert "virtio1" not in config and virtio1 not in _volumes(proxmox)
    assert config["unused0"] == kept                                  # the earlier detached one stays
    assert cli("plan", "--detailed-exitcode").exit_code == 0


def test_hardware_and_boot_settings_apply_converge_and_respect_the_running_vm(phoenix_cli, proxmox):
    cli = phoenix_cli
    settings = {"cpu": "host", "sockets": 2, "balloon_mb": 2048, "onboot": True, "startup": {"order": 2, "up": 15},
                "description": "web tier", "machine": "q35", "bios": "ovmf", "scsihw": "virtio-scsi-single",
                "agent": {"fstrim_cloned_disks": True}}

    def edit(d: dict) -> None:
        _one_vm(d)
        d["vms"][0].update(settings)

    cli.edit(edit)
    result = cli("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert (config["cpu"], config["sockets"], config["balloon"], config["onboot"]) == ("host", 2, 2048, 1)
    assert config["startup"] == "order=2,up=15" and config["machine"] == "q35" and config["bios"] == "ovmf"
    assert config["efidisk0"].startswith("local-lvm:") and "efitype=4m" in config["efidisk0"]
    assert config["scsihw"] == "virtio-scsi-single" and "fstrim_cloned_disks=1" in config["agent"]
    assert config["description"].splitlines()[0] == "web tier"                   # the user's text ...
    assert config["description"].splitlines()[1].startswith("phoenix-owner: ")  # ... then the ownership marker
    assert cli("plan", "--detailed-exitcode").exit_code == 0

    # On the running VM: boot order and description change live, the CPU type waits for --allow-reboot.
    settings.update(startup={"order": 1}, description="web tier, rack 2", cpu="x86-64-v2-AES")
    cli.edit(edit)
    result = cli("plan")
    assert "cpu: applying needs a reboot" in result.output, result.output
    assert cli("apply", "--auto-approve").exit_code == 0
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert config["startup"] == "order=1" and config["description"].startswith("web tier, rack 2")
    assert config["cpu"] == "host"
    result = cli("apply", "--auto-approve", "--allow-reboot")
    assert result.exit_code == 0, result.output
    assert proxmox.nodes("pve").qemu(8001).config.get()["cpu"] == "x86-64-v2-AES"

    # Dropped from the file: removed from the VM (PVE's defaults apply again).
    for key in ("description", "onboot", "startup"):
        settings.pop(key)
    cli.edit(lambda d: (edit(d), [d["vms"][0].pop(k, None) for k in ("description", "onboot", "startup")]))
    assert cli("apply", "--auto-approve").exit_code == 0
    config = proxmox.nodes("pve").qemu(8001).config.get()
    assert not {"onboot", "startup"} & set(config), config
    assert config["description"].startswith("phoenix-owner: ")          # only the ownership marker stays
    assert cli("plan", "--detailed-exitcode").exit_code == 0
