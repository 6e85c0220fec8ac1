"""What a hostile caller can send, refused before anything looks at it twice: argument bounds, spec
bounds (int64, ASCII digits, NUL, paths, quotes), the policy's ports, resources, tmpfs and users,
and the redaction of secret environment values."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from config.settings import Settings
from workers.arguments import signal_name
from workers.credentials import REDACTED, Redactor
from workers.errors import InvalidSpec, PolicyViolation
from workers.limits import ArgumentLimits, check_bounds, check_size
from workers.policy import HostFacts, Policy
from workers.spec import parse_spec

LIMITS = ArgumentLimits()
HOST = HostFacts(cpus=2, memory_bytes=8 * 1024**3)


def spec(**fields: Any) -> dict[str, Any]:
    return {"image": "busybox:1.36", **fields}


# --- argument bounds ----------------------------------------------------------------------------


def test_the_crash_loop_message_is_refused_before_anything_recursive() -> None:
    nested = json.loads("[" * 700 + "]" * 700)
    with pytest.raises(InvalidSpec, match=r"^kwargs\.labels(\[0\])+: nested deeper than 32"):
        check_bounds([], {"labels": nested}, LIMITS)


def test_deep_nesting_is_refused_without_recursion() -> None:
    deep: Any = []
    for _ in range(100_000):  # Far past Python's recursion limit.
        deep = [deep]
    with pytest.raises(InvalidSpec, match="nested deeper"):
        check_bounds([deep], {}, LIMITS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spec": {"command": ["a" * 70_000]}}, r"kwargs\.spec\.command\[0\]: a string longer"),
        ({"labels": list(range(2000))}, r"kwargs\.labels: more than 1024 entries"),
        ({"spec": {"name": "web\x00"}}, r"kwargs\.spec\.name: NUL characters"),
        ({"spec": {"env\x00": "x"}}, r"kwargs\.spec key: NUL characters"),
        ({"x": {"k" * 70_000: 1}}, r"kwargs\.x key: a string longer"),
    ],
)
def test_bounds_name_where_they_are_exceeded(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        check_bounds([], kwargs, LIMITS)


def test_the_envelope_must_be_a_list_and_an_object() -> None:
    with pytest.raises(InvalidSpec, match="positional arguments must be a list"):
        check_bounds("[]", {}, LIMITS)
    with pytest.raises(InvalidSpec, match="keyword arguments must be an object"):
        check_bounds([], [], LIMITS)


def test_a_huge_message_is_refused_by_its_size() -> None:
    check_size(256 * 1024, LIMITS)
    with pytest.raises(InvalidSpec, match="more than the 262144 allowed"):
        check_size(256 * 1024 + 1, LIMITS)


def test_ordinary_arguments_pass_quickly() -> None:
    kwargs = {"spec": {"image": "busybox", "command": ["sh", "-c", "echo hi"] * 100}}
    began = time.perf_counter()
    for _ in range(100):
        check_bounds([], kwargs, LIMITS)
    assert time.perf_counter() - began < 1.0


# --- spec bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mem_limit": 2**70}, "mem_limit"),
        ({"mem_limit": "99999999999999999999999t"}, "mem_limit"),
        ({"memswap_limit": 2**64, "mem_limit": "64m"}, "memswap_limit"),
        ({"pids_limit": 2**63}, "pids_limit"),
        ({"nano_cpus": 2**63}, "nano_cpus"),
        ({"cpu_quota": 2**40}, "cpu_quota"),
        ({"healthcheck": {"test": ["CMD", "true"], "interval": 2**63}}, "healthcheck.interval"),
        ({"healthcheck": {"test": ["CMD", "true"], "retries": 2**31}}, "healthcheck.retries"),
        ({"healthcheck": {"test": ["BOGUS"]}}, "healthcheck.test"),
        ({"ports": {"\u0668\u0660": 8080}}, "ports"),  # Arabic-Indic digits: not Docker's.
        ({"ports": {"80": ["not an ip", 8080]}}, "ports"),
        ({"mem_limit": "\u0666\u0664m"}, "mem_limit"),
        ({"volumes": ["/src\x00:/dst"]}, "spec.volumes"),
        ({"volumes": ["/" + "a/" * 400_000 + ":/x:ro"]}, "spec.volumes"),
        ({"volumes": ["/" + "a/" * 300 + ":/x:ro"]}, "volumes"),
        ({"working_dir": "/" + "d" * 5000}, "working_dir"),
        ({"uts_mode": "private"}, "uts_mode"),
        ({"userns_mode": "nope"}, "userns_mode"),
        ({"pid_mode": "private"}, "pid_mode"),
        ({"ipc_mode": "weird"}, "ipc_mode"),
        ({"command": "sh -c 'unbalanced"}, "command"),
        ({"entrypoint": 'a "b'}, "entrypoint"),
        ({"network_mode": "a b"}, "network_mode"),
        ({"user": "root; rm"}, "user"),
        ({"environment": {"X": float("inf")}}, "environment"),
        ({"tmpfs": {"/tmp": "size=1m,weird"}}, "tmpfs"),
        ({"tmpfs": {"relative": ""}}, "tmpfs"),
        ({"devices": ["nope"]}, "devices"),
    ],
)
def test_out_of_range_and_malformed_fields_are_invalid_spec(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpec, match=field.replace(".", r"\.")):
        parse_spec(spec(**fields))


def test_a_huge_path_is_refused_before_it_is_normalised() -> None:
    began = time.process_time()
    with pytest.raises(InvalidSpec):
        parse_spec(spec(volumes=["/" + "a/" * 400_000 + ":/x:ro"]))
    assert time.process_time() - began < 1.0  # It cost 18 s of CPU before.


def test_a_string_command_is_split_as_docker_py_would() -> None:
    parsed = parse_spec(spec(command="sh -c 'echo hi; exit 3'", entrypoint="/bin/env -i"))
    assert parsed.command == ["sh", "-c", "echo hi; exit 3"]
    assert parsed.entrypoint == ["/bin/env", "-i"]


def test_namespace_modes_docker_py_can_express_pass_validation() -> None:
    for fields in (
        {"uts_mode": "host"},
        {"userns_mode": "host"},
        {"pid_mode": "container:db"},
        {"ipc_mode": "shareable"},
        {"ipc_mode": "container:db"},
    ):
        parse_spec(spec(**fields))


# --- policy ---------------------------------------------------------------------------------------


def policy(**settings: Any) -> Policy:
    return Policy.from_settings(Settings(**settings))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ports": {"22/tcp": ["0.0.0.0", 22]}}, "ports: 22/tcp on 0.0.0.0"),
        ({"ports": {"80": ["::", 8080]}}, "ports: 80 on ::"),
        ({"ports": {"80": 80}}, "host port 80 is outside 1024-65535"),
        ({"ports": {"80": 5555}}, "5555 is one containerizer itself listens on"),
        ({"ports": {"80": 9808}}, "9808 is one containerizer itself listens on"),
        ({"ports": {"80": 6379}}, "6379 is one containerizer itself listens on"),
        ({"pids_limit": -1}, "pids_limit: unlimited"),
        ({"pids_limit": 0}, "pids_limit: unlimited"),
        ({"pids_limit": 5000}, "above the ceiling of 4096"),
        ({"mem_limit": 9 * 1024**3}, "mem_limit: .* above the ceiling"),
        ({"mem_limit": "64m", "memswap_limit": "128m"}, "memswap_limit: swap"),
        ({"mem_limit": "64m", "memswap_limit": -1}, "memswap_limit: swap"),
        ({"tmpfs": {"/tmp": "exec"}}, "tmpfs /tmp: exec not allowed"),
        ({"tmpfs": ["/tmp:suid,dev"]}, "tmpfs /tmp: dev, suid not allowed"),
        ({"tmpfs": {"/tmp": "size=2g"}}, "size must be 1 to"),
        ({"labels": {"com.docker.compose.project": "x"}}, "prefix 'com.docker.compose.'"),
        ({"volumes": ["/src\\:/dst:ro"]}, "bind mount of host path"),
    ],
)
def test_the_default_policy_refuses(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyViolation, match=message):
        policy().check(parse_spec(spec(**fields)), HOST)


def test_more_cpus_than_the_host_has_are_invalid() -> None:
    with pytest.raises(InvalidSpec, match="more than the host's 2 CPUs"):
        policy().check(parse_spec(spec(nano_cpus=3 * 10**9)), HOST)
    policy().check(parse_spec(spec(nano_cpus=2 * 10**9)), HOST)


def test_what_the_default_policy_lets_through() -> None:
    policy().check(
        parse_spec(
            spec(
                ports={"80": 8080, "81": ["127.0.0.1", 8081], "82": None},
                pids_limit=100,
                mem_limit="1g",
                memswap_limit="1g",
                tmpfs={"/tmp": "size=16m,noexec", "/run": ""},
                labels={"team": "a"},
            )
        ),
        HOST,
    )


def test_the_operator_relaxes_each_rule() -> None:
    relaxed = policy(
        allowed_port_addresses=["127.0.0.1", "0.0.0.0"],
        host_port_min=1,
        max_pids_limit=10_000,
        max_mem_limit=16 * 1024**3,
        allow_swap=True,
        reserved_label_prefixes=[],
    )
    relaxed.check(
        parse_spec(
            spec(
                ports={"22/tcp": ["0.0.0.0", 22]},
                pids_limit=10_000,
                mem_limit=9 * 1024**3,
                memswap_limit=-1,
                labels={"com.docker.compose.project": "x"},
            )
        ),
        HOST,
    )
    # containerizer.* stays reserved whatever the setting says.
    with pytest.raises(InvalidSpec, match="reserved"):
        relaxed.check(parse_spec(spec(labels={"containerizer.managed": "true"})), HOST)


def test_a_narrow_port_range_needs_named_ports() -> None:
    narrow = policy(host_port_min=20_000, host_port_max=21_000)
    narrow.check(parse_spec(spec(ports={"80": 20_500})), HOST)
    with pytest.raises(PolicyViolation, match="a port Docker chooses"):
        narrow.check(parse_spec(spec(ports={"80": None})), HOST)


@pytest.mark.parametrize("user", [None, "root", "0", 0, "0:0", "app", "1000"])
def test_refusing_root_needs_a_numeric_non_root_user(user: Any) -> None:
    strict = policy(refuse_root_user=True)
    fields = {} if user is None else {"user": user}
    if user in ("1000",):
        strict.check(parse_spec(spec(**fields)), HOST)
        return
    with pytest.raises(PolicyViolation, match="user: a numeric user id other than 0"):
        strict.check(parse_spec(spec(**fields)), HOST)
    strict.check(parse_spec(spec(user=1000)), HOST)
    strict.check(parse_spec(spec(user="1000:1000")), HOST)


# --- signals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0661\u0665", "SIG\u00b2", "9\n", " 9", True, 0, 65, "65"]
)
def test_signals_are_ascii_names_or_numbers(value: Any) -> None:
    with pytest.raises(InvalidSpec, match="signal"):
        signal_name(value)


@pytest.mark.parametrize(("value", "sent"), [("9", "9"), (15, "15"), ("term", "SIGTERM")])
def test_signals_that_pass(value: Any, sent: str) -> None:
    assert signal_name(value) == sent


# --- redaction ------------------------------------------------------------------------------------


def test_secret_environment_values_are_redacted_in_every_form() -> None:
    redact = Redactor()
    kwargs = {
        "spec": {
            "environment": {"DB_PASSWORD": "p", "api_token": "t", "MODE": "x", "SSH_KEY": "k"},
        },
        "other": {"environment": ["AWS_SECRET_ACCESS_KEY=s", "PLAIN=v", "BARE"]},
        "Config": {"Env": ["GITHUB_TOKEN=g", "PATH=/bin"]},
        "auth": {"username": "u", "password": "p"},
    }
    assert redact(kwargs) == {
        "spec": {
            "environment": {
                "DB_PASSWORD": REDACTED,
                "api_token": REDACTED,
                "MODE": "x",
                "SSH_KEY": REDACTED,
            }
        },
        "other": {"environment": [f"AWS_SECRET_ACCESS_KEY={REDACTED}", "PLAIN=v", "BARE"]},
        "Config": {"Env": [f"GITHUB_TOKEN={REDACTED}", "PATH=/bin"]},
        "auth": REDACTED,
    }


def test_the_secret_patterns_are_the_operators() -> None:
    redact = Redactor(["*_PIN"])
    assert redact({"environment": {"CARD_PIN": "1", "DB_PASSWORD": "p"}}) == {
        "environment": {"CARD_PIN": REDACTED, "DB_PASSWORD": "p"}
    }
