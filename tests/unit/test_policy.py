"""The operator's policy: what escapes a container is refused unless allowed."""

from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from workers.errors import PolicyViolation
from workers.policy import Policy
from workers.spec import ContainerSpec, parse_spec


def spec(**fields: Any) -> ContainerSpec:
    return parse_spec({"image": "busybox", **fields})


def volume(source: str) -> ContainerSpec:
    """A read-only bind of ``source`` (writable binds need the writable allowlist)."""
    return spec(volumes=[f"{source}:/mnt:ro"])


def test_a_plain_spec_passes_the_default_policy() -> None:
    Policy().check(
        spec(
            name="web",
            mem_limit="64m",
            network_mode="bridge",
            ports={"80": ["127.0.0.1", 8080]},
            volumes={"data": {"bind": "/data"}},
            cap_drop=["ALL"],
            privileged=False,
            ipc_mode="private",
            tmpfs=["/tmp"],
        )
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"privileged": True}, "privileged"),
        ({"network_mode": "host"}, "network_mode"),
        ({"network_mode": "HOST"}, "network_mode"),
        ({"network_mode": "container:x"}, "network_mode"),
        # docker-py makes ``network`` the network mode when there is none: the same namespace.
        ({"network": "host"}, "network"),
        ({"network": "Host"}, "network"),
        ({"pid_mode": "host"}, "pid_mode"),
        ({"pid_mode": "container:abc"}, "pid_mode"),
        ({"ipc_mode": "host"}, "ipc_mode"),
        ({"ipc_mode": "container:db"}, "ipc_mode"),
        ({"uts_mode": "host"}, "uts_mode"),
        ({"userns_mode": "host"}, "userns_mode"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add"),
        ({"cap_add": ["cap_sys_admin"]}, "cap_add"),
        ({"cap_add": ["CAP_SYS_ADMIN"]}, "cap_add"),
        ({"cap_add": ["sys_admin"]}, "cap_add"),
        ({"cap_add": ["ALL"]}, "cap_add"),
        ({"devices": ["/dev/sda:/dev/xvda:rwm"]}, "devices"),
        ({"volumes": ["/srv/data:/data"]}, "volumes"),
    ],
)
def test_default_policy_refuses_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyViolation, match=rf"^{field}: "):
        Policy().check(spec(**fields))


def test_namespace_modes_that_stay_inside_the_container_pass() -> None:
    Policy().check(spec(network_mode="none", ipc_mode="shareable"))
    Policy().check(spec(ipc_mode="private"))
    Policy().check(spec(network_mode="bridge"))


def test_a_network_that_is_a_namespace_is_refused_as_one() -> None:
    with pytest.raises(PolicyViolation, match=r"^network: 'host' shares a namespace"):
        Policy().check_network("host")
    with pytest.raises(PolicyViolation, match=r"^network: 'container:db' shares a namespace"):
        Policy(allowed_networks=frozenset({"container:db"})).check_network("container:db")


def test_user_defined_networks_need_the_allowlist() -> None:
    # A job on the deployment's own network could reach Redis and the metrics endpoint.
    with pytest.raises(PolicyViolation, match=r"^network 'backend' is not allowed"):
        Policy().check_network("backend")
    Policy().check_network("backend", managed=True)  # One the service created.
    Policy(allowed_networks=frozenset({"backend"})).check_network("backend")
    policy = Policy.from_settings(Settings(allowed_networks="backend,frontend"))
    policy.check_network("frontend")
    for always in ("bridge", "none", "default"):
        Policy().check_network(always)


def test_writable_binds_need_the_writable_allowlist() -> None:
    read_only = Policy(allowed_bind_paths=("/srv",))
    read_only.check(spec(volumes=["/srv/data:/data:ro"]))
    read_only.check(spec(volumes={"/srv/data": {"bind": "/data", "mode": "ro"}}))
    for writable in (["/srv/data:/data"], ["/srv/data:/data:rw"], {"/srv/data": {"bind": "/d"}}):
        with pytest.raises(PolicyViolation, match="may only be mounted read-only"):
            read_only.check(spec(volumes=writable))
    Policy(allowed_rw_bind_paths=("/srv",)).check(spec(volumes=["/srv/data:/data"]))
    with pytest.raises(PolicyViolation, match="read-only"):
        Policy(allowed_bind_paths=("/",), allowed_rw_bind_paths=("/srv",)).check(
            spec(volumes=["/etc:/etc"])
        )


@pytest.mark.parametrize("mode", ["ro,shared", "ro,rshared", "ro,z", "ro,Z"])
def test_propagation_and_relabelling_modes_are_refused(mode: str) -> None:
    with pytest.raises(PolicyViolation, match="propagation"):
        Policy(allowed_bind_paths=("/srv",)).check(spec(volumes=[f"/srv/a:/a:{mode}"]))


@pytest.mark.parametrize(
    "source",
    [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/",
        "/var/run",
        "/run",
        "/var",
        "/var/run/",
        "//run/docker.sock",
        "/srv/../run/docker.sock",
        "/var/run/./docker.sock",
    ],
)
def test_docker_socket_is_never_mounted_even_when_everything_is_allowed(source: str) -> None:
    policy = Policy(
        allow_privileged=True,
        allow_host_namespaces=True,
        allow_devices=True,
        allowed_bind_paths=("/",),
    )
    with pytest.raises(PolicyViolation, match=r"^volumes: .*Docker socket"):
        policy.check(volume(source))
    with pytest.raises(PolicyViolation, match="Docker socket"):
        policy.check(spec(volumes={source: {"bind": "/mnt", "mode": "ro"}}))


