"""The documents a VM's cloud-init needs, rendered from the desired state (no API calls).

Rendering happens twice, at plan time (to fingerprint the user-data) and at apply time (to
deliver it): the plan never stores the user-data itself because it holds the password hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from phoenix.snippets.base import user_snippet_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from phoenix.desired.spec import DesiredConfig, VMSpec

KNOWN_AFTER_APPLY = "(known after apply)"


@dataclass(frozen=True)
class VMDocuments:
    """The texts are rendered on first use: only apply delivers them, and a plan over many VMs would
    spend most of its time dumping YAML it never looks at.  The plan fingerprints the user-data
    *document* (canonical JSON of the data the YAML is dumped from), which is cheap and does not
    change when a YAML library formats the same document differently."""

    document: dict[str, Any] | None  # the user-data as data; None when it is known only after apply
    cicustom: str | None             # user=<storage>:snippets/<file> (None for the iso backend)
    vm: "VMSpec" = field(repr=False, compare=False)

    @cached_property
    def fingerprint_source(self) -> str:
        """What the state's keyed fingerprint of the user-data is computed over."""
        if self.document is None:
            return KNOWN_AFTER_APPLY
        return canonical_json(self.document)

    @cached_property
    def user_data(self) -> str:
        from phoenix.desired.cloudinit import build_user_data_text

        if self.document is None:
            raise ValueError("the user-data is known only after the template exists")
        return build_user_data_text(self.document)

    @cached_property
    def network_config(self) -> str:
        from phoenix.desired.cloudinit import build_network_config

        return build_network_config(self.vm)

    @cached_property
    def meta_data(self) -> str:
        from phoenix.desired.cloudinit import build_meta_data

        return build_meta_data(self.vm)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_FILES_PLACEHOLDER = "\x00phoenix-write-files\x00"
_FILES_MARKER = _CANONICAL.encode(_FILES_PLACEHOLDER)        # how the placeholder reads in the encoded text
_ENCODED_FILES: dict[tuple[tuple[tuple[str, type, Any], ...], ...], str] = {}


def canonical_json(document: dict[str, Any]) -> str:
    """``json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    ``write_files`` (the runner and the feature scripts: most of the text, and the same for most VMs
    of a fleet) is encoded once per distinct content and spliced in where a placeholder was encoded;
    if the placeholder's text occurs anywhere else, the whole document is encoded as it is."""
    files = document.get("write_files")
    try:
        key = (tuple(tuple((k, type(v), v) for k, v in sorted(entry.items())) for entry in files)
               if isinstance(files, list) else None)
        encoded = _ENCODED_FILES.get(key) if key is not None else None
    except (AttributeError, TypeError):   # not a list of flat dicts of hashable values
        key = encoded = None
    if key is None:
        return _CANONICAL.encode(document)
    if encoded is None:
        encoded = _CANONICAL.encode(files)
        if len(_ENCODED_FILES) >= 256:
            _ENCODED_FILES.clear()
        _ENCODED_FILES[key] = encoded
    text = _CANONICAL.encode({**document, "write_files": _FILES_PLACEHOLDER})
    if text.count(_FILES_MARKER) != 1:
        return _CANONICAL.encode(document)
    return text.replace(_FILES_MARKER, encoded, 1)


def snippets_backend(cfg: "DesiredConfig") -> str:
    return getattr(cfg.defaults, "snippets_backend", "local") or "local"


def cicustom_for(cfg: "DesiredConfig", vm: "VMSpec") -> str | None:
    if snippets_backend(cfg) == "iso":
        return None
    return f"user={vm.snippets_storage}:snippets/{user_snippet_name(vm.vmid)}"


def render_documents(cfg: "DesiredConfig", vm: "VMSpec", agent_baked: bool | None,
                     features: "Mapping[str, Path] | None" = None) -> VMDocuments:
    """All cloud-init documents of ``vm``; ``agent_baked`` None (at plan time: the template is still to be
    built) leaves the user-data known only after apply.  ``features``: the features listing, taken once
    by a caller that renders many VMs."""
    from phoenix.desired.cloudinit import user_data_document

    document = None if agent_baked is None else user_data_document(vm, cfg, agent_baked, features)
    return VMDocuments(
        document=document,
        cicustom=cicustom_for(cfg, vm),
        vm=vm,
    )
