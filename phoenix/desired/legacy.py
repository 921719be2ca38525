"""Read the original shell project's ``phoenix_vm_configs.json`` unchanged.

That format keeps templates inside ``vms`` (``is_template: true`` + ``template_image``, a file name
under the Ubuntu noble image directory), merges ``vm_defaults`` under each VM and grew keys phoenix
does not act on.  :func:`normalise` turns it into the native form and remembers where every native
path came from, so problems still name the path the user wrote (``vms[1].user_config...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from phoenix.desired.models import DEFAULTS_FIELDS, VM_FIELDS
from phoenix.desired.problems import Problem, join_path

NOBLE_BASE = "https://cloud-images.ubuntu.com/noble/current/"
# Keys the original project grew that phoenix does not act on: accepted, with a warning.
IGNORED_KEYS = {
    "template_snapshot_name": "phoenix clones the template itself, not a snapshot of it",
    "start_at_boot": "phoenix does not manage onboot",
    "boot_order": "phoenix does not manage the start order",
    "boot_delay": "phoenix does not manage the start delay",
    "snapshots": "phoenix does not manage snapshots",
    "volumes": "phoenix does not manage extra volumes or NFS mounts",
    "firewall": "phoenix does not manage the PVE firewall",
    "qm_options": "phoenix does not pass raw qm options",
    "dependencies": "phoenix orders work by template, not by declared dependencies",
}
MARKERS = {"is_template", "template_image", "nameserver"} | set(IGNORED_KEYS)
TEMPLATE_ONLY_KEYS = {"vmid", "name", "image", "customize", "node", "storage_pool", "network_bridge",
                      "cores", "memory_mb"}


def is_legacy(data: Any) -> bool:
    """The original format: no ``templates`` list, and original-only keys in ``vms`` or ``vm_defaults``."""
    if not isinstance(data, dict) or "templates" in data:
        return False
    defaults = data.get("vm_defaults")
    if isinstance(defaults, dict) and ("template" in defaults or MARKERS & defaults.keys()):
        return True
    vms = data.get("vms")
    return isinstance(vms, list) and any(isinstance(e, dict) and MARKERS & e.keys() for e in vms)


@dataclass
class LegacyResult:
    native: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)   # native path prefix → original path
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def translate(self, path: str) -> str:
        """Map a native path back to the path in the user's file (longest matching prefix)."""
        best = ""
        for prefix in self.origins:
            if len(prefix) > len(best) and (path == prefix or path.startswith(prefix + ".")
                                            or path.startswith(prefix + "[")):
                best = prefix
        return self.origins[best] + path[len(best):] if best else path


