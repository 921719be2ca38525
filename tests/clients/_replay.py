"""A recording HTTP client for replaying another client's call sequence against the simulator.

The replays in this folder were written from the public Go source of the Terraform providers (bpg's
terraform-provider-proxmox, Telmate's proxmox-api-go): the same paths, methods and form encodings,
and the same reading of the answers (``decode`` asserts the JSON types the Go structs need).  No code
of theirs is copied; the file:function each step mirrors is named next to it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests


class Replay:
    """``call(method, path, form)`` → the decoded ``data``; every call is kept in ``calls``."""

    def __init__(self, server, node: str = "pve"):
        self.base = f"{server.endpoint}/api2/json"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"PVEAPIToken={server.api_token}"
        self.verify = str(server.ca_file)
        self.node = node
        self.calls: list[tuple[str, str]] = []

    def raw(self, method: str, path: str, form: Any = None) -> requests.Response:
        """Go's url.Values encoding: form-urlencoded body for POST/PUT, query for GET/DELETE."""
        self.calls.append((method, path.split("?")[0]))
        body = None
        headers = {}
        if form is not None:
            body = "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.session.request(method, self.base + path, data=body, headers=headers, verify=self.verify,
                                    timeout=30)

    def call(self, method: str, path: str, form: Any = None) -> Any:
        response = self.raw(method, path, form)
        assert response.status_code == 200, (method, path, response.status_code, response.reason, response.text)
        return response.json()["data"]

    def wait(self, upid: str) -> dict:
        """Both providers poll ``/nodes/{node}/tasks/{upid}/status`` (node from the UPID) until it stopped."""
        assert isinstance(upid, str) and upid.startswith("UPID:") and upid.count(":") == 8, upid
        node = upid.split(":")[1]
        for _ in range(600):
            status = self.call("GET", f"/nodes/{node}/tasks/{quote(upid, safe='')}/status")
            if status["status"] == "stopped":
                assert isinstance(status["exitstatus"], str)
                return status
            time.sleep(0.05)
        raise AssertionError(f"task {upid} did not stop")


def drive_file(value: str) -> str:
    """bpg ``CustomStorageDevice.UnmarshalJSON``: the part without ``=`` is the volume (``file=`` too)."""
    volume = ""
    for part in value.split(","):
        pieces = part.strip().split("=")
        if len(pieces) == 1:
            volume = pieces[0]
        elif pieces[0] == "file":
            volume = pieces[1]
    return volume


def replay_with_template(server, vmid: int, name: str, *extra: tuple[str, Any]) -> Replay:
    """A Replay on ``server`` whose cluster already has template ``vmid`` (what both providers clone from)."""
    replay = Replay(server)
    upid = replay.call("POST", "/nodes/pve/qemu", [
        ("vmid", vmid), ("name", name), ("memory", 1024), ("scsi0", "local-lvm:2"), ("net0", "virtio,bridge=vmbr0"),
        ("agent", "1"), ("template", 1), *extra])
    assert replay.wait(upid)["exitstatus"] == "OK"
    return replay
