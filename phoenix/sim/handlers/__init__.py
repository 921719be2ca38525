"""Handler modules: importing this package imports every module in it, so each registers its routes.

Modules register with ``@phoenix.sim.core.route(METHOD, template)``; adding a file here is all it
takes for the HTTP layer to serve it.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__: list[str] = []

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