def _nameservers(value: Any) -> Any:
    """The original ``nameserver`` was a space- or comma-separated string; lists pass through."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


def normalise(data: dict[str, Any]) -> LegacyResult:
    """Convert the original format to the native form (never raises on odd input)."""
    result = LegacyResult(native={})
    native = result.native
    for key, value in data.items():
        if key not in ("vm_defaults", "vms"):
            native[key] = value  # unknown top-level keys are refused later, at their own path
    raw_defaults = data.get("vm_defaults", {})
    defaults, merged, default_template = _split_defaults(raw_defaults, result)
    if "vm_defaults" in data:
        native["vm_defaults"] = defaults
    entries = data.get("vms", [])
    if not isinstance(entries, list):
        native["vms"] = entries
        return result
    templates: list[Any] = []
    vms: list[Any] = []
    for index, entry in enumerate(entries):
        original = join_path("vms", index)
        if isinstance(entry, dict) and entry.get("is_template") is True:
            result.origins[join_path("templates", len(templates))] = original
            templates.append(_template(entry, original, len(templates), result))
        else:
            result.origins[join_path("vms", len(vms))] = original
            vms.append(_vm(entry, original, len(vms), merged, result))
    _resolve_default_template(vms, templates, default_template, result)
    native["templates"] = templates
    native["vms"] = vms
    return result


def _split_defaults(raw: Any, result: LegacyResult) -> tuple[Any, dict[str, Any], Any]:
    """Native default keys stay in vm_defaults; VM-level keys are merged under each VM."""
    if not isinstance(raw, dict):
        return raw, {}, None
    defaults: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    template_name = raw.get("template")
    for key, value in raw.items():
        path = join_path("vm_defaults", key)
        if key == "template":
            continue
        if key == "nameserver":
            defaults.setdefault("nameservers", _nameservers(value))
            result.origins["vm_defaults.nameservers"] = path
        elif key in DEFAULTS_FIELDS:
            defaults[key] = value
        elif key in IGNORED_KEYS:
            result.warnings.append(Problem(path, f"ignored: {IGNORED_KEYS[key]}"))
        elif key in VM_FIELDS:
            merged[key] = value
        else:
            defaults[key] = value  # refused later as an unknown key of vm_defaults
    return defaults, merged, template_name


def _template(entry: dict[str, Any], original: str, index: int, result: LegacyResult) -> dict[str, Any]:
    native_path = join_path("templates", index)
    result.origins[join_path(native_path, "image")] = join_path(original, "template_image")
    template: dict[str, Any] = {}
    for key, value in entry.items():
        path = join_path(original, key)
        if key == "is_template":
            continue
        if key == "template_image":
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                base = value.rsplit("/", 1)[0] + "/"
                template["image"] = {"url": value, "checksum_url": base + "SHA256SUMS"}
            elif isinstance(value, str) and value and "/" not in value:
                template["image"] = {"url": NOBLE_BASE + value, "checksum_url": NOBLE_BASE + "SHA256SUMS"}
            else:
                result.problems.append(Problem(path, f"expected a file name under {NOBLE_BASE} or an image URL"))
        elif key in TEMPLATE_ONLY_KEYS:
            template[key] = value
        elif key in IGNORED_KEYS:
            result.warnings.append(Problem(path, f"ignored: {IGNORED_KEYS[key]}"))
        elif key in VM_FIELDS:
            result.warnings.append(Problem(path, "ignored for a template (it only applies to VMs cloned from it)"))
        else:
            template[key] = value  # refused later as unknown
    if "template_image" not in entry:
        result.problems.append(Problem(join_path(original, "template_image"),
                                       "required for a template (is_template: true)"))
    return template


def _vm(entry: Any, original: str, index: int, merged: dict[str, Any], result: LegacyResult) -> Any:
    """One VM entry: defaults merged under it (objects key by key), original-only keys translated."""
    if not isinstance(entry, dict):
        return entry
    native_path = join_path("vms", index)
    vm: dict[str, Any] = {}
    for key, value in merged.items():
        if key not in entry:
            vm[key] = value
            result.origins[join_path(native_path, key)] = join_path("vm_defaults", key)
        elif isinstance(value, dict) and isinstance(entry[key], dict):
            vm[key] = dict(value)
    for key, value in entry.items():
        path = join_path(original, key)
        if key == "is_template":
            if value is not False:
                result.problems.append(Problem(path, "expected true or false"))
        elif key == "nameserver":
            continue
        elif key == "template_image":
            result.warnings.append(Problem(path, "ignored: only templates (is_template: true) use an image"))
        elif key in IGNORED_KEYS:
            result.warnings.append(Problem(path, f"ignored: {IGNORED_KEYS[key]}"))
        elif isinstance(value, dict) and isinstance(vm.get(key), dict):
            vm[key] = {**vm[key], **value}
        else:
            vm[key] = value
    if "nameserver" in entry:
        network = vm.get("network_config", {})
        if isinstance(network, dict) and "nameservers" not in network:
            vm["network_config"] = {**network, "nameservers": _nameservers(entry["nameserver"])}
            result.origins[join_path(native_path, "network_config.nameservers")] = join_path(original, "nameserver")
    return vm


def _resolve_default_template(vms: list[Any], templates: list[Any], name: Any, result: LegacyResult) -> None:
    """A VM without ``clone_from_vmid`` clones the template named by ``vm_defaults.template``."""
    if name is None:
        return
    if not isinstance(name, str):
        result.problems.append(Problem("vm_defaults.template", "expected a template name (a string)"))
        return
    match = next((t.get("vmid") for t in templates if isinstance(t, dict) and t.get("name") == name), None)
    for index, vm in enumerate(vms):
        if not isinstance(vm, dict) or "clone_from_vmid" in vm:
            continue
        if match is None:
            result.problems.append(Problem(
                result.translate(join_path(join_path("vms", index), "clone_from_vmid")),
                f"no clone_from_vmid, and vm_defaults.template {name!r} names no template in this file"))
        else:
            vm["clone_from_vmid"] = match
