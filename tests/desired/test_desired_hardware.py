"""CPU, sockets, balloon, boot order, description, machine, firmware, SCSI controller and agent options:
validation (one problem at its JSON path) and their desired form."""

from __future__ import annotations

import pytest

from phoenix.desired import ConfigError
from phoenix.desired.loader import parse_desired
from phoenix.diff.views import desired_view

from desired_helpers import HERE, native_doc


def _view(**vm) -> dict:
    return desired_view(parse_desired(native_doc(**vm), base_dir=HERE).vms[0], None, "fp")


def test_undeclared_settings_are_not_in_the_view():
    view = _view()
    assert not {"cpu", "sockets", "balloon_mb", "onboot", "startup", "description", "machine", "bios", "efidisk0",
                "scsihw"} & set(view)
    assert view["agent"] is True


def test_declared_settings_in_normal_form():
    view = _view(cpu="host", sockets=2, balloon_mb=1024, onboot=True, startup={"order": 3, "up": 30},
                 description="web tier\nowner: ops", machine="q35", bios="ovmf", scsihw="virtio-scsi-single",
                 agent={"fstrim_cloned_disks": True}, storage_pool="local-lvm")
    assert view["cpu"] == "host" and view["sockets"] == 2 and view["balloon_mb"] == 1024
    assert view["onboot"] is True and view["startup"] == {"order": 3, "up": 30}
    assert view["description"] == "web tier\nowner: ops" and view["machine"] == "q35"
    assert view["bios"] == "ovmf" and view["efidisk0"] == {"storage": "local-lvm", "efitype": "4m"}
    assert view["agent"] == {"freeze-fs": True, "fstrim_cloned_disks": True, "type": "virtio"}


def test_a_vm_inherits_its_templates_firmware():
    data = native_doc()
    data["templates"][0].update(bios="ovmf", machine="q35")
    vm = parse_desired(data, base_dir=HERE).vms[0]
    assert vm.bios == "ovmf" and vm.machine == "q35"


@pytest.mark.parametrize("vm, path, words", [
    ({"cpu": "host\n"}, "vms[0].cpu", "control character"),
    ({"cpu": "host,flags=+aes"}, "vms[0].cpu", "CPU type"),
    ({"sockets": 0}, "vms[0].sockets", "greater than or equal to 1"),
    ({"balloon_mb": 9000, "memory_mb": 4096}, "vms[0].balloon_mb", "more than the VM's memory_mb (4096)"),
    ({"startup": {"order": -1}}, "vms[0].startup.order", "greater than or equal to 0"),
    ({"startup": {"delay": 3}}, "vms[0].startup.delay", "unknown key"),
    ({"description": "x\nphoenix-owner: me vmid=8001"}, "vms[0].description", "reserved"),
    ({"description": "bell\x07"}, "vms[0].description", "control character"),
    ({"description": "x" * 8001}, "vms[0].description", "8000 bytes"),
    ({"machine": "pc"}, "vms[0].machine", "q35"),
    ({"bios": "uefi"}, "vms[0].bios", "ovmf"),
    ({"scsihw": "virtio"}, "vms[0].scsihw", "virtio-scsi-pci"),
    ({"agent": {"type": "usb"}}, "vms[0].agent.type", "isa"),
    ({"onboot": "yes"}, "vms[0].onboot", "true or false"),
])
def test_bad_settings_are_one_problem_at_their_path(vm, path, words):
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(**vm), base_dir=HERE)
    problems = [(p.path, p.message) for p in info.value.problems]
    assert len(problems) == 1 and problems[0][0] == path and words in problems[0][1], problems


@pytest.mark.parametrize("text", ["line\x85next", "bad\ud800", "nul\x00"])
def test_description_keeps_newlines_but_refuses_other_control_characters(text):
    """A description is multi-line text: newline and tab pass, C1, lone surrogates and NUL do not."""
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(description=text), base_dir=HERE)
    problems = [(p.path, p.message) for p in info.value.problems]
    assert [path for path, _ in problems] == ["vms[0].description"] and "control character" in problems[0][1], problems
