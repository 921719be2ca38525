"""Is the template there, and was it built from the image the spec declares now?

The image checksum a template was built from is written into the template's ``description``
(``phoenix-image: sha256:<hex>``), so it is a fact PVE holds, not something only phoenix's state
file remembers.  A changed upstream checksum makes the template *outdated*: plan reports it; it
is never silently rebuilt (clones may still use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from phoenix.errors import PhoenixError
from phoenix.pve import propstr
from phoenix.template.checksum import Checksum, fetch_text, resolve_checksum
from phoenix.template.simulated import OfflineStandIns

__all__ = ["TemplateStatus", "TemplateMarker", "template_status", "compare_with_spec", "render_marker",
           "parse_marker", "find_vm", "first_node", "AGENT_TAG", "agent_baked"]

_MARKER_RE = re.compile(r"^phoenix-(image|image-url):\s*(\S+)\s*$", re.MULTILINE)
# The one record of "the guest agent is baked into this template's image": a tag phoenix puts on the
# templates it customised (written by template.provision, read by the plan).  Not the spec's
# delivery mode, which cannot know whether libguestfs was there when the template was built.
AGENT_TAG = "phoenix-agent"


def agent_baked(template_config: Mapping[str, Any]) -> bool:
    """Whether the template (its ``GET /config``) carries qemu-guest-agent in its image."""
    return AGENT_TAG in propstr.parse_tags(template_config.get("tags"))


@dataclass(frozen=True)
class TemplateMarker:
    """What phoenix recorded on a template it built."""

    checksum: str | None          # "sha256:<hex>"
    url: str | None


@dataclass(frozen=True)
class TemplateStatus:
    exists: bool
    is_template: bool
    outdated: bool
    reason: str
    node: str | None = None
    marker: TemplateMarker | None = None


def render_marker(checksum: Checksum | None, url: str) -> str:
    """The ``description`` phoenix gives a template it built (one fact per line)."""
    lines = ["Template built by phoenix from a cloud image."]
    if checksum is not None:
        lines.append(f"phoenix-image: {checksum.label}")
    lines.append(f"phoenix-image-url: {url}")
    return "\n".join(lines) + "\n"


def parse_marker(description: str | None) -> TemplateMarker | None:
    """Read a marker back from a template's description; None if phoenix did not build it."""
    found = {key: value for key, value in _MARKER_RE.findall(description or "")}
    if not found:
        return None
    return TemplateMarker(found.get("image"), found.get("image-url"))


def first_node(client) -> str:
    """The first online node by name (a template's default node)."""
    nodes = sorted(client.get_list("/nodes"), key=lambda n: n.get("node", ""))
    online = [n["node"] for n in nodes if n.get("status", "online") == "online"]
    if not online:
        raise PhoenixError("PVE reports no online node")
    return online[0]


def find_vm(client, vmid: int) -> dict | None:
    """The ``/cluster/resources`` entry of ``vmid`` (VM or container), or None."""
    for entry in client.get_list("/cluster/resources", type="vm"):
        if str(entry.get("vmid")) == str(int(vmid)):      # PVE's field is not trusted to be a number
            return entry
    return None


def template_status(client, spec, *, fetch: Callable[[str], str] | None = fetch_text,
                    stand_ins: OfflineStandIns | None = None) -> TemplateStatus:
    """Compare the template ``spec.vmid`` on PVE with ``spec`` (reads only).

    The spec's checksum is compared when it is known without network (a literal) or from one
    small sums-file fetch; ``fetch=None`` forbids the fetch (offline plans), and with the
    simulator's ``stand_ins`` a sums URL they cannot reach is not fetched either.
    """
    entry = find_vm(client, spec.vmid)
    if entry is None:
        return TemplateStatus(False, False, False, f"template {spec.vmid} does not exist")
    node = entry["node"]
    config = client.get_dict(f"/nodes/{node}/qemu/{spec.vmid}/config")
    if str(config.get("template", 0)) not in ("1", "True"):
        return TemplateStatus(True, False, False,
                              f"VM {spec.vmid} ('{config.get('name', '')}') on node '{node}' is not a template",
                              node=node)
    return compare_with_spec(spec, config, node, fetch=fetch, stand_ins=stand_ins)


def compare_with_spec(spec, config: dict, node: str | None, *, fetch: Callable[[str], str] | None = fetch_text,
                      stand_ins: OfflineStandIns | None = None) -> TemplateStatus:
    """The status of an existing template from its ``config`` (no PVE call; at most one sums-file fetch)."""
    marker = parse_marker(config.get("description"))
    if marker is None or marker.checksum is None:
        return TemplateStatus(True, True, False, f"template {spec.vmid} records no image checksum "
                              "(not built by phoenix); not checked", node=node, marker=marker)
    wanted = _wanted_checksum(spec, fetch, stand_ins)
    if wanted is None:
        return TemplateStatus(True, True, False, f"template {spec.vmid} exists; image checksum not checked "
                              "(the declared checksum needs a network fetch)", node=node, marker=marker)
    if wanted.label != marker.checksum:
        return TemplateStatus(True, True, True, f"template {spec.vmid} was built from {marker.checksum}, "
                              f"the image now resolves to {wanted.label}", node=node, marker=marker)
    return TemplateStatus(True, True, False, f"template {spec.vmid} is up to date ({wanted.label})",
                          node=node, marker=marker)


def _wanted_checksum(spec, fetch, stand_ins: OfflineStandIns | None) -> Checksum | None:
    image = spec.image
    if getattr(image, "checksum", None):
        return resolve_checksum(image, where=f"template {spec.vmid}: image")
    url = getattr(image, "checksum_url", None)
    if fetch is None or url is None or (stand_ins is not None and not stand_ins.reachable(url)):
        return None
    try:
        return resolve_checksum(image, fetch=fetch, where=f"template {spec.vmid}: image")
    except PhoenixError:
        return None
