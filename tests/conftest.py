"""Fixtures shared by every test tier. Extend pytest_plugins; keep it a list."""

import sys
from pathlib import Path

# --import-mode=importlib does not put the repository root on sys.path; the plugins below need it.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.controlplane",
    "tests.fixtures.browser",
]
