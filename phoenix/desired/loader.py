"""Load a desired-state file (native or original-project form) into a resolved DesiredConfig.

Reading, JSON parsing, model checks and cross-document checks each add problems; any problem
ends in one :class:`ConfigError` that lists all of them.  Nothing here raises anything else.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Callable, Literal, Optional, get_args

from pydantic import BaseModel, ValidationError

from phoenix.desired import legacy
from phoenix.desired.crosscheck import cross_check
from phoenix.desired.features import FeatureError, available_features, render_feature
from phoenix.desired.models import CustomizeSpec, DesiredIn, TemplateIn, VMIn
from phoenix.desired.problems import ROOT, ConfigError, Problem, join_path, path_of, unknown_key_message
from phoenix.text import first_control
from phoenix.desired.spec import AGENT_PACKAGE, DesiredConfig, DiskSpec, NetworkSpec, NicSpec, TemplateSpec, UserSpec, VMSpec

_PLAIN_MESSAGES = {
    "missing": "required key missing",
    "model_type": "expected a JSON object",
    "dict_type": "expected a JSON object",
    "list_type": "expected a JSON array",
    "int_type": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
}


# The cluster's template VMIDs, or how to get them: called only when the cross-checks need them (so a
# caller may still be fetching them while the file is read and validated).
Templates = frozenset[int] | Callable[[], frozenset[int]]


def load_desired(path: str | Path, existing_templates: Templates = frozenset()) -> DesiredConfig:
    """Read ``path``; raise :class:`ConfigError` with every problem found, else return the config."""
    path = Path(path)
    data = read_json(path)
    config = parse_desired(data, base_dir=path.parent, existing_templates=existing_templates)
    config.source = path
    return config


def read_json(path: Path) -> Any:
    """The parsed JSON, or a ConfigError naming the file and the line/column of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), f"is not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(str(path), f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]) from None
    except _DuplicateKey as exc:
        raise ConfigError([Problem(str(path), f"invalid JSON: key {exc.args[0]!r} appears twice in one object")]) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError([Problem(str(path), f"invalid JSON: {str(exc).splitlines()[0] if str(exc) else 'too deep'}")]) from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def parse_desired(data: Any, base_dir: Path, existing_templates: Templates = frozenset()) -> DesiredConfig:
    """Validate already-parsed JSON and resolve it (``base_dir`` is where ``features/`` lives)."""
    warnings: list[Problem] = []
    problems: list[Problem] = control_problems(data)
    where: Callable[[str], str] = lambda p: p
    form: Literal["native", "legacy"] = "native"
    if legacy.is_legacy(data):
        form = "legacy"
        converted = legacy.normalise(data)
        data, where = converted.native, converted.translate
        warnings, problems = converted.warnings, list(converted.problems)
    model: Optional[DesiredIn] = None
    try:
        model = DesiredIn.model_validate(data)
    except ValidationError as exc:
        reported = {p.path for p in problems}  # the legacy reader or the control check explained these
        problems += [Problem(where(p.path), p.message) for p in pydantic_problems(exc)
                     if where(p.path) not in reported]
    features = available_features(base_dir)
    if isinstance(data, dict):
        templates = existing_templates() if callable(existing_templates) else existing_templates
        problems += cross_check(data, frozenset(templates), features, where)
    config: Optional[DesiredConfig] = None
    if model is not None and not problems:
        config = resolve(model, base_dir)
        problems += _render_features(config, features, where)
    if problems or config is None:
        raise ConfigError(_dedupe(problems) or [Problem(ROOT, "invalid desired state")])
    config.format = form
    config.warnings = warnings
    return config


# Keys whose value is free multi-line text (PVE keeps a VM's description as comment lines); their
# validators reject every control character except newline and tab.
FREE_TEXT_KEYS = frozenset({"description"})


