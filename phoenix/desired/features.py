"""Feature scripts: built-ins in ``phoenix/features/``, user ones in ``<desired dir>/features/``.

A feature is a file ``<name>.sh`` (used as is) or ``<name>.sh.j2`` (rendered in jinja2's sandbox,
StrictUndefined, with only the VM's documented values in scope: see docs/security.md).  A user file shadows a built-in of the same name, so a
site can replace ``base`` without forking phoenix.  Scripts run in the guest from cloud-init and
must be idempotent.
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import jinja2
from jinja2.sandbox import SandboxedEnvironment

import phoenix.features
from phoenix.text import printable

if TYPE_CHECKING:  # pragma: no cover
    from phoenix.desired.spec import VMSpec

BUILTIN_DIR = Path(phoenix.features.__file__).resolve().parent
# User-data snippets are small (PVE's cloud-init reads them whole); a feature beyond this is a mistake.
MAX_FEATURE_BYTES = 256 * 1024


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
    """The values a ``.sh.j2`` feature may use — all of them (docs/desired.md lists them)."""
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


class _FeatureLoader(jinja2.BaseLoader):
    """Serves only regular files of one features directory: no sub-paths, no hidden files, no
    symbolic links (a link would read any file of the phoenix host into a VM's user-data)."""

    def __init__(self, directory: Path):
        self.directory = directory

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if "/" in template or "\\" in template or template.startswith("."):
            raise jinja2.TemplateNotFound(template)
        path = self.directory / template
        text, stamp = read_feature_file(path)
        return text, str(path), lambda: _stamp(path) == stamp


def read_feature_file(path: Path) -> tuple[str, int]:
    """The text of a feature file and its mtime; refuses links and anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FeatureError(f"{path.name} is a symbolic link; feature files must be regular files") from None
        raise jinja2.TemplateNotFound(path.name) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FeatureError(f"{path.name} is not a regular file")
        return handle.read(MAX_FEATURE_BYTES + 1).decode("utf-8"), info.st_mtime_ns


def _stamp(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def _environment(directory: Path) -> SandboxedEnvironment:
    """One sandboxed jinja2 environment per features directory (each template compiled once).

    Sandboxed, because a feature file must not run code on the phoenix host: attribute access to
    internals (``__class__``, ``__globals__``…) is refused, the default globals (``cycler``,
    ``joiner``, ``namespace``, ``lipsum``, ``range``, ``dict``) are removed, and the only names a
    template sees are :func:`feature_context`'s — never the environment or phoenix's settings.
    """
    env = SandboxedEnvironment(
        loader=_FeatureLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals.clear()
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def _template_line(exc: BaseException, path: Path) -> str:
    """`` line N`` of the feature file where rendering failed (jinja maps its frames to template lines)."""
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" line {lineno}" if lineno else ""


def render_feature(name: str, path: Path, vm: "VMSpec") -> str:
    """The script text for ``vm``; raises :class:`FeatureError` naming the file, the line and the cause."""
    try:
        if path.name.endswith(".sh.j2"):
            text = _environment(path.parent).get_template(path.name).render(feature_context(vm))
        else:
            text = read_feature_file(path)[0]
    except FeatureError as exc:
        raise FeatureError(f"feature {name!r}: {exc}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise FeatureError(f"feature {name!r} ({path.name}) line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise FeatureError(f"feature {name!r} ({path.name}){_template_line(exc, path)}: cannot read "
                           f"{printable(exc.name)!r} (a feature may include only files of its own directory)") from None
    except jinja2.TemplateError as exc:
        raise FeatureError(f"feature {name!r} ({path.name}){_template_line(exc, path)}: "
                           f"{printable(exc.message or exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FeatureError(f"feature {name!r}: cannot read {path.name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a filter or the sandbox itself raised: still the template's fault
        raise FeatureError(f"feature {name!r} ({path.name}){_template_line(exc, path)}: "
                           f"{type(exc).__name__}: {printable(exc)}") from None
    if len(text) > MAX_FEATURE_BYTES:
        raise FeatureError(f"feature {name!r} ({path.name}) is larger than {MAX_FEATURE_BYTES // 1024} KiB")
    if not text.startswith("#!"):
        raise FeatureError(f"feature {name!r} ({path.name}) must start with a #! line")
    return text if text.endswith("\n") else text + "\n"
