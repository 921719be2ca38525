"""What phoenix remembers about what it applied: plain, JSON-serialisable, never secret.

The state records, per VMID, the declared attributes as they were applied, each written as soon
as the step that made it true completed; with PVE's facts, that is what the next plan resumes from.  Secrets (password
hashes, API tokens, rendered user-data) are stored only as :func:`fingerprint`\\ s: enough to
notice that they changed, useless to recover them.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, SecretBytes, SecretStr, ValidationError, field_validator,
                      model_validator)

from phoenix.errors import PhoenixError

__all__ = ["FORMAT_VERSION", "State", "ResourceState", "fingerprint", "first_error", "utc_now",
           "SECRET_ATTRIBUTE_NAMES"]

FORMAT_VERSION = 1

# Attribute names that can only hold secrets; the state refuses them (store a fingerprint instead).
SECRET_ATTRIBUTE_NAMES = frozenset({
    "password", "password_hash", "cipassword", "api_token", "token", "token_secret", "secret",
})


def first_error(exc: ValidationError) -> tuple[str, str]:
    """``(dotted location, message)`` of a validation error's first problem, for a one-line error."""
    first = exc.errors()[0]
    return ".".join(str(part) for part in first.get("loc", ())), str(first.get("msg"))


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(secret: str, lineage: str) -> str:
    """HMAC-SHA256 of ``secret`` keyed by the state's lineage: comparable within one state, not
    across states (so equal passwords in two states do not look equal), and not reversible."""
    return "hmac-sha256:" + hmac.digest(lineage.encode("utf-8"), secret.encode("utf-8"), "sha256").hex()


def _reject_secrets(value: Any, path: str) -> None:
    """Raise if a secret-typed value or a secret-named key hides anywhere in ``value``.

    A state holds ~20 attributes per VM, mostly plain values under the same few names: a plain value
    (str, int, float, bool, None) is not walked into, and a name once seen not to be secret is not
    lowered again (reading a 10,000-VM state spent ~0.2 s here)."""
    if isinstance(value, (SecretStr, SecretBytes)):
        raise ValueError(f"{path} is a secret; store fingerprint(...) in 'fingerprints' instead")
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _PLAIN_NAMES:
                if str(key).lower() in SECRET_ATTRIBUTE_NAMES:
                    if item not in (None, ""):
                        raise ValueError(f"{path}.{key} looks like a secret; store fingerprint(...) in "
                                         f"'fingerprints' instead")
                elif type(key) is str and len(_PLAIN_NAMES) < 4096:
                    _PLAIN_NAMES.add(key)
            if type(item) not in _PLAIN_TYPES:
                _reject_secrets(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if type(item) not in _PLAIN_TYPES:
                _reject_secrets(item, f"{path}[{index}]")


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_PLAIN_NAMES: set[str] = set()       # attribute names seen not to name a secret


class ResourceState(BaseModel):
    """One template or VM phoenix manages."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    kind: Literal["template", "vm"]
    vmid: int
    name: str
    node: str
    template_vmid: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    fingerprints: dict[str, str] = Field(default_factory=dict)
    # Why the last apply of this resource failed (agent silent, feature failed, task error), like
    # Terraform's "tainted": the next plan shows it and acts on it until an apply succeeds.
    tainted: str | None = None
    updated_at: str = Field(default_factory=utc_now)

    @model_validator(mode="before")
    @classmethod
    def _drop_steps_done(cls, data: Any) -> Any:
        """States written before 2026-11 carry ``steps_done``, a list nothing ever read: dropped."""
        if isinstance(data, dict) and "steps_done" in data:
            data = {k: v for k, v in data.items() if k != "steps_done"}
        return data

    @field_validator("attributes")
    @classmethod
    def _no_secret_attributes(cls, value: dict[str, Any]) -> dict[str, Any]:
        _reject_secrets(value, "attributes")
        return value

    @field_validator("fingerprints")
    @classmethod
    def _only_fingerprints(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not item.startswith("hmac-sha256:"):
                raise ValueError(f"fingerprints.{key} is not a fingerprint (use phoenix.state.fingerprint)")
        return value


class State(BaseModel):
    """The whole state file.  ``lineage`` identifies one state's history; ``serial`` counts writes."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)

    format_version: int = Field(default=FORMAT_VERSION, strict=True)   # "1" or 1.0 is not a version
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=64,
                         pattern=r"^[A-Za-z0-9-]+$")
    serial: int = 0
    resources: dict[str, ResourceState] = Field(default_factory=dict)
    # The key of the MAC that binds a saved plan to this state (phoenix/plan/seal.py).  Unlike the
    # lineage, which every plan file names, it never leaves the state file (mode 0600).
    plan_key: str = Field(default_factory=lambda: secrets.token_hex(32), pattern=r"^[0-9a-f]{64}$", repr=False)

    @field_validator("resources")
    @classmethod
    def _keys_are_vmids(cls, value: dict[str, ResourceState]) -> dict[str, ResourceState]:
        for key, resource in value.items():
            if key != str(resource.vmid):
                raise ValueError(f"resources.{key} holds vmid {resource.vmid}; keys must be the vmid")
        return value

    def get(self, vmid: int) -> ResourceState | None:
        return self.resources.get(str(vmid))

    def put(self, resource: ResourceState) -> None:
        """Add or replace the record of ``resource.vmid`` (re-validated: no secrets slip in)."""
        try:
            resource = ResourceState.model_validate(resource.model_dump())
        except ValidationError as exc:
            where, message = first_error(exc)
            raise PhoenixError(f"refusing to record VM {resource.vmid} in the state: {where}: {message}") from None
        # In place: assigning a new dict would re-validate every record (O(N) per step of an apply).
        self.resources[str(resource.vmid)] = resource

    def remove(self, vmid: int) -> ResourceState | None:
        return self.resources.pop(str(vmid), None)

    def fingerprint(self, secret: str) -> str:
        """:func:`fingerprint` keyed by this state's lineage."""
        return fingerprint(secret, self.lineage)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"
