"""``iso`` backend: no SSH, no snippet — a NoCloud ``cidata`` ISO uploaded as ``iso`` content.

For clusters phoenix cannot reach over SSH: the VM's user-data, meta-data and network-config go
into an ISO 9660 image labelled ``cidata`` (Rock Ridge + Joliet names, as cloud-init's NoCloud
datasource reads them), uploaded with the API's ``upload`` and attached as a CD-ROM in place of
PVE's own cloud-init drive (two ``cidata`` media would make the datasource ambiguous).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pycdlib

from phoenix.errors import PhoenixError
from phoenix.pve import propstr
from phoenix.snippets.base import AllowedContent, check_name, volid_for

__all__ = ["IsoSnippets", "build_cidata_iso", "read_cidata_iso", "attach_cidata", "CIDATA_DRIVE"]

CIDATA_DRIVE = "ide3"
_FILES = (("user-data", "USERDATA.;1"), ("meta-data", "METADATA.;1"), ("network-config", "NETWORKC.;1"),
          ("vendor-data", "VENDORDA.;1"))


def build_cidata_iso(user_data: str | bytes, meta_data: str | bytes, network_config: str | bytes | None = None) -> bytes:
    """The NoCloud seed ISO's bytes (volume label ``cidata``)."""
    documents = {"user-data": user_data, "meta-data": meta_data}
    if network_config is not None:
        documents["network-config"] = network_config
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for rr_name, iso_name in _FILES:
        if rr_name not in documents:
            continue
        raw = documents[rr_name]
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        iso.add_fp(io.BytesIO(data), len(data), f"/{iso_name}", rr_name=rr_name, joliet_path=f"/{rr_name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_cidata_iso(data: bytes) -> dict[str, bytes]:
    """The documents in a seed ISO by their Rock Ridge names, plus ``__label__`` (the volume id)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        found: dict[str, bytes] = {"__label__": iso.pvd.volume_identifier.decode().strip().encode()}
        for rr_name, _ in _FILES:
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path=f"/{rr_name}")
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            found[rr_name] = out.getvalue()
        return found
    finally:
        iso.close()


class IsoSnippets:
    """``put`` uploads ``content`` (an ISO's bytes) as ``<storage>:iso/<name>``."""

    def __init__(self, client):
        self.client = client
        self.allowed = AllowedContent(client)

    def put(self, node: str, storage: str, name: str, content: bytes) -> str:
        self.allowed.require(node, storage, "iso")
        if not check_name(name).endswith(".iso"):
            raise PhoenixError(f"iso backend: {name!r} must end in .iso")
        if self.exists(node, storage, name):       # upload would not replace it atomically
            self.remove(node, storage, name)
        with tempfile.TemporaryDirectory(prefix="phoenix-cidata-") as tmp:
            path = Path(tmp) / name                 # the multipart part's file name is the volume name
            path.write_bytes(content)
            with open(path, "rb") as handle:
                self.client.run_task("POST", f"/nodes/{node}/storage/{storage}/upload", content="iso",
                                     filename=handle)
        return volid_for(storage, name, "iso")

    def remove(self, node: str, storage: str, name: str) -> None:
        from phoenix.pve.client import join_path

        if self.exists(node, storage, name):
            self.client.run_task("DELETE", join_path("nodes", node, "storage", storage, "content",
                                                     volid_for(storage, name, "iso")))

    def exists(self, node: str, storage: str, name: str) -> bool:
        volid = volid_for(storage, name, "iso")
        entries = self.client.get_list(f"/nodes/{node}/storage/{storage}/content", content="iso")
        return any(e.get("volid") == volid for e in entries)

    def read(self, node: str, storage: str, name: str) -> bytes | None:
        return None     # PVE's API cannot download storage content; the ISO is write-only from here

    def deliver(self, node: str, storage: str, vmid: int, user_data: str, meta_data: str,
                network_config: str | None) -> str:
        """Build, upload and return the seed ISO's volid (attach it with :func:`attach_cidata`)."""
        from phoenix.snippets.base import cidata_iso_name

        return self.put(node, storage, cidata_iso_name(vmid), build_cidata_iso(user_data, meta_data, network_config))


def attach_cidata(client, node: str, vmid: int, volid: str, drive: str = CIDATA_DRIVE) -> dict:
    """Attach the seed ISO as a CD-ROM and drop PVE's cloud-init drive; returns the params sent."""
    config = client.get_dict(f"/nodes/{node}/qemu/{vmid}/config")
    params: dict = {drive: propstr.format_drive({"file": volid, "media": "cdrom"})}
    cloudinit = [key for key, value in config.items()
                 if key[:3] in ("ide", "sat", "scs", "vir") and "cloudinit" in str(value) and key != drive]
    if cloudinit:
        params["delete"] = ",".join(sorted(cloudinit))
    client.put(f"/nodes/{node}/qemu/{vmid}/config", **params)
    return params
