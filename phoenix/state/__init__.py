"""What phoenix applied: the state file, its backup and its lock (see docs/design.md)."""

from phoenix.state.lock import LockInfo
from phoenix.state.model import FORMAT_VERSION, ResourceState, State, fingerprint
from phoenix.state.store import StateStore

__all__ = ["FORMAT_VERSION", "LockInfo", "ResourceState", "State", "StateStore", "fingerprint"]
