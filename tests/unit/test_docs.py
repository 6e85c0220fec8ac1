"""The README documents what the code has: every setting, every task, every error name."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from workers import errors

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    assert f"| `CONTAINERIZER_{name.upper()}` |" in README


@pytest.mark.parametrize("name", errors.__all__)
def test_every_public_error_is_documented(name: str) -> None:
    if name in ("ContainerizerError", "TransientError"):
        assert name in README
    else:
        assert f"| `{name}` |" in README


def test_every_task_is_in_the_contract_table() -> None:
    import tasks

    tasks.app.loader.import_default_modules()
    names = sorted(n for n in tasks.app.tasks if n.startswith("containerizer."))
    assert len(names) == 31
    for name in names:
        assert f"| `{name}` |" in README, name
