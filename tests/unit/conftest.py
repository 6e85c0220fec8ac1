"""Unit tests run with no CONTAINERIZER_* variable of the machine leaking into Settings()."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_containerizer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONTAINERIZER_"):
            monkeypatch.delenv(name)
