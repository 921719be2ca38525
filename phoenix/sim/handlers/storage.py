"""Storage endpoints (pve-storage API2/Storage): config list, status, content, download-url, upload.

``download-url`` really fetches loopback http(s) URLs (tests serve images locally); any other URL
gets a small synthetic qcow2 image and says so in the task log — the simulator has no internet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import requests

from phoenix.sim.core import PVEError, Request, param_error, route
from phoenix.sim.handlers._vmutil import spawn
from phoenix.sim.model import images
from phoenix.sim.model.storage import split_volid

ISO_EXT_RE = re.compile(r"[^/]+\.(?:iso|img)$", re.IGNORECASE)
VZTMPL_EXT_RE = re.compile(r"[^/]+\.tar\.(?:gz|xz|zst|bz2)$", re.IGNORECASE)
IMPORT_RE = re.compile(r"[a-zA-Z0-9\-.+=_]+\.(?:ova|qcow2|raw|vmdk)$")
SYNTHETIC_SIZE = 3584 << 20


def _storage_of(req: Request) -> dict:
    cluster = req.sim.model
    cluster.require_node(req.node)
    return cluster.storage(req.path_params["storage"])


@route("GET", "/storage")
def storage_config_list(req: Request) -> list:
    with req.sim.mutex:
        storages = req.sim.model.storages
        result = []
        for sid, cfg in sorted(storages.items()):
            if req.params.get("type") and cfg["type"] != req.params["type"]:
                continue
            entry = {"storage": sid, **cfg}
            entry["digest"] = hashlib.sha1(repr(sorted(storages.items())).encode()).hexdigest()
            result.append(entry)
    return result


def _status_entry(req: Request, sid: str, node: str) -> dict:
    cluster = req.sim.model
    cfg = cluster.storage(sid)
    total, used = cluster.storage_usage(sid, node)
    return {"storage": sid, "type": cfg["type"], "content": cfg["content"], "active": 1, "enabled": 1,
            "shared": 1 if cfg.get("shared") else 0, "total": total, "used": used, "avail": total - used,
            "used_fraction": used / total if total else 0}


@route("GET", "/nodes/{node}/storage")
def node_storage_list(req: Request) -> list:
    wanted = set(filter(None, (req.params.get("content") or "").split(",")))
    with req.sim.mutex:
        cluster = req.sim.model
        cluster.require_node(req.node)
        result = []
        for sid in sorted(cluster.storages):
            if req.params.get("storage") and sid != req.params["storage"]:
                continue
            if wanted and not wanted & cluster.storage_content(sid):
                continue
            result.append(_status_entry(req, sid, req.node))
    return result


@route("GET", "/nodes/{node}/storage/{storage}/status")
def storage_status(req: Request) -> dict:
    with req.sim.mutex:
        _storage_of(req)
        entry = _status_entry(req, req.path_params["storage"], req.node)
    entry.pop("storage")
    return entry


@route("GET", "/nodes/{node}/storage/{storage}/content")
def content_list(req: Request) -> list:
    sid = req.path_params["storage"]
    with req.sim.mutex:
        _storage_of(req)
        cluster = req.sim.model
        entries = cluster.list_files(sid, req.node)
        for volume in cluster.volumes_of(sid, req.node):
            entry = {"volid": volume.volid, "content": "images", "format": volume.format, "size": volume.size,
                     "used": 0 if volume.parent else volume.size, "ctime": volume.ctime, "vmid": volume.vmid}
            if volume.parent:
                entry["parent"] = volume.parent.split(":", 1)[1].split("/")[-1] if "/" in volume.parent else volume.parent.split(":", 1)[1]
            entries.append(entry)
    if req.params.get("content"):
        entries = [e for e in entries if e["content"] == req.params["content"]]
    if req.params.get("vmid") is not None:
        entries = [e for e in entries if e.get("vmid") == int(req.params["vmid"])]
    return sorted(entries, key=lambda e: e["volid"])


@route("POST", "/nodes/{node}/storage/{storage}/content")
def content_alloc(req: Request) -> str:
    sid, vmid, name = req.path_params["storage"], int(req.params["vmid"]), req.params["filename"]
    match = re.fullmatch(r"(\d+)([MG]?)", str(req.params["size"]))
    kib = int(match.group(1)) * {"": 1, "M": 1024, "G": 1024 * 1024}[match.group(2)]
    with req.sim.mutex:
        _storage_of(req)
        cluster = req.sim.model
        if not re.fullmatch(rf"(vm|base)-{vmid}-[^/]+", name):
            raise PVEError(f"illegal name '{name}' - should be 'vm-{vmid}-*'\n")
        fmt = req.params.get("format")
        if name.endswith((".qcow2", ".raw", ".vmdk")):
            name, fmt = name.rsplit(".", 1)[0], fmt or name.rsplit(".", 1)[1]
        volume = cluster.alloc_volume(sid, req.node, vmid, kib * 1024, fmt=fmt, name=name)
        req.sim.save()
        return volume.volid


def _volid(req: Request) -> str:
    volume = req.path_params["volume"]
    return volume if ":" in volume else f"{req.path_params['storage']}:{volume}"


@route("GET", "/nodes/{node}/storage/{storage}/content/{volume}")
def content_info(req: Request) -> dict:
    volid = _volid(req)
    with req.sim.mutex:
        _storage_of(req)
        cluster = req.sim.model
        sid, volname = split_volid(volid)
        volume = cluster.volume(req.node, volid)
        if volume is not None:
            return {"format": volume.format, "size": volume.size, "used": volume.size,
                    "path": cluster.pve_path(sid, volname)}
        found = cluster.file_path(req.node, volid)
        if found is None or not found[0].is_file():
            raise PVEError(f"volume '{volid}' does not exist\n")
        size = found[0].stat().st_size
        return {"format": volname.rsplit(".", 1)[-1], "size": size, "used": size,
                "path": cluster.pve_path(sid, volname)}


@route("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}")
def content_delete(req: Request) -> str | None:
    volid = _volid(req)
    node = req.node
    with req.sim.mutex:
        _storage_of(req)
        cluster = req.sim.model
        volume = cluster.volume(node, volid)
        if volume is not None:
            owner = cluster.vms.get(volume.vmid)
            if owner is not None:
                raise PVEError(f"Cannot remove image, a guest with VMID '{volume.vmid}' exists!\n"
                               "You can delete the image from the guest's hardware pane\n")
        elif cluster.file_path(node, volid) is None or not cluster.file_path(node, volid)[0].exists():
            raise PVEError(f"volume '{volid}' does not exist\n")

    def work(task) -> None:
        sim = task.sim
        with sim.mutex:
            cluster = sim.model
            if cluster.volume(node, volid) is not None:
                cluster.free_volume(node, volid)
                sim.save()
                return
            path, _ = cluster.file_path(node, volid)
            path.unlink(missing_ok=True)
            Path(str(path) + images.SIDECAR_SUFFIX).unlink(missing_ok=True)
            task.log(f"removed volume '{volid}'")

    owner = volume.vmid if volume is not None else ""
    return spawn(req, "imgdel", f"{owner}@{req.path_params['storage']}", work)


def _check_target(req: Request, content: str, filename: str) -> tuple[Path, str]:
    """Checks shared by download-url and upload; returns the destination path and normalised name."""
    cluster = req.sim.model
    cfg = _storage_of(req)
    sid = req.path_params["storage"]
    if "path" not in cfg:
        raise PVEError(f"can't upload to storage type '{cfg['type']}', not a file based storage!\n")
    if content not in cluster.storage_content(sid):
        raise PVEError(f"storage '{sid}' is not configured for content-type '{content}'\n")
    name = re.sub(r"[^a-zA-Z0-9_.-]", "_", os.path.basename(filename))
    if content == "iso" and not ISO_EXT_RE.fullmatch(name):
        raise param_error({"filename": "wrong file extension"})
    if content == "vztmpl" and not VZTMPL_EXT_RE.fullmatch(name):
        raise param_error({"filename": "wrong file extension"})
    if content == "import" and not IMPORT_RE.fullmatch(name):
        raise param_error({"filename": "invalid filename or wrong extension"})
    folder = cluster.layout.content_dir(sid, req.node, bool(cfg.get("shared")), content)
    return folder / name, name


def _verify_checksum(task, path: Path, algorithm: str | None, expected: str | None) -> None:
    if not algorithm or not expected:
        return
    task.log("calculating checksum...")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    got = digest.hexdigest()
    if got.lower() != expected.strip().lower():
        raise PVEError(f"checksum mismatch: got '{got}' != expect '{expected}'\n")
    task.log("OK, checksum verified")


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _publish(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    dest.chmod(0o644)


@route("POST", "/nodes/{node}/storage/{storage}/download-url")
def download_url(req: Request) -> str:
    url, content = req.params["url"], req.params["content"]
    algorithm, expected = req.params.get("checksum-algorithm"), req.params.get("checksum")
    verify = bool(req.params.get("verify-certificates", 1))
    with req.sim.mutex:
        dest, name = _check_target(req, content, req.params["filename"])
    sid = req.path_params["storage"]
    pve_dest = req.sim.model.pve_path(sid, f"{content}/{name}")

    def work(task) -> None:
        task.log(f"downloading {url} to {pve_dest}")
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if _is_loopback(url):
                    with requests.get(url, stream=True, timeout=60, verify=verify) as resp:
                        if resp.status_code != 200:
                            raise PVEError(f"download failed: {resp.status_code} {resp.reason}\n")
                        for chunk in resp.iter_content(1 << 20):
                            out.write(chunk)
                    simulated = False
                else:
                    task.log("simulated download: the simulator has no internet access, "
                             "writing a synthetic qcow2 image instead")
                    out.write(images.synthetic_qcow2(SYNTHETIC_SIZE))
                    simulated = True
            task.sleep(1.0)
            if simulated and expected:
                task.log(f"simulated download: {algorithm} checksum accepted without verification")
            else:
                _verify_checksum(task, tmp, algorithm, expected)
            _publish(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        task.log(f"download of '{url}' to '{pve_dest}' finished")

    return spawn(req, "download", name, work)


@route("POST", "/nodes/{node}/storage/{storage}/upload")
def upload(req: Request) -> str:
    """imgcopy: the body was streamed to a temp file (phoenix/sim/upload_stream.py); move it next to
    its destination at once (the server removes a temp file nobody took), check, publish."""
    content = req.params["content"]
    upload_name, source = next(iter(req.files.values()), (None, None))
    if source is None:
        raise param_error({"filename": "missing file upload"})
    filename = req.params.get("filename") or upload_name
    algorithm, expected = req.params.get("checksum-algorithm"), req.params.get("checksum")
    with req.sim.mutex:
        dest, name = _check_target(req, content, filename)
    pve_dest = req.sim.model.pve_path(req.path_params["storage"], f"{content}/{name}")
    fd, staged_name = tempfile.mkstemp(prefix=".upload-", dir=dest.parent)
    staged = Path(staged_name)
    if isinstance(source, Path):
        os.close(fd)
        tmp_name = f"/var/tmp/{source.name}"
        os.replace(source, staged)
    else:                                   # bytes (a Request built in-process)
        tmp_name = f"/var/tmp/pveupload-{hashlib.md5(os.urandom(8)).hexdigest()}"
        with os.fdopen(fd, "wb") as out:
            out.write(source)

    def work(task) -> None:
        task.log(f"starting file import from: {tmp_name}")
        try:
            _verify_checksum(task, staged, algorithm, expected)
            task.log(f"target node: {req.node}")
            task.log(f"target file: {pve_dest}")
            task.log(f"file size is: {staged.stat().st_size}")
            task.sleep(0.5)
            _publish(staged, dest)
            task.log("finished file import successfully")
        finally:
            staged.unlink(missing_ok=True)

    try:
        return spawn(req, "imgcopy", "", work)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
