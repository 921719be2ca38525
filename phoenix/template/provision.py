"""ensure_template: cloud image → verified (and customised) → imported VM → PVE template.

Idempotent by VMID, and only ever touching what this state made (its ownership marker,
:mod:`phoenix.pve.ownership`, is in the create request's ``description``):

* an existing template is reported and left alone (no API writes);
* a VM of ours that is not a template yet (a run interrupted between create and conversion) is
  finished — converted when its disk was imported, otherwise removed and rebuilt;
* any other VM on that VMID (no marker, or another state's) is an error naming ``phoenix import``;
* a VM locked by a create whose task died is a :class:`~phoenix.pve.locks.StaleLockError`.

One create call imports the disk (``scsi0=<pool>:0,import-from=<volid>``) and sets the whole
config; then the VM becomes a template.  A create whose answer was lost is never sent again: it
is settled by reading the VM back.  If anything fails, the half-made VM (only if ours) and the
staging image are removed; staging images and cache work directories that an interrupted run
left (names carrying this state's owner tag) are removed on the next run.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.errors import PhoenixError
from phoenix.pve.client import PVEApiError, PVEConnectionError
from phoenix.pve.locks import StaleLockError, wait_unlocked
from phoenix.pve.ownership import NotOwnedError, owner_tag, ownership, with_marker
from phoenix.pve.settle import settle_create
from phoenix.template import delivery
from phoenix.template.checksum import Checksum, fetch_text, image_source_name, is_loopback_url, resolve_checksum
from phoenix.template.customize import (copy_for_customisation, customize_args, customize_image,
                                        libguestfs_available)
from phoenix.template.download import download_verified, hash_file
from phoenix.template.leftovers import remove_cache_leftovers, remove_staging_leftovers
from phoenix.template.report import Reporter, as_reporter
from phoenix.template.simulated import OfflineStandIns
from phoenix.template.status import AGENT_TAG, agent_baked, find_vm, first_node, parse_marker, render_marker

__all__ = ["TemplateResult", "ensure_template", "template_create_params", "provision_for_plan"]

DEFAULT_POOL = "local-lvm"
DEFAULT_BRIDGE = "vmbr0"
CACHE_ENV = "PHOENIX_IMAGE_CACHE"
CREATE_WAIT_S = 600                # a create that imports a large image may take minutes


@dataclass
class TemplateResult:
    vmid: int
    node: str
    created: bool
    agent_baked: bool                 # qemu-guest-agent is in the image (template.status.agent_baked)
    image_checksum: str | None = None  # "sha256:<hex>" of the upstream image, when known
    simulated: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class _Staged:
    volid: str
    placed_by_phoenix: bool
    agent_baked: bool


def ensure_template(client, spec, *, owner: str, cache_dir: Path, reporter=None,
                    stand_ins: OfflineStandIns | None = None,
                    on_pve_host: bool = False, image_storage: str | None = None, customize: bool | None = None,
                    storage_roots=None) -> TemplateResult:
    """Make template ``spec.vmid`` exist (see module doc); returns what happened.

    ``owner`` is the state's lineage (the marker written into the template).  ``stand_ins``
    (injected by the simulator's environments) do visibly what cannot happen offline
    (:mod:`phoenix.template.simulated`).  ``on_pve_host`` places a local image straight into the
    storage directory instead of uploading it (``storage_roots``: ``fn(node, storage) -> Path`` when
    that directory is not GET /storage's ``path``).  ``customize`` None bakes the agent when
    virt-customize is installed; False never does.
    """
    report = _Recorder(as_reporter(reporter))
    remove_cache_leftovers(Path(cache_dir), spec.vmid, owner)
    existing = _existing_template(client, spec, owner, report, image_storage)
    if isinstance(existing, TemplateResult):
        report.info(existing.message)
        return existing
    node = existing or spec.node or first_node(client)
    storage_id = delivery.find_import_storage(client, node, image_storage)
    remove_staging_leftovers(client, node, storage_id, spec.vmid, owner, report.info)
    checksum = _resolve_checksum(spec, stand_ins, report)
    staged: _Staged | None = None
    try:
        if _delivery_mode(spec) == "pve":
            staged = _stage_on_pve(client, node, storage_id, spec, checksum, owner, report)
        else:
            staged = _stage_local(client, node, storage_id, spec, checksum, Path(cache_dir), owner, report,
                                  stand_ins=stand_ins, on_pve_host=on_pve_host, customize=customize,
                                  storage_roots=storage_roots)
        _create_template(client, node, spec, staged, checksum, owner, report)
    except BaseException as exc:
        if not isinstance(exc, (NotOwnedError, StaleLockError)):
            _clean_up(client, node, spec.vmid, owner, report)
        _remove_staging(client, node, staged, report)
        raise
    _remove_staging(client, node, staged, report)
    baked = "baked into the image" if staged.agent_baked else "to be installed by cloud-init at first boot"
    message = f"template {spec.vmid} ('{spec.name}') created on node '{node}' (guest agent {baked})"
    report.info(message)
    return TemplateResult(spec.vmid, node, True, staged.agent_baked, checksum.label if checksum else None,
                          report.simulated_lines, message)


def provision_for_plan(client, spec, reporter=None, *, owner: str, stand_ins: OfflineStandIns | None = None,
                       cache_dir: Path | None = None, on_pve_host: bool = False) -> TemplateResult:
    """The plan's "ensure template" step: :func:`ensure_template` with the default cache."""
    return ensure_template(client, spec, owner=owner, cache_dir=cache_dir or default_cache_dir(), reporter=reporter,
                           stand_ins=stand_ins, on_pve_host=on_pve_host)


def default_cache_dir() -> Path:
    """``$PHOENIX_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/phoenix/images`` (``~/.cache/...``)."""
    import os

    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "phoenix" / "images"


def template_create_params(spec, volid: str, description: str, agent_baked: bool = False) -> dict:
    """The single create call's parameters (PVE imports the disk from ``volid`` during create).

    The settings a VM also declares (name, cores, memory, bridge, agent, serial console) are
    written the way the attribute registry writes them, so a clone starts out as its VM wants."""
    from phoenix.diff.attributes import ALWAYS, BY_NAME

    pool = getattr(spec, "storage_pool", None) or DEFAULT_POOL
    params = {
        "vmid": spec.vmid, "ostype": "l26",
        "scsihw": "virtio-scsi-pci", "scsi0": f"{pool}:0,import-from={volid}",
        "ide2": f"{pool}:cloudinit", "boot": "order=scsi0", "description": description,
    }
    for name in ("machine", "scsihw", "bios"):
        if getattr(spec, name, None):
            params.update(BY_NAME[name].write(getattr(spec, name), {}))
    if getattr(spec, "bios", None) == "ovmf":
        params.update(BY_NAME["efidisk0"].write({"storage": pool, "efitype": "4m"}, {}))
    values = {"name": spec.name,
              "net0": {"model": "virtio", "bridge": getattr(spec, "network_bridge", None) or DEFAULT_BRIDGE},
              **ALWAYS, "cores": getattr(spec, "cores", None), "memory_mb": getattr(spec, "memory_mb", None)}
    for name, value in values.items():
        if value:
            params.update(BY_NAME[name].write(value, {}))
    if agent_baked:
        params["tags"] = AGENT_TAG
    return params


# --- steps ----------------------------------------------------------------------------------------

def _existing_template(client, spec, owner: str, report, image_storage: str | None) -> TemplateResult | str | None:
    """What is at ``spec.vmid`` now: a finished template (its result), the node of nothing-yet-made
    (after removing a half-made VM of ours), or None (nothing there).  Foreign VMs and stale locks raise."""
    entry = find_vm(client, spec.vmid)
    if entry is None:
        return None
    node = entry["node"]
    if entry.get("type", "qemu") != "qemu":
        raise PhoenixError(f"VMID {spec.vmid} is used by a container on node '{node}'; choose another template vmid")
    path = f"/nodes/{node}/qemu/{spec.vmid}/config"
    config = client.get_dict(path)
    owned = ownership(config, owner, spec.vmid)
    if config.get("lock") and owned.verdict in ("ours", "stub"):
        # A create (ours, or a placeholder whose task may be ours) still running: wait; a dead one raises.
        try:
            config = wait_unlocked(client, node, spec.vmid, timeout=CREATE_WAIT_S, on_wait=report.info)
        except PVEApiError as exc:
            if "does not exist" in exc.message:      # that create failed and PVE removed its placeholder
                return None
            raise
        owned = ownership(config, owner, spec.vmid)
    name = config.get("name", "")
    if int(config.get("template", 0) or 0):
        if owned.verdict == "other":
            raise NotOwnedError(spec.vmid, name, node, owned, "ensuring the template")
        return _finished(client, spec, node, config, owner if owned.ours else None, report, image_storage,
                         created=False, message=f"template {spec.vmid} ('{name}') already exists on node '{node}'; "
                                                "nothing to do")
    if not owned.ours:
        raise NotOwnedError(spec.vmid, name, node, owned, "ensuring the template")
    if propstr_has_disk(config):
        # Created and imported by an earlier run that stopped before the conversion: finish it.
        report.info(f"VM {spec.vmid} was created by an interrupted run but not converted: converting it now")
        client.run_task("POST", f"{path.rsplit('/', 1)[0]}/template")
        return _finished(client, spec, node, config, owner, report, image_storage, created=True,
                         message=f"template {spec.vmid} ('{name}') finished on node '{node}'")
    report.info(f"removing half-made VM {spec.vmid} (ours, without its disk) to build the template again")
    client.run_task("DELETE", path.rsplit("/", 1)[0], purge=1)
    return node


def _finished(client, spec, node: str, config: dict, owner: str | None, report, image_storage: str | None, *,
              created: bool, message: str) -> TemplateResult:
    """The result for a template that is there; an owned one's staging leftovers are removed first."""
    storage_id = _import_storage_or_none(client, node, image_storage) if owner else None
    if owner and storage_id:
        remove_staging_leftovers(client, node, storage_id, spec.vmid, owner, report.info)
    marker = parse_marker(config.get("description"))
    return TemplateResult(spec.vmid, node, created, agent_baked(config), marker.checksum if marker else None,
                          message=message)


def propstr_has_disk(config: dict) -> bool:
    """The imported boot disk is in the config (not just the request's ``import-from`` placeholder)."""
    value = str(config.get("scsi0", ""))
    return bool(value) and "import-from=" not in value and not value.startswith("none")


def _import_storage_or_none(client, node: str, image_storage: str | None) -> str | None:
    try:
        return delivery.find_import_storage(client, node, image_storage)
    except PhoenixError:
        return None


def _delivery_mode(spec) -> str:
    return getattr(spec.image, "delivery", None) or "local"


def _resolve_checksum(spec, stand_ins: OfflineStandIns | None, report: "_Recorder") -> Checksum | None:
    image = spec.image
    where = f"template {spec.vmid}: image"
    if getattr(image, "checksum", None) or stand_ins is None or stand_ins.reachable(image.checksum_url):
        return resolve_checksum(image, fetch=fetch_text, where=where)
    stand_ins.skip_checksum(image.checksum_url, report)
    return None


def _stage_on_pve(client, node, storage_id, spec, checksum, owner: str, report) -> _Staged:
    filename = delivery.import_filename(image_source_name(spec.image), checksum, spec.vmid, owner_tag(owner))
    volid = f"{storage_id}:import/{filename}"
    _remove_leftover(client, node, storage_id, volid, report)
    report.info(f"PVE downloads {spec.image.url} into {volid}"
                + (f" and verifies its {checksum.algorithm}" if checksum else ""))
    volid, log = delivery.download_on_pve(client, node, storage_id, spec.image.url, filename, checksum)
    for line in log:
        if line.lower().startswith("simulated"):            # the simulator's own words, e.g. "simulated download: ..."
            report.simulated(line[len("simulated"):].lstrip(" :"))
    report.info("the guest agent is not baked in (PVE-side download); cloud-init installs it at first boot")
    return _Staged(volid, True, False)


def _stage_local(client, node, storage_id, spec, checksum, cache_dir: Path, owner: str, report, *,
                 stand_ins: OfflineStandIns | None, on_pve_host: bool, customize: bool | None,
                 storage_roots) -> _Staged:
    url = spec.image.url
    name = getattr(spec.image, "file_name", None) or image_source_name(spec.image)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if stand_ins is not None and not stand_ins.reachable(url):
        image = stand_ins.image(url, cache_dir / f"simulated-{name}", report)
    else:
        stand_ins = None
        if checksum is None:
            raise PhoenixError(f"template {spec.vmid}: image has no checksum; phoenix verifies every image")
        image = cache_dir / name
        with report.progress(f"downloading {name}") as advance:
            download_verified(url, image, checksum, progress=advance,
                              on_resume=lambda have: report.info(f"resuming {name} at byte {have}"))
        report.info(f"{name}: {checksum.algorithm} verified ({checksum.value[:16]}…)")
    filename = delivery.import_filename(image_source_name(spec.image), checksum, spec.vmid, owner_tag(owner))
    workdir = Path(tempfile.mkdtemp(prefix=f"work-{spec.vmid}-{owner_tag(owner)}-", dir=cache_dir))  # this run's
    try:
        return _customise_and_deliver(client, node, storage_id, spec, checksum, image, workdir / filename, report,
                                      stand_ins=stand_ins, on_pve_host=on_pve_host, customize=customize,
                                      storage_roots=storage_roots)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _customise_and_deliver(client, node, storage_id, spec, checksum, image: Path, work: Path, report, *,
                           stand_ins: OfflineStandIns | None, on_pve_host: bool, customize: bool | None,
                           storage_roots) -> _Staged:
    """``stand_ins`` set: the image is a stand-in, and so is its customisation."""
    filename = work.name
    packages = list(getattr(spec.customize, "packages", []) or [])
    commands = list(getattr(spec.customize, "run_commands", []) or [])
    if stand_ins is not None:
        copy_for_customisation(image, work)
        stand_ins.customize(work, packages, commands, report)
        baked = True
    elif customize is not False and libguestfs_available():
        copy_for_customisation(image, work)
        report.info(f"customising {filename} with virt-customize (guest agent, {len(packages)} package(s), "
                    f"{len(commands)} command(s), fresh machine-id)")
        customize_image(work, packages, commands, report=report.info)
        baked = True
    else:
        why = "customisation is switched off" if customize is False else "libguestfs (virt-customize) is not installed"
        if packages or commands:
            raise PhoenixError(f"template {spec.vmid} declares customize (packages/run_commands) but {why}; "
                               "install libguestfs-tools or drop customize")
        report.info(f"{why}: the guest agent is not baked in; cloud-init installs it at first boot"
                    + ("" if customize is False else " (apt-get install libguestfs-tools to bake it)"))
        work, baked = image, False
    upload_checksum = checksum if work == image and checksum is not None else _checksum_of(work)
    volid = f"{storage_id}:import/{filename}"
    _remove_leftover(client, node, storage_id, volid, report)
    try:
        if on_pve_host:
            root = storage_roots(node, storage_id) if storage_roots else None
            volid = delivery.place_on_host(client, storage_id, work, filename, root=root)
            report.info(f"placed {filename} into storage '{storage_id}' on this host")
        else:
            report.info(f"uploading {filename} to storage '{storage_id}' on node '{node}'")
            with report.progress(f"uploading {filename}") as advance:
                volid = delivery.upload(client, node, storage_id, work, filename, upload_checksum, progress=advance)
    finally:
        if work != image:
            work.unlink(missing_ok=True)
    return _Staged(volid, True, baked)


def _checksum_of(path: Path) -> Checksum:
    return Checksum("sha256", hash_file(path, Checksum("sha256", "")).hexdigest())


def _create_template(client, node, spec, staged: _Staged, checksum, owner: str, report) -> None:
    description = with_marker(render_marker(checksum, spec.image.url), owner, spec.vmid)
    params = template_create_params(spec, staged.volid, description, staged.agent_baked)
    report.info(f"creating VM {spec.vmid} ('{spec.name}') on node '{node}' importing {staged.volid}")
    path = f"/nodes/{node}/qemu"
    try:
        client.run_task("POST", path, task_timeout=CREATE_WAIT_S, **params)
    except (PVEConnectionError, PVEApiError) as exc:
        if isinstance(exc, PVEApiError) and "already exists" not in exc.message:
            raise
        # The answer was lost, or the VMID is taken: never send the create again — read back.
        settle_create(client, node, spec.vmid, owner, exc, report.info, timeout=CREATE_WAIT_S)
    report.info(f"converting VM {spec.vmid} to a template")
    client.run_task("POST", f"{path}/{spec.vmid}/template")


def _remove_leftover(client, node, storage_id, volid, report) -> None:
    """A staging file of the same name can only be an interrupted run's: remove it first."""
    if delivery.volume_exists(client, node, storage_id, volid):
        report.info(f"removing leftover staging image {volid}")
        delivery.remove_volume(client, node, volid)


def _remove_staging(client, node, staged: _Staged | None, report) -> None:
    if staged is not None and staged.placed_by_phoenix:
        try:
            delivery.remove_volume(client, node, staged.volid)
            report.info(f"removed staging image {staged.volid}")
        except PhoenixError as exc:
            report.info(f"could not remove staging image {staged.volid}: {exc}")


def _clean_up(client, node, vmid: int, owner: str, report) -> None:
    """After a failure: remove the half-made VM — only if it carries this state's marker (a VM that
    another client created on the VMID meanwhile is never touched)."""
    try:
        entry = find_vm(client, vmid)
        if entry is None:
            return
        path = f"/nodes/{entry['node']}/qemu/{vmid}"
        config = client.get_dict(f"{path}/config")
        if ownership(config, owner, vmid).ours and not config.get("lock") and not int(config.get("template", 0) or 0):
            report.info(f"removing half-made VM {vmid}")
            client.run_task("DELETE", path, purge=1)
    except PhoenixError as exc:
        report.info(f"could not remove half-made VM {vmid}: {exc}")


class _Recorder(Reporter):
    """Wraps the caller's reporter and remembers the ``simulated`` lines for the result."""

    def __init__(self, inner: Reporter):
        super().__init__(inner.info)
        self.inner = inner
        self.simulated_lines: list[str] = []

    def simulated(self, message: str) -> None:
        self.simulated_lines.append(message)
        self.inner.simulated(message)

    def progress(self, description: str):
        return self.inner.progress(description)
