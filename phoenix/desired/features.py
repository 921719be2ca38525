"""Feature scripts: built-ins in ``phoenix/features/``, user ones in ``<desired dir>/features/``.

A feature is a file ``<name>.sh`` (used as is) or ``<name>.sh.j2`` (rendered with jinja2,
StrictUndefined, with the VM's values).  A user file shadows a built-in of the same name, so a
site can replace ``base`` without forking phoenix.  Scripts run in the guest from cloud-init and
must be idempotent.
"""

from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import jinja2

import phoenix.features

if TYPE_CHECKING:  # pragma: no cover
    from phoenix.desired.spec import VMSpec

BUILTIN_DIR = Path(phoenix.features.__file__).resolve().parent


class FeatureError(ValueError):
    """A feature that cannot be read or rendered; the message says why (one line)."""


def _scan(directory: Path) -> dict[str, Path]:
    """``name → file`` in one directory; ``x.sh.j2`` wins over ``x.sh``."""
    try:
        stamp = directory.stat().st_mtime_ns       # changes when a file is added, removed or renamed
    except OSError:
        return {}
    return dict(_scan_cached(directory, stamp))


@functools.lru_cache(maxsize=32)
def _scan_cached(directory: Path, stamp: int) -> tuple[tuple[str, Path], ...]:
    """One directory listing per (directory, mtime): a plan renders features for every VM."""
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return ()
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(".sh.j2") and len(path.name) > 6:
            found[path.name[:-6]] = path
        elif path.name.endswith(".sh") and len(path.name) > 3:
            found.setdefault(path.name[:-3], path)
    return tuple(found.items())


def available_features(base_dir: Optional[Path]) -> dict[str, Path]:
    """Feature name → script file: built-ins, then the user's ``features/`` (which wins)."""
    features = _scan(BUILTIN_DIR)
    if base_dir is not None:
        features.update(_scan(Path(base_dir) / "features"))
    return features


def feature_context(vm: "VMSpec") -> dict[str, object]:
    """The values a ``.sh.j2`` feature may use."""
    net = vm.network
    return {
        "vm_name": vm.name,
        "hostname": vm.hostname,
        "fqdn": vm.fqdn,
        "vmid": vm.vmid,
        "node": vm.node,
        "username": vm.user.username,
        "ip": net.address or "dhcp",
        "cidr": net.ip,
        "gateway": net.gw,
        "nameservers": list(net.nameservers),
        "searchdomain": net.searchdomain,
        "features": list(vm.features),
        "tags": list(vm.tags),
    }


@functools.lru_cache(maxsize=16)
def _environment(directory: Path) -> jinja2.Environment:
    """One jinja2 environment per features directory: it compiles each template once (and reloads a
    template whose file changed), instead of once per VM."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def render_feature(name: str, path: Path, vm: "VMSpec") -> str:
    """The script text for ``vm``; raises :class:`FeatureError` naming the file and the cause."""
    try:
        if path.name.endswith(".sh.j2"):
            text = _environment(path.parent).get_template(path.name).render(feature_context(vm))
        else:
            text = path.read_text(encoding="utf-8")
    except jinja2.TemplateSyntaxError as exc:
        raise FeatureError(f"feature {name!r} ({path.name}) line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise FeatureError(f"feature {name!r} ({path.name}): {exc.message or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FeatureError(f"feature {name!r}: cannot read {path.name}: {exc}") from None
    if not text.startswith("#!"):
        raise FeatureError(f"feature {name!r} ({path.name}) must start with a #! line")
    return text if text.endswith("\n") else text + "\n"
