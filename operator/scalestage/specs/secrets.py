"""The credentials Secret: database passwords and the app's secret key, generated once.

The builder is pure: the handler passes `credentials(observed)`, the values of the existing Secret
with fresh ones for keys still missing. The values never appear in status, events or logs.
"""

from __future__ import annotations

import base64
import secrets as random
from collections.abc import Callable, Mapping

from ..names import Names
from ..stages import Plan
from .common import Manifest, metadata

DB_PASSWORD = "password"  # the `chirp` database user (PGPASSWORD of the app)
REPLICATION_PASSWORD = "replication-password"  # the `replicator` user of streaming replicas
SECRET_KEY = "secret-key"  # CHIRP_SECRET_KEY
KEYS = (DB_PASSWORD, REPLICATION_PASSWORD, SECRET_KEY)


def credentials(
    observed: Mapping | None, token: Callable[[int], str] = random.token_urlsafe
) -> dict[str, str]:
    """The values the Secret holds; only missing keys are generated (changing a password that a
    database already uses would lock the app out)."""
    data = (observed or {}).get("data") or {}
    return {
        key: base64.b64decode(data[key]).decode() if key in data else token(32) for key in KEYS
    }


def build(plan: Plan, names: Names, credentials: Mapping[str, str]) -> list[Manifest]:
    del plan  # every stage needs the same credentials
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(names, names.credentials, "credentials"),
            "type": "Opaque",
            "data": {key: base64.b64encode(credentials[key].encode()).decode() for key in KEYS},
        }
    ]
