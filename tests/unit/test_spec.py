"""ContainerSpec validation: what parse_spec accepts, normalizes and refuses."""

from __future__ import annotations

from typing import Any

import pytest

from workers.errors import InvalidSpec
from workers.spec import (
    MANAGED_LABEL,
    MIN_MEMORY_BYTES,
    Mount,
    parse_bytes,
    parse_spec,
)

MiB = 1024 * 1024
GiB = 1024 * MiB


def spec(**fields: Any) -> dict[str, Any]:
    return {"image": "busybox:1.36", **fields}


# --- the acceptance list: every one of these is InvalidSpec ------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"image": "UPPER/Case"}, "image"),
        (spec(mem_limit=-1), "mem_limit"),
        (spec(mem_limit="4m"), "mem_limit"),
        (spec(mem_limit="-1"), "mem_limit"),
        (spec(no_such_field=1), "no_such_field"),
        (spec(name="a"), "name"),
        (spec(name="-web"), "name"),
        (spec(name="web/1"), "name"),
        (spec(name="w" * 256), "name"),
        (spec(privileged="yes"), "privileged"),
        (spec(privileged=1), "privileged"),
        (spec(read_only="true"), "read_only"),
        (spec(cpu_shares="512"), "cpu_shares"),
        (spec(cpu_shares=1), "cpu_shares"),
        (spec(labels={"containerizer.managed": "true"}), "labels"),
        (spec(labels={"containerizer.owner": "me"}), "labels"),
        (spec(working_dir="relative/dir"), "working_dir"),
        (spec(cap_add=["SYS-ADMIN"]), "cap_add"),
        (spec(gpus=-2), "gpus"),
        (spec(pids_limit=-2), "pids_limit"),
        (spec(environment={"A": True}), "environment"),
        (spec(environment=["=value"]), "environment"),
        (spec(command=3), "command"),
        ({"name": "web"}, "image"),
        ({"image": ""}, "image"),
        ({"image": 42}, "image"),
    ],
)
def test_invalid_specs_raise_invalid_spec_naming_the_field(
    data: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(data)
    assert str(caught.value).startswith("invalid spec: ")
    assert f"{field}" in str(caught.value)


def test_unknown_field_is_reported_as_unknown() -> None:
    with pytest.raises(InvalidSpec, match=r"bogus: unknown field"):
        parse_spec(spec(bogus=True))


def test_every_offending_field_is_named() -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec(name="a", privileged="yes", extra=1))
    message = str(caught.value)
    assert "name:" in message
    assert "privileged:" in message
    assert "extra: unknown field" in message


@pytest.mark.parametrize("data", [[], [{"image": "busybox"}], "busybox", None, 42, b"{}"])
def test_spec_that_is_not_an_object_is_refused(data: object) -> None:
    with pytest.raises(InvalidSpec, match="spec must be a JSON object"):
        parse_spec(data)


def test_image_error_names_the_image_field() -> None:
    with pytest.raises(InvalidSpec, match=r"image: invalid repository name"):
        parse_spec({"image": "UPPER/Case"})


# --- memory ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("512mb", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("1g", GiB),
        (" 2G ", 2 * GiB),
        ("1t", 1024 * GiB),
        ("8388608", 8 * MiB),
        ("7340032b", 7 * MiB),
        ("7168k", 7 * MiB),
        (536_870_912, 512 * MiB),
    ],
)
def test_mem_limit_is_normalized_to_bytes(given: object, expected: int) -> None:
    assert parse_spec(spec(mem_limit=given)).mem_limit == expected


def test_exactly_six_mib_is_the_floor() -> None:
    assert parse_spec(spec(mem_limit=6 * MiB)).mem_limit == MIN_MEMORY_BYTES == 6 * MiB
    assert parse_spec(spec(mem_limit="6m")).mem_limit == 6 * MiB
    with pytest.raises(InvalidSpec, match=r"mem_limit: must be at least 6 MiB"):
        parse_spec(spec(mem_limit=6 * MiB - 1))


@pytest.mark.parametrize("given", ["lots", "512x", "1.5g", "", "m", 1.5e9, True, [512]])
def test_mem_limit_must_be_bytes_or_a_size(given: object) -> None:
    with pytest.raises(InvalidSpec, match="mem_limit"):
        parse_spec(spec(mem_limit=given))


def test_parse_bytes_names_its_field() -> None:
    with pytest.raises(ValueError, match="memswap_limit must be bytes"):
        parse_bytes("nope", field="memswap_limit")
    assert parse_bytes("3k", field="x") == 3072


def test_memswap_minus_one_means_unlimited() -> None:
    parsed = parse_spec(spec(mem_limit="512m", memswap_limit=-1))
    assert (parsed.mem_limit, parsed.memswap_limit) == (512 * MiB, -1)
    # Unlimited swap needs no mem_limit.
    assert parse_spec(spec(memswap_limit=-1)).memswap_limit == -1


