"""The composition root: the one place that builds every client, service and route, and the
only package that knows every feature.

Nothing is built at import time. `build_services` opens the store and builds the clients,
the core services and each feature's service (`services.py`); `build_app` returns the aiohttp
application whose startup opens the Slack session and whose cleanup drains in-flight work
and closes everything again (`web.py`), with every feature's listeners on Bolt (`features.py`,
`bolt.py`); `serve` runs it (`serve.py`). Tests call the same functions with settings that
point at emulators.

The names below are loaded on first use: the command line (`python -m bot backup`, a
disaster-recovery tool timed against kubectl) lives in this package too, and must not pay
for importing every feature, the store's migrations and the S3 client before it starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app.serve import serve
    from bot.app.services import (
        Services,
        answer_budgets,
        build_backups,
        build_doctor,
        build_services,
    )
    from bot.app.web import build_app, close_services

__all__ = [
    "Services",
    "answer_budgets",
    "build_app",
    "build_backups",
    "build_doctor",
    "build_services",
    "close_services",
    "serve",
]

_SUBMODULES = ("bot.app.serve", "bot.app.services", "bot.app.web")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _SUBMODULES:
        loaded = importlib.import_module(module)
        # Importing bot.app.serve binds the submodule to the name `serve` here: rebind every
        # exported name to the object it names, as the eager imports used to.
        globals().update({n: getattr(loaded, n) for n in __all__ if hasattr(loaded, n)})
    return globals()[name]
