"""create_kwargs: the docker-py keywords a validated spec becomes, with the operator's defaults."""

from __future__ import annotations

from typing import Any

import docker.types

from config.settings import Settings
from workers.container_config import create_kwargs
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, parse_spec

MiB = 1024 * 1024
SETTINGS = Settings()


def spec(**fields: Any) -> ContainerSpec:
    return parse_spec({"image": "busybox:1.36", **fields})


# --- create_kwargs --------------------------------------------------------------------------


def test_create_kwargs_of_a_minimal_spec() -> None:
    parsed = spec()
    assert create_kwargs(parsed, SETTINGS) == {
        "image": "busybox:1.36",
        "network_mode": "bridge",
        "labels": {MANAGED_LABEL: "true", SPEC_HASH_LABEL: parsed.spec_hash()},
    }


def test_create_kwargs_keeps_caller_labels_and_adds_ours() -> None:
    parsed = spec(name="web", labels={"team": "a"})
    kwargs = create_kwargs(parsed, SETTINGS)
    assert kwargs["labels"] == {
        "team": "a",
        "containerizer.managed": "true",
        "containerizer.spec-hash": parsed.spec_hash(),
    }
    assert kwargs["name"] == "web"


def test_create_kwargs_defaults_apply_only_when_the_spec_has_none() -> None:
    settings = Settings(
        default_network_mode="appnet", default_cpu_shares=256, default_mem_limit=64 * MiB
    )
    kwargs = create_kwargs(spec(), settings)
    assert kwargs["network_mode"] == "appnet"
    assert kwargs["cpu_shares"] == 256
    assert kwargs["mem_limit"] == 64 * MiB

    kwargs = create_kwargs(spec(network_mode="none", cpu_shares=1024, mem_limit="1g"), settings)
    assert kwargs["network_mode"] == "none"
    assert kwargs["cpu_shares"] == 1024
    assert kwargs["mem_limit"] == 1024 * MiB


def test_create_kwargs_without_default_limits_sets_none() -> None:
    kwargs = create_kwargs(spec(), SETTINGS)
    assert "cpu_shares" not in kwargs
    assert "mem_limit" not in kwargs


def test_create_kwargs_gpus_become_a_device_request() -> None:
    kwargs = create_kwargs(spec(gpus=2), SETTINGS)
    assert "gpus" not in kwargs
    (request,) = kwargs["device_requests"]
    assert isinstance(request, docker.types.DeviceRequest)
    assert request.count == 2
    assert request.capabilities == [["gpu"]]

    (every,) = create_kwargs(spec(gpus=-1), SETTINGS)["device_requests"]
    assert every.count == -1
    assert "device_requests" not in create_kwargs(spec(gpus=0), SETTINGS)
    assert "device_requests" not in create_kwargs(spec(), SETTINGS)


def test_create_kwargs_ports() -> None:
    kwargs = create_kwargs(
        spec(
            ports={
                "80/tcp": ["127.0.0.1", 8080],
                "81": ["127.0.0.1", None],
                "82": 8082,
                "83": None,
                "84": [8084, 9084],
            }
        ),
        SETTINGS,
    )
    assert kwargs["ports"] == {
        "80/tcp": ("127.0.0.1", 8080),
        "81": ("127.0.0.1", None),
        "82": 8082,
        "83": None,
        "84": [8084, 9084],
    }


def test_create_kwargs_nested_values_are_plain_dicts() -> None:
    kwargs = create_kwargs(
        spec(
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
            healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000},
            volumes={"/srv": {"bind": "/data", "mode": "ro"}},
            mem_limit="512m",
        ),
        SETTINGS,
    )
    assert kwargs["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert kwargs["healthcheck"] == {"test": ["CMD", "true"], "interval": 1_000_000_000}
    assert kwargs["volumes"] == {"/srv": {"bind": "/data", "mode": "ro"}}
    assert kwargs["mem_limit"] == 512 * MiB


def test_create_kwargs_privileged_only_when_true() -> None:
    assert "privileged" not in create_kwargs(spec(privileged=False), SETTINGS)
    assert create_kwargs(spec(privileged=True), SETTINGS)["privileged"] is True