def control_problems(data: Any, path: str = ROOT) -> list[Problem]:
    """Every string (value or key) holding a control character: NUL, C0, DEL, C1 or a lone surrogate.

    Checked on the file as written, before any model, because every string in it reaches PVE,
    user-data or a file name, and a model check that forgot one would let it through.
    """
    return _control_walk(data, path) if _may_hold_control(data) else []


def _control_walk(data: Any, path: str) -> list[Problem]:
    """:func:`control_problems` the slow way: the JSON path of every value as it goes."""
    problems: list[Problem] = []
    if isinstance(data, str):
        index = first_control(data)
        if index is not None:
            problems.append(Problem(path, _control_message(data, index)))
    elif isinstance(data, dict):
        for key, value in data.items():
            index = first_control(key)
            if index is not None:
                problems.append(Problem(join_path(path, key), "the key " + _control_message(key, index)))
                continue
            if key in FREE_TEXT_KEYS and isinstance(value, str):
                continue  # multi-line text: its own validator allows newlines and tabs, nothing else
            problems += _control_walk(value, join_path(path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            problems += _control_walk(item, join_path(path, index))
    return problems


def _may_hold_control(data: Any) -> bool:
    """False when no string :func:`control_problems` checks holds a control character: one regex over
    all of them, without building a JSON path per value (a large fleet has ~16 strings per VM).
    True also for anything unusual (subclasses, non-string keys): the full walk then decides."""
    strings: list[str] = []
    stack = [data]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            strings.append(item)
        elif kind is dict:
            for key, value in item.items():
                if type(key) is not str:
                    return True
                strings.append(key)
                if not (key in FREE_TEXT_KEYS and type(value) is str):
                    stack.append(value)
        elif kind is list:
            stack.extend(item)
        elif isinstance(item, (str, dict, list)):
            return True
    return first_control(" ".join(strings)) is not None


def _control_message(text: str, index: int) -> str:
    return (f"contains the control character U+{ord(text[index]):04X} at position {index}; "
            "control characters are not allowed")


def pydantic_problems(exc: ValidationError) -> list[Problem]:
    """One Problem per pydantic error, with JSON paths, plain messages and "did you mean" hints."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        kind = error["type"]
        if kind == "extra_forbidden" and loc:
            message = unknown_key_message(loc[-1], _allowed_keys(loc[:-1]))
        elif kind in _PLAIN_MESSAGES:
            message = _PLAIN_MESSAGES[kind]
        else:
            message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(Problem(path_of(loc), message.splitlines()[0] if message else kind))
    return problems


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts (aliases as written in the file)."""
    model: type[BaseModel] = DesiredIn
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        nested = _model_in(field.annotation) if field is not None else None
        if nested is None:
            return []
        model = nested
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def resolve(model: DesiredIn, base_dir: Path) -> DesiredConfig:
    """Merge defaults into templates and VMs."""
    templates = [_template(t, model) for t in model.templates]
    vms = [_vm(v, model) for v in model.vms]
    return DesiredConfig(defaults=model.vm_defaults, templates=templates, vms=vms, base_dir=Path(base_dir))


def _template(t: TemplateIn, model: DesiredIn) -> TemplateSpec:
    d = model.vm_defaults
    customize = t.customize
    if t.image.delivery == "local":
        packages = [AGENT_PACKAGE] + [p for p in (customize.packages if customize else []) if p != AGENT_PACKAGE]
        commands = list(customize.run_commands) if customize else []
    else:
        packages, commands = [], []
    return TemplateSpec(
        vmid=t.vmid, name=t.name, node=t.node or d.node,
        storage_pool=t.storage_pool or d.storage_pool, network_bridge=t.network_bridge or d.network_bridge,
        cores=t.cores or d.cores, memory_mb=t.memory_mb or d.memory_mb, image=t.image,
        customize=CustomizeSpec(packages=packages, run_commands=commands),
        bios=t.bios, machine=t.machine, scsihw=t.scsihw,
    )


def _vm(v: VMIn, model: DesiredIn) -> VMSpec:
    d = model.vm_defaults
    net = v.network_config
    keys = ([v.user_config.ssh_public_key] if v.user_config.ssh_public_key else []) + list(v.user_config.ssh_public_keys)
    template = next((t for t in model.templates if t.vmid == v.clone_from_vmid), None)
    nics = _nics(v, d.network_bridge)
    return VMSpec(
        vmid=v.vmid, name=v.name, clone_from_vmid=v.clone_from_vmid,
        node=v.node or d.node or (template.node if template else None),
        cores=v.cores or d.cores, memory_mb=v.memory_mb or d.memory_mb,
        disk_size_gb=v.disk_size_gb or d.disk_size_gb, storage_pool=v.storage_pool or d.storage_pool,
        full_clone=d.full_clone if v.full_clone is None else v.full_clone,
        snippets_storage=d.snippets_storage, start=v.start, tags=list(v.tags),
        features=list(dict.fromkeys(v.features)),
        network=NetworkSpec(ip=nics[0].ip, gw=nics[0].gw,
                            nameservers=list(d.nameservers if net.nameservers is None else net.nameservers),
                            searchdomain=net.searchdomain or d.searchdomain),
        nics=nics,
        disks=[DiskSpec(**{**disk.model_dump(), "storage": disk.storage or v.storage_pool or d.storage_pool})
               for disk in v.disks],
        removed_disks=v.removed_disks,
        cpu=v.cpu, sockets=v.sockets, balloon_mb=v.balloon_mb, onboot=v.onboot,
        startup=v.startup.model_dump(exclude_none=True) if v.startup else None,
        description=v.description,
        machine=v.machine or (template.machine if template else None),
        bios=v.bios or (template.bios if template else None),
        scsihw=v.scsihw or (template.scsihw if template else None),
        agent={"freeze-fs": v.agent.freeze_fs, "fstrim_cloned_disks": v.agent.fstrim_cloned_disks,
               "type": v.agent.type} if v.agent else None,
        user=UserSpec(username=v.user_config.username, password_hash=v.user_config.password_hash,
                      ssh_public_keys=list(dict.fromkeys(keys))),
        guest_timeout_s=v.guest_timeout_s,
    )


def _nics(v: VMIn, default_bridge: str) -> list[NicSpec]:
    """``networks``, or the one NIC the shorthand (``network_config`` + ``network_bridge``) declares;
    IPv6 addresses in canonical form, so ``2001:DB8::1/64`` and ``2001:db8::1/64`` never diff."""
    declared = v.networks if v.networks is not None else [v.network_config]
    nics = []
    for nic in declared:
        fields = nic.model_dump(include={"ip", "gw", "ip6", "gw6", "vlan", "model", "mac", "firewall", "mtu"})
        if fields.get("ip6") not in (None, "dhcp", "auto"):
            fields["ip6"] = str(ipaddress.IPv6Interface(fields["ip6"]))
        if fields.get("gw6"):
            fields["gw6"] = str(ipaddress.IPv6Address(fields["gw6"]))
        bridge = getattr(nic, "bridge", None) or (v.network_bridge if v.networks is None else None)
        nics.append(NicSpec(bridge=bridge or default_bridge, **fields))
    return nics


def _render_features(config: DesiredConfig, features: dict[str, Path], where: Callable[[str], str]) -> list[Problem]:
    """Render every VM's feature scripts now, so template mistakes surface in ``validate``."""
    problems = []
    for index, vm in enumerate(config.vms):
        for number, name in enumerate(vm.features):
            try:
                render_feature(name, features[name], vm)
            except FeatureError as exc:
                problems.append(Problem(where(f"vms[{index}].features[{number}]"), str(exc)))
    return problems


__all__ = ["load_desired", "parse_desired", "read_json", "resolve", "pydantic_problems", "ROOT", "join_path"]
