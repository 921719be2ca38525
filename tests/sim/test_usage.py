"""Storage usage from running totals (model/usage.py): what ``GET /nodes/{node}/storage`` reports
follows every volume and file change without scanning the storage on each request."""

from __future__ import annotations

import os
import time

from phoenix.sim.model import Cluster
from phoenix.sim.model.usage import RACY_NS, StorageUsage

GIB = 1 << 30


def _used(cluster: Cluster, sid: str, node: str = "pve1") -> int:
    return cluster.storage_usage(sid, node)[1]


def _scanned(cluster: Cluster, sid: str, node: str = "pve1") -> int:
    """The same figure the slow way: every volume and every listed file."""
    vol_node = cluster.vol_node(sid, node)
    volumes = sum(v.size for v in cluster.volumes.values() if v.storage == sid and v.node == vol_node and not v.parent)
    return volumes + sum(entry["size"] for entry in cluster.list_files(sid, node))


def test_volume_totals_follow_allocation_resize_rename_linked_clones_and_removal(tmp_path):
    cluster = Cluster.create(["pve1", "pve2"], tmp_path)
    assert _used(cluster, "local-lvm") == 0
    base = cluster.alloc_volume("local-lvm", "pve1", 9000, 2 * GIB, "raw")
    other_node = cluster.alloc_volume("local-lvm", "pve2", 101, 5 * GIB, "raw")
    assert _used(cluster, "local-lvm") == 2 * GIB and _used(cluster, "local-lvm", "pve2") == 5 * GIB
    base.size = 3 * GIB
    base = cluster.rename_volume(base, "base-9000-disk-0")
    clone = cluster.alloc_volume("local-lvm", "pve1", 100, 3 * GIB, "raw", parent=base)
    assert _used(cluster, "local-lvm") == 3 * GIB == _scanned(cluster, "local-lvm")     # a linked clone uses nothing
    cluster.free_volume("pve1", clone.volid)
    cluster.free_volume("pve2", other_node.volid)
    assert _used(cluster, "local-lvm") == 3 * GIB and _used(cluster, "local-lvm", "pve2") == 0
    assert _used(cluster, "local-lvm", "pve2") == _scanned(cluster, "local-lvm", "pve2")


def test_file_totals_follow_files_added_replaced_and_removed(tmp_path):
    cluster = Cluster.create(["pve1"], tmp_path)
    snippets = cluster.storage_root("local", "pve1") / "snippets"
    (snippets / "a.yaml").write_bytes(b"x" * 1000)
    assert _used(cluster, "local") == 1000
    temp = snippets / ".b.yaml.tmp"                          # hidden temp files are not volumes
    temp.write_bytes(b"y" * 500)
    assert _used(cluster, "local") == 1000
    os.replace(temp, snippets / "a.yaml")                    # replaced by rename, as every writer does
    assert _used(cluster, "local") == 500 == _scanned(cluster, "local")
    (snippets / "a.yaml").unlink()
    assert _used(cluster, "local") == 0


def test_a_directory_is_scanned_again_while_its_mtime_is_recent(tmp_path):
    usage = StorageUsage()
    folder = tmp_path / "iso"
    folder.mkdir()
    (folder / "one.iso").write_bytes(b"1" * 10)
    assert usage.folder_bytes(folder, lambda name: True) == 10
    # Rewritten in place within the same mtime tick: the directory does not change, but its mtime is
    # recent, so the sum is not trusted yet.
    (folder / "one.iso").write_bytes(b"1" * 20)
    assert usage.folder_bytes(folder, lambda name: True) == 20
    old = time.time_ns() - 10 * RACY_NS
    os.utime(folder, ns=(old, old))
    assert usage.folder_bytes(folder, lambda name: True) == 20
    (folder / "one.iso").write_bytes(b"1" * 30)              # in place, directory unchanged and old:
    assert usage.folder_bytes(folder, lambda name: True) == 20   # the cached sum (documented limit)
    (folder / "two.iso").write_bytes(b"2" * 5)               # the directory changes: scanned again
    assert usage.folder_bytes(folder, lambda name: True) == 35


def test_free_disk_names_come_from_the_index_per_storage_node_and_vmid(tmp_path):
    cluster = Cluster.create(["pve1", "pve2"], tmp_path)
    first = cluster.alloc_volume("local-lvm", "pve1", 100, GIB, "raw")
    cluster.alloc_volume("local-lvm", "pve1", 100, GIB, "raw")
    cluster.alloc_volume("local-lvm", "pve1", 1000, GIB, "raw")          # another VMID sharing the digits
    assert cluster.find_free_diskname("local-lvm", "pve1", 100) == "vm-100-disk-2"
    assert cluster.find_free_diskname("local-lvm", "pve2", 100) == "vm-100-disk-0"   # node-local storage
    cluster.rename_volume(first, "base-100-disk-0")                        # base names are taken too
    assert cluster.find_free_diskname("local-lvm", "pve1", 100) == "vm-100-disk-2"
    cluster.free_volume("pve1", "local-lvm:base-100-disk-0")
    assert cluster.find_free_diskname("local-lvm", "pve1", 100) == "vm-100-disk-0"
    cluster.alloc_volume("shared-nfs", "pve1", 100, GIB, "qcow2")
    assert cluster.find_free_diskname("shared-nfs", "pve2", 100) == "vm-100-disk-1"  # shared: one namespace