def test_memswap_at_least_mem_limit() -> None:
    parsed = parse_spec(spec(mem_limit="1g", memswap_limit="2g"))
    assert parsed.memswap_limit == 2 * GiB
    assert parse_spec(spec(mem_limit="1g", memswap_limit="1g")).memswap_limit == GiB
    with pytest.raises(InvalidSpec, match="memswap_limit must be -1 or at least mem_limit"):
        parse_spec(spec(mem_limit="1g", memswap_limit="512m"))


def test_memswap_needs_mem_limit() -> None:
    with pytest.raises(InvalidSpec, match="memswap_limit needs mem_limit"):
        parse_spec(spec(memswap_limit="1g"))


# --- ports ----------------------------------------------------------------------------------


def test_port_binding_forms() -> None:
    ports = {
        "80": 8080,
        "81/tcp": None,
        "53/udp": 5353,
        "132/sctp": 1132,
        "82": ["127.0.0.1", 8082],
        "83": ["127.0.0.1", None],
        "84": [8084, 9084],
    }
    assert parse_spec(spec(ports=ports)).ports == ports


@pytest.mark.parametrize(
    "ports",
    [
        {"0": 80},
        {"65536": 80},
        {"80/xyz": 80},
        {"http": 80},
        {"80": 0},
        {"80": 65536},
        {"80": "8080"},
        {"80": True},
        {"80": []},
        {"80": ["127.0.0.1", "8080"]},
        {"80": ["127.0.0.1", 8080, 1]},
        {"80": [8080, "x"]},
        {"80": {"HostPort": "8080"}},
    ],
)
def test_bad_ports_are_refused(ports: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec, match=r"ports"):
        parse_spec(spec(ports=ports))


def test_port_key_with_trailing_newline_is_refused() -> None:
    # `$` in a Python regex also matches before a final newline: "80\n" is not a port.
    with pytest.raises(InvalidSpec, match="ports"):
        parse_spec(spec(ports={"80\n": 8080}))


# --- volumes --------------------------------------------------------------------------------


def test_volumes_dict_form() -> None:
    parsed = parse_spec(
        spec(volumes={"/srv/data": {"bind": "/data", "mode": "ro"}, "cache": {"bind": "/cache"}})
    )
    assert parsed.mounts == [Mount("/srv/data", "/data", "ro"), Mount("cache", "/cache", "rw")]
    assert [m.is_host_path for m in parsed.mounts] == [True, False]


def test_volumes_list_form() -> None:
    parsed = parse_spec(spec(volumes=["/srv/data:/data:ro", "cache:/cache"]))
    assert parsed.mounts == [Mount("/srv/data", "/data", "ro"), Mount("cache", "/cache", "rw")]
    assert [m.is_host_path for m in parsed.mounts] == [True, False]


@pytest.mark.parametrize(
    "volumes",
    [
        ["data"],
        ["./rel:/rel"],  # A relative host path: neither a path Docker binds nor a volume name.
        ["data:relative"],
        [":/data"],
        ["data:"],
        ["a:/b:ro:extra"],
        {"data": {"bind": "relative"}},
        {"data": {"bind": "/x", "extra": 1}},
        {"data": "/x"},
        "data:/data",
    ],
)
def test_bad_volumes_are_refused(volumes: object) -> None:
    with pytest.raises(InvalidSpec, match="volumes"):
        parse_spec(spec(volumes=volumes))


# --- restart policy, healthcheck, environment, labels --------------------------------------


def test_restart_policy() -> None:
    parsed = parse_spec(spec(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3}))
    assert parsed.restart_policy is not None
    assert parsed.restart_policy.Name == "on-failure"
    assert parsed.restart_policy.MaximumRetryCount == 3
    assert parse_spec(spec(restart_policy={"Name": "always"})).restart_policy.MaximumRetryCount == 0


@pytest.mark.parametrize(
    "policy",
    [
        {"Name": "sometimes"},
        {"Name": "always", "MaximumRetryCount": -1},
        {"Name": "always", "MaximumRetryCount": 1001},
        {"Name": "always", "Max": 1},
        {"name": "always"},
        "always",
    ],
)
def test_bad_restart_policy(policy: object) -> None:
    with pytest.raises(InvalidSpec, match="restart_policy"):
        parse_spec(spec(restart_policy=policy))


def test_healthcheck() -> None:
    check = {
        "test": ["CMD", "true"],
        "interval": 1_000_000_000,
        "timeout": 500_000_000,
        "retries": 3,
        "start_period": 0,
    }
    parsed = parse_spec(spec(healthcheck=check))
    assert parsed.healthcheck is not None
    assert parsed.healthcheck.model_dump() == check
    assert parse_spec(spec(healthcheck={"test": "true"})).healthcheck.test == "true"


