"""``/access``: the login (``create_ticket``), users and effective permissions of root@pam and its token."""

from __future__ import annotations

from phoenix.sim.certs import TOKEN_ID
from phoenix.sim.core import PVEError, Request, route


@route("GET", "/access/ticket")
def get_ticket(req: Request) -> None:
    """PVE answers null here (the GUI uses it to show the login form)."""
    return None


@route("POST", "/access/ticket")
def create_ticket(req: Request) -> dict:
    """Password (or a still-valid ticket, for renewal) → ticket, CSRFPreventionToken, caps."""
    return req.sim.auth.login(req.params["username"], req.params["password"], req.params.get("realm"))


# --- users and permissions (pve-access-control User.pm, AccessControl.pm ``permissions``) -------

ROOT = "root@pam"
# The simulator's one API token (certs.TOKEN_ID) is not privilege-separated: it acts as root@pam.
PRIVILEGES = tuple(sorted(
    [f"Datastore.{p}" for p in ("Allocate", "AllocateSpace", "AllocateTemplate", "Audit")]
    + ["Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify", "Pool.Allocate",
       "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use", "User.Modify"]
    + [f"Sys.{p}" for p in ("AccessNetwork", "Audit", "Console", "Incoming", "Modify", "PowerMgmt", "Syslog")]
    + [f"VM.{p}" for p in ("Allocate", "Audit", "Backup", "Clone", "Config.CDROM", "Config.CPU", "Config.Cloudinit",
                           "Config.Disk", "Config.HWType", "Config.Memory", "Config.Network", "Config.Options",
                           "Console", "GuestAgent.Audit", "GuestAgent.FileRead", "GuestAgent.FileSystemMgmt",
                           "GuestAgent.FileWrite", "GuestAgent.Unrestricted", "Migrate", "PowerMgmt", "Replicate",
                           "Snapshot", "Snapshot.Rollback")]))
BASE_PATHS = ("/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms")


def _root_user(full: bool) -> dict:
    """root@pam as ``$extract_user_data`` prints it (user.cfg forces it to exist, enabled)."""
    user = {"userid": ROOT, "enable": 1, "expire": 0, "realm-type": "pam"}
    if full:
        user["groups"] = ""
        user["tokens"] = [{"tokenid": TOKEN_ID, "expire": 0, "privsep": 0}]
    return user


@route("GET", "/access/users")
def list_users(req: Request) -> list:
    """Only root@pam exists; a privsep=0 root token sees what root sees."""
    enabled = req.params.get("enabled")
    users = [_root_user(bool(req.params.get("full")))]
    return [u for u in users if enabled is None or u["enable"] == enabled]


@route("GET", "/access/users/{userid}")
def read_user(req: Request) -> dict:
    userid = req.params["userid"]
    if userid != ROOT:
        raise PVEError(f"no such user ('{userid}')\n")
    return {"enable": 1, "expire": 0, "groups": [], "tokens": {TOKEN_ID: {"expire": 0, "privsep": 0}}}


@route("GET", "/access/permissions")
def permissions(req: Request) -> dict:
    """Administrator everywhere for root@pam and its privsep=0 token: every privilege, propagated."""
    userid = req.params.get("userid") or req.user
    if userid.split("!", 1)[0] != ROOT:
        raise PVEError(f"no such user ('{userid.split('!', 1)[0]}')\n")
    if "!" in userid and userid != f"{ROOT}!{TOKEN_ID}":
        raise PVEError(f"no such token '{userid.split('!', 1)[1]}' for user '{ROOT}'\n")
    everything = dict.fromkeys(PRIVILEGES, 1)
    if req.params.get("path") is not None:
        return {req.params["path"]: dict(everything)}
    paths = list(BASE_PATHS)
    with req.sim.mutex:
        pools = req.sim.model.pools.by_id
        for poolid, pool in sorted(pools.items()):
            paths += [f"/pool/{poolid}"] + [f"/vms/{vmid}" for vmid in pool.vms] + [f"/storage/{s}" for s in pool.storage]
    return {path: dict(everything) for path in dict.fromkeys(paths)}
