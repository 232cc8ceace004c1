"""The shapes of JSON the bot passes around, named once.

`Obj` is a Kubernetes object as the API server sends it (parsed JSON, read and built as a
dict); `ObjView` the same when only read; `Block` one Slack Block Kit block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]
ObjView = Mapping[str, Any]
Block = dict[str, Any]
