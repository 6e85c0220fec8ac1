"""Settings from the environment, and the Celery configuration built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.celery_config import (
    CONTAINERS_QUEUE,
    IMAGES_QUEUE,
    MAINTENANCE_QUEUE,
    QUEUES,
    celery_config,
)
from config.settings import Settings, load_settings, normalize_capability


def test_defaults() -> None:
    settings = Settings()
    assert settings.image_cache_bytes == 10 * 1024**3 == 10_737_418_240
    assert settings.startup_warning_seconds == 5.0
    assert settings.allowed_bind_paths == []
    assert settings.allowed_capabilities == []
    assert settings.allow_privileged is False
    assert settings.allow_host_namespaces is False
    assert settings.allow_devices is False
    assert settings.default_network_mode == "bridge"
    assert settings.default_cpu_shares is None
    assert settings.default_mem_limit == 512 * 1024**2
    assert settings.redis_prefix == "containerizer:"
    assert settings.broker_url == "redis://127.0.0.1:6379/0"
    assert settings.state_dir == Path(".containerizer")


def test_contract_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_BROKER_URL", "redis://broker:6379/5")
    monkeypatch.setenv("CONTAINERIZER_RESULT_BACKEND", "redis://backend:6379/6")
    monkeypatch.setenv("CONTAINERIZER_REDIS_URL", "redis://state:6379/7")
    monkeypatch.setenv("CONTAINERIZER_IMAGE_CACHE_BYTES", "1048576")
    settings = Settings()
    assert settings.broker_url == "redis://broker:6379/5"
    assert settings.result_backend == "redis://backend:6379/6"
    assert settings.redis_url == "redis://state:6379/7"
    assert settings.image_cache_bytes == 1_048_576


def test_bind_paths_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_BIND_PATHS", "/a,/b")
    assert Settings().allowed_bind_paths == ["/a", "/b"]
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_BIND_PATHS", " /a , ,/b ,")
    assert Settings().allowed_bind_paths == ["/a", "/b"]
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_BIND_PATHS", "/single")
    assert Settings().allowed_bind_paths == ["/single"]
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_BIND_PATHS", "")
    assert Settings().allowed_bind_paths == []


def test_bind_paths_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_BIND_PATHS", '["/srv", "/data,with,commas"]')
    assert Settings().allowed_bind_paths == ["/srv", "/data,with,commas"]


def test_capabilities_are_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_CAPABILITIES", "cap_net_admin")
    assert Settings().allowed_capabilities == ["NET_ADMIN"]
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_CAPABILITIES", "cap_net_admin, sys_time,CAP_CHOWN")
    assert Settings().allowed_capabilities == ["NET_ADMIN", "SYS_TIME", "CHOWN"]
    monkeypatch.setenv("CONTAINERIZER_ALLOWED_CAPABILITIES", '["Cap_Sys_Admin"]')
    assert Settings().allowed_capabilities == ["SYS_ADMIN"]


def test_capabilities_normalized_when_passed_directly() -> None:
    assert Settings(allowed_capabilities=["net_raw"]).allowed_capabilities == ["NET_RAW"]
    assert Settings(allowed_capabilities="cap_a,cap_b").allowed_capabilities == ["A", "B"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("net_admin", "NET_ADMIN"), ("CAP_NET_ADMIN", "NET_ADMIN"), (" cap_chown ", "CHOWN")],
)
def test_normalize_capability(given: str, expected: str) -> None:
    assert normalize_capability(given) == expected


def test_booleans_and_numbers_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTAINERIZER_ALLOW_PRIVILEGED", "true")
    monkeypatch.setenv("CONTAINERIZER_DEFAULT_MEM_LIMIT", str(64 * 1024 * 1024))
    monkeypatch.setenv("CONTAINERIZER_STARTUP_WARNING_SECONDS", "2.5")
    settings = Settings()
    assert settings.allow_privileged is True
    assert settings.default_mem_limit == 64 * 1024 * 1024
    assert settings.startup_warning_seconds == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONTAINERIZER_DEFAULT_MEM_LIMIT", "1024"),
        ("CONTAINERIZER_DEFAULT_CPU_SHARES", "1"),
        ("CONTAINERIZER_IMAGE_CACHE_BYTES", "-1"),
        ("CONTAINERIZER_REDIS_PREFIX", "has space"),
        ("CONTAINERIZER_VISIBILITY_TIMEOUT_SECONDS", "10"),
        ("CONTAINERIZER_STARTUP_WARNING_SECONDS", "0"),
    ],
)
def test_out_of_range_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.allow_privileged = True  # type: ignore[misc]


def test_load_settings_reads_the_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "containerizer.env"
    env_file.write_text(
        "CONTAINERIZER_ALLOWED_BIND_PATHS=/srv,/data\nCONTAINERIZER_LOG_LEVEL=DEBUG\n"
    )
    monkeypatch.setenv("CONTAINERIZER_ENV_FILE", str(env_file))
    settings = load_settings(flower_port=0)
    assert settings.allowed_bind_paths == ["/srv", "/data"]
    assert settings.log_level == "DEBUG"
    assert settings.flower_port == 0


# --- celery_config --------------------------------------------------------------------------


def test_celery_config_is_json_only() -> None:
    conf = celery_config(Settings())
    assert conf["task_serializer"] == "json"
    assert conf["result_serializer"] == "json"
    assert conf["event_serializer"] == "json"
    assert conf["accept_content"] == ["json"]
    assert conf["result_accept_content"] == ["json"]


def test_celery_config_delivery_guarantees() -> None:
    conf = celery_config(Settings())
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1


def test_celery_config_routes_the_three_queues() -> None:
    conf = celery_config(Settings())
    assert QUEUES == ("containers", "images", "maintenance")
    assert conf["task_routes"] == {
        "containerizer.containers.*": {"queue": CONTAINERS_QUEUE},
        "containerizer.images.*": {"queue": IMAGES_QUEUE},
        "containerizer.maintenance.*": {"queue": MAINTENANCE_QUEUE},
        # Volumes and networks belong to a host's containers, and go with them.
        "containerizer.volumes.*": {"queue": CONTAINERS_QUEUE},
        "containerizer.networks.*": {"queue": CONTAINERS_QUEUE},
    }
    assert conf["task_default_queue"] == "containers"


def test_celery_config_follows_settings() -> None:
    settings = Settings(
        broker_url="redis://b:1/0",
        result_backend="redis://b:1/1",
        visibility_timeout_seconds=9_000,
        result_expires_seconds=600,
    )
    conf = celery_config(settings)
    assert conf["broker_url"] == "redis://b:1/0"
    # As configured: the app redacts whatever backend it names (tasks/celery_app.py).
    assert conf["result_backend"] == "redis://b:1/1"
    other = celery_config(Settings(result_backend="db+postgresql://h/db"))
    assert other["result_backend"] == "db+postgresql://h/db"
    assert conf["broker_transport_options"] == {
        "visibility_timeout": 9_000,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
    assert conf["result_expires"] == 600


def test_celery_config_default_visibility_timeout_and_events() -> None:
    conf = celery_config(Settings())
    # A pull's hard time limit (600 s timeout + 120 s stall + 360 s limit), plus a minute.
    assert conf["broker_transport_options"]["visibility_timeout"] == 1_140
    assert conf["worker_send_task_events"] is True
    assert conf["task_send_sent_event"] is True
    # A STARTED result write before every task costs the lifecycle benchmark about 2 %; Flower
    # sees task-started events anyway.
    assert conf["task_track_started"] is False


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose passes unset settings as empty strings.
    for name in ("REDIS_PREFIX", "REGISTRY_AUTH", "DEFAULT_CPU_SHARES", "ALLOWED_BIND_PATHS"):
        monkeypatch.setenv(f"CONTAINERIZER_{name}", "")
    settings = Settings()
    assert settings.redis_prefix == "containerizer:"
    assert settings.registry_auth is None and settings.default_cpu_shares is None
    assert settings.allowed_bind_paths == []
    with pytest.raises(ValidationError):
        Settings(redis_prefix="")
