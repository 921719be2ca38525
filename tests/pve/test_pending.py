"""GET /pending read into current and pending values, against the simulator."""

from __future__ import annotations

from phoenix.pve.pending import parse_pending


def test_pending_keeps_current_and_pending_apart(client, create_vm):
    create_vm(client, 100, cores=2, vga="std")
    client.run_task("POST", "/nodes/pve/qemu/100/status/start")
    client.put("/nodes/pve/qemu/100/config", cores=4, delete="vga")      # pending on a running VM
    before = client.request_count
    config = parse_pending(client.get("/nodes/pve/qemu/100/pending"))
    assert client.request_count - before == 1
    assert str(config.current["cores"]) == "2" and str(config.pending["cores"]) == "4"
    assert config.deletes == {"vga"} and config.has_pending and config.pending_keys() == ["cores", "vga"]
    merged = client.get("/nodes/pve/qemu/100/config")
    assert {k: str(v) for k, v in config.merged().items()} == {k: str(v) for k, v in merged.items()}
    assert config.digest == merged["digest"] and config.current_config()["digest"] == merged["digest"]
    client.put("/nodes/pve/qemu/100/config", revert="cores,vga")
    assert not parse_pending(client.get("/nodes/pve/qemu/100/pending")).has_pending


def test_unknown_shapes_are_ignored():
    config = parse_pending([{"key": "cores", "value": 2}, {"nokey": 1}, "junk", {"key": "digest", "value": "abc"}])
    assert dict(config.current) == {"cores": 2} and config.digest == "abc" and not config.has_pending
    assert parse_pending({"not": "a list"}).current == {}