@pytest.mark.parametrize(
    "check",
    [
        {"interval": 1_000_000_000},
        {"test": "true", "interval": 10},
        {"test": "true", "retries": -1},
        {"test": "true", "interval": "1s"},
        {"test": "true", "Interval": 1_000_000_000},
    ],
)
def test_bad_healthcheck(check: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec, match="healthcheck"):
        parse_spec(spec(healthcheck=check))


def test_environment_as_list_or_dict() -> None:
    assert parse_spec(spec(environment=["A=1", "B=x=y", "PASSTHROUGH"])).environment == [
        "A=1",
        "B=x=y",
        "PASSTHROUGH",
    ]
    env = {"A": "1", "B": 2, "C": 1.5}
    assert parse_spec(spec(environment=env)).environment == env


@pytest.mark.parametrize(
    "env", [["=x"], {"": "x"}, {"A=B": "x"}, {"A": None}, {"A": ["x"]}, "A=1", [1]]
)
def test_bad_environment(env: object) -> None:
    with pytest.raises(InvalidSpec, match="environment"):
        parse_spec(spec(environment=env))


def test_reserved_label_namespace_is_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"labels: label 'containerizer.x'.*reserved"):
        parse_spec(spec(labels={"team": "a", "containerizer.x": "1"}))
    with pytest.raises(InvalidSpec, match="reserved"):
        parse_spec(spec(labels={MANAGED_LABEL: "true"}))
    # Only the namespace itself is reserved.
    assert parse_spec(spec(labels={"containerizerx": "1"})).labels == {"containerizerx": "1"}


def test_label_values_must_be_strings() -> None:
    with pytest.raises(InvalidSpec, match="labels"):
        parse_spec(spec(labels={"n": 1}))
    with pytest.raises(InvalidSpec, match="labels"):
        parse_spec(spec(labels={"": "x"}))


def test_strict_booleans() -> None:
    assert parse_spec(spec(privileged=False)).privileged is False
    assert parse_spec(spec(privileged=True)).privileged is True
    assert parse_spec(spec()).privileged is False
    for value in ("yes", "true", "false", 1, 0, None):
        with pytest.raises(InvalidSpec, match="privileged"):
            parse_spec(spec(privileged=value))


def test_a_full_valid_spec() -> None:
    data = spec(
        name="web-1.a_b",
        command=["sh", "-c", "sleep 1"],
        entrypoint="/bin/sh",
        cpu_shares=512,
        cpu_quota=50_000,
        cpu_period=100_000,
        nano_cpus=500_000_000,
        pids_limit=-1,
        network_mode="bridge",
        user=1000,
        working_dir="/srv",
        cap_add=["NET_ADMIN", "cap_sys_time"],
        cap_drop=["ALL"],
        read_only=True,
        tmpfs={"/tmp": "size=64m"},
        gpus=-1,
    )
    parsed = parse_spec(data)
    assert parsed.name == "web-1.a_b"
    assert parsed.reference.familiar == "busybox:1.36"
    assert parsed.cap_add == ["NET_ADMIN", "cap_sys_time"]
    assert parsed.gpus == -1
    assert parse_spec(spec(name="w" * 255)).name == "w" * 255
    assert parse_spec(spec(name="ab")).name == "ab"


def test_capability_with_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="cap_add"):
        parse_spec(spec(cap_add=["SYS_ADMIN\n"]))


def test_spec_is_immutable_and_with_name_copies() -> None:
    parsed = parse_spec(spec())
    named = parsed.with_name("web")
    assert parsed.name is None
    assert named.name == "web"
    with pytest.raises(ValueError, match="frozen"):
        parsed.name = "x"  # type: ignore[misc]


# --- spec_hash ------------------------------------------------------------------------------


def test_spec_hash_is_stable_across_key_order() -> None:
    one = parse_spec(
        {"image": "busybox", "name": "web", "labels": {"a": "1", "b": "2"}, "mem_limit": "512m"}
    )
    two = parse_spec(
        {
            "mem_limit": 536_870_912,
            "labels": {"b": "2", "a": "1"},
            "name": "web",
            "image": "busybox",
        }
    )
    assert one.spec_hash() == two.spec_hash()
    assert len(one.spec_hash()) == 64
    int(one.spec_hash(), 16)


def test_spec_hash_differs_for_different_specs() -> None:
    base = parse_spec(spec(name="web"))
    assert base.spec_hash() != parse_spec(spec(name="web2")).spec_hash()
    assert base.spec_hash() != parse_spec(spec(name="web", mem_limit="512m")).spec_hash()
    assert base.spec_hash() != parse_spec(spec(name="web", privileged=True)).spec_hash()
    assert base.spec_hash() != parse_spec({"image": "busybox:1.37", "name": "web"}).spec_hash()
    assert base.spec_hash() == base.with_name("web").spec_hash()
    assert base.spec_hash() != base.with_name("other").spec_hash()
