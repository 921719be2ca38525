"""The plan's steps as typed data: one frozen dataclass per operation, its arguments as fields.

A step carries everything apply needs to perform it (Terraform's ``Changes``: apply is described
entirely by the plan).  The one fact a plan cannot know — whether a template still to be built
will have the guest agent in its image — is an output of that template's chain, which the
executor hands to the chains that depend on it (``DeliverUserData.agent_baked`` None).

On disk a step is ``{"op": ..., "args": {...}, "note": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar


class Op(StrEnum):
    PROVISION_TEMPLATE = "provision_template"
    CLONE = "clone"
    RESIZE = "resize"
    CONFIGURE = "configure"
    DELIVER_USER_DATA = "deliver_user_data"
    REGENERATE_CLOUDINIT = "regenerate_cloudinit"
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    WAIT_GUEST = "wait_guest"
    REVERT_PENDING = "revert_pending"
    DESTROY = "destroy"
    REMOVE_USER_DATA = "remove_user_data"
    FORGET = "forget"


@dataclass(frozen=True, kw_only=True)
class Step:
    """Base of every step; ``note`` is shown next to it (e.g. "takes effect at the next boot")."""

    op: ClassVar[Op]
    note: str = ""

    @property
    def args(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "note"}

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op.value, "args": self.args, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class ProvisionTemplate(Step):
    op = Op.PROVISION_TEMPLATE
    vmid: int


@dataclass(frozen=True, kw_only=True)
class Clone(Step):
    op = Op.CLONE
    source: int
    source_node: str
    newid: int
    name: str
    full: bool
    target: str | None = None           # another node than the template's
    storage: str | None = None          # full clones only
    resume: bool = False                # the VMID holds an unfinished clone of ours: wait for it first


@dataclass(frozen=True, kw_only=True)
class Resize(Step):
    op = Op.RESIZE
    disk: str
    size_gb: int


@dataclass(frozen=True, kw_only=True)
class Configure(Step):
    """One config write; ``attributes`` are registry names → desired values (None: remove).
    ``destroy_volumes``: removed disks whose volume is destroyed too (PVE keeps a detached disk's
    volume as ``unusedN``; phoenix then deletes that entry)."""

    op = Op.CONFIGURE
    attributes: dict[str, Any] = field(default_factory=dict)
    destroy_volumes: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class DeliverUserData(Step):
    """``user_data``: the planned fingerprint (KNOWN_AFTER_APPLY when the template is still to be built).
    ``agent_baked``: known from the template's tags, or None = the output of ``template_vmid``'s chain."""

    op = Op.DELIVER_USER_DATA
    template_vmid: int
    agent_baked: bool | None
    user_data: str | None = None


@dataclass(frozen=True, kw_only=True)
class WaitGuest(Step):
    """Wait (bounded) until the guest ran its cloud-init and every feature succeeded (phoenix.pve.guest).
    ``rerun``: run the feature runner again first when its results are failed or stale (a tainted VM);
    ``new_instance``: the VM was rebooted for a cloud-init change, so the instance-id must change."""

    op = Op.WAIT_GUEST
    timeout: int = 900
    rerun: bool = False
    new_instance: bool = False


@dataclass(frozen=True, kw_only=True)
class RevertPending(Step):
    """Drop pending values that differ from the (declared) current ones: ``PUT /config revert=…``."""

    op = Op.REVERT_PENDING
    keys: list[str] = field(default_factory=list)


# Steps without arguments: the base dataclass's field (``note``) is all they have.
class RegenerateCloudinit(Step): op = Op.REGENERATE_CLOUDINIT      # noqa: E701
class Start(Step): op = Op.START                                   # noqa: E701
class Stop(Step): op = Op.STOP                                     # noqa: E701
class Reboot(Step): op = Op.REBOOT                                 # noqa: E701
class Destroy(Step): op = Op.DESTROY                               # noqa: E701
class RemoveUserData(Step): op = Op.REMOVE_USER_DATA               # noqa: E701
class Forget(Step): op = Op.FORGET                                 # noqa: E701


STEP_TYPES: dict[Op, type[Step]] = {cls.op: cls for cls in (
    ProvisionTemplate, Clone, Resize, Configure, DeliverUserData, RegenerateCloudinit, Start, Stop, Reboot,
    WaitGuest, RevertPending, Destroy, RemoveUserData, Forget)}


@dataclass(frozen=True)
class TemplateOutputs:
    """What a template chain hands to the VM chains that clone it."""

    agent_baked: bool


def step_from_json(data: dict[str, Any]) -> Step:
    """Inverse of ``Step.to_json``; an unknown op or argument raises (ValueError/TypeError)."""
    cls = STEP_TYPES[Op(data["op"])]
    return cls(**dict(data.get("args") or {}), note=str(data.get("note") or ""))
