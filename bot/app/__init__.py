"""The composition root: the one place that builds every client, service and route, and the
only package that knows every feature.

Nothing is built at import time. `build_services` opens the store and builds the clients,
the core services and each feature's service (`services.py`); `build_app` returns the aiohttp
application whose startup opens the Slack session and whose cleanup drains in-flight work
and closes everything again (`web.py`), with every feature's listeners on Bolt (`features.py`,
`bolt.py`); `serve` runs it (`serve.py`). Tests call the same functions with settings that
point at emulators.
"""

from bot.app.serve import serve
from bot.app.services import Services, answer_budgets, build_backups, build_doctor, build_services
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