def test_socket_is_refused_via_settings_allowlist_too() -> None:
    policy = Policy.from_settings(Settings(allowed_bind_paths=["/", "/run", "/var/run"]))
    for source in ("/var/run/docker.sock", "/run/docker.sock", "/run", "/"):
        with pytest.raises(PolicyViolation, match="Docker socket"):
            policy.check(volume(source))


def test_allowlist_root_allows_other_paths() -> None:
    Policy(allowed_bind_paths=("/",)).check(volume("/etc"))


def test_bind_allowed_only_inside_the_allowlist() -> None:
    with pytest.raises(PolicyViolation, match=r"^volumes: bind mount of host path '/srv/data'"):
        Policy().check(volume("/srv/data"))
    policy = Policy(allowed_bind_paths=("/srv",))
    policy.check(volume("/srv/data"))
    policy.check(volume("/srv"))
    policy.check(volume("/srv/a/b/c"))
    policy.check(spec(volumes={"/srv/data": {"bind": "/data", "mode": "ro"}}))


@pytest.mark.parametrize("source", ["/srvx", "/srv-other/data", "/sr", "/srv/../etc", "/etc"])
def test_paths_outside_the_allowlist_are_refused(source: str) -> None:
    with pytest.raises(PolicyViolation, match="bind mount of host path"):
        Policy(allowed_bind_paths=("/srv",)).check(volume(source))


def test_allowlist_from_settings_is_normalized() -> None:
    policy = Policy.from_settings(Settings(allowed_bind_paths=["/srv/", "/opt/data/../data2"]))
    assert policy.allowed_bind_paths == ("/srv", "/opt/data2")
    policy.check(volume("/srv"))
    policy.check(volume("/opt/data2/x"))
    with pytest.raises(PolicyViolation):
        policy.check(volume("/opt/data"))


def test_named_volumes_are_always_fine() -> None:
    Policy().check(spec(volumes=["data:/data", "cache:/cache:ro"]))
    Policy().check(spec(volumes={"data": {"bind": "/data"}}))


def test_every_host_mount_is_checked_not_only_the_first() -> None:
    with pytest.raises(PolicyViolation, match="/etc"):
        Policy(allowed_bind_paths=("/srv",)).check(
            spec(volumes=["/srv/a:/a:ro", "data:/d", "/etc:/host-etc:ro"])
        )


def test_allowed_capability_passes_in_any_spelling() -> None:
    policy = Policy(allowed_capabilities=frozenset({"NET_ADMIN"}))
    for cap in ("NET_ADMIN", "net_admin", "CAP_NET_ADMIN", "cap_net_admin"):
        policy.check(spec(cap_add=[cap]))
    with pytest.raises(PolicyViolation, match=r"cap_add: capability 'SYS_TIME'"):
        policy.check(spec(cap_add=["NET_ADMIN", "SYS_TIME"]))


def test_allowed_capability_from_settings() -> None:
    policy = Policy.from_settings(Settings(allowed_capabilities=["cap_sys_admin"]))
    policy.check(spec(cap_add=["SYS_ADMIN"]))
    policy.check(spec(cap_add=["cap_sys_admin"]))


def test_cap_drop_needs_no_permission() -> None:
    Policy().check(spec(cap_drop=["ALL", "NET_RAW"]))


def test_allow_privileged_flips_privileged_only() -> None:
    policy = Policy(allow_privileged=True)
    policy.check(spec(privileged=True))
    with pytest.raises(PolicyViolation, match="network_mode"):
        policy.check(spec(network_mode="host"))


def test_allow_host_namespaces_flips_every_namespace_field() -> None:
    policy = Policy(allow_host_namespaces=True)
    policy.check(
        spec(
            network_mode="host",
            pid_mode="host",
            ipc_mode="host",
            uts_mode="host",
            userns_mode="host",
        )
    )
    policy.check(spec(network_mode="container:other"))
    policy.check(spec(network="host"))
    policy.check_network("host")
    with pytest.raises(PolicyViolation, match="privileged"):
        policy.check(spec(privileged=True))


def test_allow_devices_flips_devices() -> None:
    Policy(allow_devices=True).check(spec(devices=["/dev/fuse"]))
    with pytest.raises(PolicyViolation, match="devices"):
        Policy(allow_privileged=True, allow_host_namespaces=True).check(spec(devices=["/dev/fuse"]))


def test_from_settings_carries_every_switch() -> None:
    settings = Settings(
        allow_privileged=True,
        allow_host_namespaces=True,
        allow_devices=True,
        allowed_bind_paths=["/srv"],
        allowed_capabilities=["NET_ADMIN"],
    )
    policy = Policy.from_settings(settings)
    assert policy == Policy(
        allow_privileged=True,
        allow_host_namespaces=True,
        allow_devices=True,
        allowed_bind_paths=("/srv",),
        allowed_capabilities=frozenset({"NET_ADMIN"}),
        service_ports=frozenset({5555, 9808, 6379}),
    )
    policy.check(
        spec(
            privileged=True,
            network_mode="host",
            devices=["/dev/fuse"],
            volumes=["/srv/x:/x:ro"],
            cap_add=["net_admin"],
        )
    )


def test_default_settings_give_the_default_policy() -> None:
    # Flower, /metrics and the local Redis are the service's own ports.
    assert Policy.from_settings(Settings()) == Policy(service_ports=frozenset({5555, 9808, 6379}))
