"""create_kwargs: the docker-py keywords a validated spec becomes, with the operator's defaults and
the hardening every container gets."""

from __future__ import annotations

from typing import Any

import docker.types
import pytest

from config.settings import Settings
from workers.container_config import create_kwargs, dropped_capabilities
from workers.spec import MANAGED_LABEL, SPEC_HASH_LABEL, ContainerSpec, parse_spec

MiB = 1024 * 1024
SETTINGS = Settings()


def spec(**fields: Any) -> ContainerSpec:
    return parse_spec({"image": "busybox:1.36", **fields})


def test_a_minimal_spec_gets_every_hardened_default() -> None:
    parsed = spec()
    assert create_kwargs(parsed, SETTINGS) == {
        "image": "busybox:1.36",
        "network_mode": "bridge",
        "mem_limit": 512 * MiB,
        "memswap_limit": 512 * MiB,  # No swap.
        "pids_limit": 1024,
        "cap_drop": ["NET_RAW", "MKNOD"],
        "security_opt": ["no-new-privileges:true"],
        "log_config": docker.types.LogConfig(
            type="json-file", config={"max-size": "10m", "max-file": "3"}
        ),
        "runtime": "runc",
        "labels": {MANAGED_LABEL: "true", SPEC_HASH_LABEL: parsed.spec_hash()},
    }


def test_the_service_labels_come_last_and_keep_the_callers() -> None:
    parsed = spec(name="web", labels={"team": "a"})
    kwargs = create_kwargs(parsed, SETTINGS, labels={"containerizer.create-token": "t"})
    assert kwargs["labels"] == {
        "team": "a",
        "containerizer.create-token": "t",
        "containerizer.managed": "true",
        "containerizer.spec-hash": parsed.spec_hash(),
    }
    assert kwargs["name"] == "web"


def test_defaults_apply_only_when_the_spec_has_none() -> None:
    settings = Settings(
        default_network_mode="appnet",
        default_cpu_shares=256,
        default_mem_limit=64 * MiB,
        default_pids_limit=50,
    )
    kwargs = create_kwargs(spec(), settings)
    assert (kwargs["network_mode"], kwargs["cpu_shares"]) == ("appnet", 256)
    assert (kwargs["mem_limit"], kwargs["memswap_limit"], kwargs["pids_limit"]) == (
        64 * MiB,
        64 * MiB,
        50,
    )
    kwargs = create_kwargs(
        spec(network_mode="none", cpu_shares=1024, mem_limit="1g", pids_limit=20), settings
    )
    assert (kwargs["network_mode"], kwargs["cpu_shares"]) == ("none", 1024)
    assert (kwargs["mem_limit"], kwargs["memswap_limit"], kwargs["pids_limit"]) == (
        1024 * MiB,
        1024 * MiB,
        20,
    )


def test_a_spec_that_asks_for_swap_keeps_it() -> None:
    kwargs = create_kwargs(spec(mem_limit="64m", memswap_limit="128m"), SETTINGS)
    assert kwargs["memswap_limit"] == 128 * MiB


def test_a_network_is_the_containers_network_mode_too() -> None:
    kwargs = create_kwargs(spec(network="jobs-net"), SETTINGS)
    assert kwargs["network"] == "jobs-net" and kwargs["network_mode"] == "jobs-net"


def test_capabilities_drop_the_operators_list_but_what_cap_add_asks() -> None:
    assert dropped_capabilities(spec(), SETTINGS) == ["NET_RAW", "MKNOD"]
    assert dropped_capabilities(spec(cap_add=["net_raw"]), SETTINGS) == ["MKNOD"]
    assert dropped_capabilities(spec(cap_drop=["CHOWN", "MKNOD"]), SETTINGS) == [
        "NET_RAW",
        "MKNOD",
        "CHOWN",
    ]
    every = Settings(dropped_capabilities=["ALL"])
    assert create_kwargs(spec(), every)["cap_drop"] == ["ALL"]
    assert "cap_drop" not in create_kwargs(spec(), Settings(dropped_capabilities=[]))


def test_no_new_privileges_and_read_only_follow_the_settings() -> None:
    assert "security_opt" not in create_kwargs(spec(), Settings(no_new_privileges=False))
    assert "read_only" not in create_kwargs(spec(), SETTINGS)
    assert create_kwargs(spec(), Settings(read_only_rootfs=True))["read_only"] is True
    assert create_kwargs(spec(read_only=False), Settings(read_only_rootfs=True))["read_only"] is (
        False
    )


def test_tmpfs_is_never_executable_and_always_sized() -> None:
    kwargs = create_kwargs(
        spec(tmpfs={"/tmp": "", "/run": "size=8m,mode=1777", "/ro": "ro,noexec"}), SETTINGS
    )
    assert kwargs["tmpfs"] == {
        "/tmp": f"rw,noexec,nosuid,nodev,size={64 * MiB}",
        "/run": f"rw,noexec,nosuid,nodev,size={8 * MiB},mode=1777",
        "/ro": f"ro,noexec,nosuid,nodev,size={64 * MiB}",
    }
    assert create_kwargs(spec(tmpfs=["/cache:size=1m"]), SETTINGS)["tmpfs"] == {
        "/cache": f"rw,noexec,nosuid,nodev,size={MiB}"
    }


def test_gpus_become_a_device_request_on_the_gpu_runtime() -> None:
    settings = Settings(gpu_runtime="nvidia")
    kwargs = create_kwargs(spec(gpus=2), settings)
    assert "gpus" not in kwargs
    (request,) = kwargs["device_requests"]
    assert isinstance(request, docker.types.DeviceRequest)
    assert (request.count, request.capabilities) == (2, [["gpu"]])
    assert kwargs["runtime"] == "nvidia"
    (every,) = create_kwargs(spec(gpus=-1), settings)["device_requests"]
    assert every.count == -1
    for quiet in (spec(gpus=0), spec()):
        kwargs = create_kwargs(quiet, settings)
        assert "device_requests" not in kwargs and kwargs["runtime"] == "runc"


def test_ports_are_published_on_the_first_allowed_address_unless_named() -> None:
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
        Settings(allowed_port_addresses=["10.1.2.3", "127.0.0.1"]),
    )
    assert kwargs["ports"] == {
        "80/tcp": [("127.0.0.1", 8080)],
        "81": [("127.0.0.1", None)],
        "82": [("10.1.2.3", 8082)],
        "83": [("10.1.2.3", None)],
        "84": [("10.1.2.3", 8084), ("10.1.2.3", 9084)],
    }


def test_nested_values_are_plain_dicts_and_commands_are_split() -> None:
    kwargs = create_kwargs(
        spec(
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
            healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000},
            volumes={"/srv": {"bind": "/data", "mode": "ro"}},
            command="sh -c 'echo hi; exit 3'",
        ),
        SETTINGS,
    )
    assert kwargs["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert kwargs["healthcheck"] == {"test": ["CMD", "true"], "interval": 1_000_000_000}
    assert kwargs["volumes"] == {"/srv": {"bind": "/data", "mode": "ro"}}
    assert kwargs["command"] == ["sh", "-c", "echo hi; exit 3"]


@pytest.mark.parametrize(("given", "kept"), [(True, True), (False, False)])
def test_privileged_only_when_true(given: bool, kept: bool) -> None:
    assert ("privileged" in create_kwargs(spec(privileged=given), SETTINGS)) is kept
