"""Extra disks: validation (one problem at its JSON path) and their desired form."""

from __future__ import annotations

import pytest

from phoenix.desired import ConfigError
from phoenix.desired.loader import parse_desired
from phoenix.diff.views import desired_view

from desired_helpers import HERE, native_doc


def test_disks_resolve_with_the_vms_storage():
    vm = parse_desired(native_doc(storage_pool="fast", disks=[
        {"interface": "scsi1", "size_gb": 10, "ssd": True, "discard": True},
        {"interface": "virtio2", "size_gb": 5, "storage": "local-lvm", "iothread": True}]), base_dir=HERE).vms[0]
    view = desired_view(vm, None, "fp")
    assert view["scsi1"] == {"size_gb": 10, "storage": "fast", "ssd": True, "discard": True}
    assert view["virtio2"] == {"size_gb": 5, "storage": "local-lvm", "iothread": True}
    assert vm.removed_disks == "detach"


@pytest.mark.parametrize("disks, path, words", [
    ([{"interface": "scsi0", "size_gb": 1}], "vms[0].disks[0].interface", "boot disk"),
    ([{"interface": "ide2", "size_gb": 1}], "vms[0].disks[0].interface", "not a disk slot"),
    ([{"interface": "virtio16", "size_gb": 1}], "vms[0].disks[0].interface", "not a disk slot"),
    ([{"interface": "scsi1\n", "size_gb": 1}], "vms[0].disks[0].interface", "control character"),
    ([{"interface": "scsi1", "size_gb": 0}], "vms[0].disks[0].size_gb", "greater than or equal to 1"),
    ([{"interface": "scsi1"}], "vms[0].disks[0].size_gb", "required"),
    ([{"interface": "virtio1", "size_gb": 1, "ssd": True}], "vms[0].disks[0]", "virtio"),
    ([{"interface": "sata1", "size_gb": 1, "iothread": True}], "vms[0].disks[0]", "iothread"),
    ([{"interface": "scsi1", "size_gb": 1, "storage": "bad storage"}], "vms[0].disks[0].storage", "storage"),
    ([{"interface": "scsi1", "size_gb": 1}, {"interface": "scsi1", "size_gb": 2}], "vms[0].disks[1].interface",
     "already used by vms[0].disks[0].interface"),
])
def test_bad_disks_are_one_problem_at_their_path(disks, path, words):
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(disks=disks), base_dir=HERE)
    problems = [(p.path, p.message) for p in info.value.problems]
    assert len(problems) == 1 and problems[0][0] == path and words in problems[0][1], problems


def test_removed_disks_takes_detach_or_delete():
    with pytest.raises(ConfigError) as info:
        parse_desired(native_doc(removed_disks="purge"), base_dir=HERE)
    assert info.value.problems[0].path == "vms[0].removed_disks"
