"""The security suite: every finding of the hostile-caller review, tried again the same way through
a real worker (sent by name), refused with a documented error or of no effect, the service up.

Plus the hardened defaults read back from a real container, a pids limit that stops a fork loop,
an OOM kill under the default memory limit, and hypothesis over the whole task path.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import redis
from celery.result import AsyncResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.support import (
    FLOWER_PASSWORD,
    FLOWER_USER,
    OPEN_REGISTRY,
    SLEEPER,
    TEST_IMAGE,
    RunningService,
    TaskClient,
    containers_worker,
    flower_get,
    wait_for,
    wait_for_workers,
)
from workers.resources import DEPLOYMENT_LABEL
from workers.spec import MANAGED_LABEL

pytestmark = pytest.mark.integration

DOCUMENTED = {
    "InvalidSpec",
    "PolicyViolation",
    "ContainerNotFound",
    "ImageNotFound",
    "Conflict",
    "RegistryAuthError",
    "PullTimeout",
    "EngineError",
    "ConfigurationError",
    "ResourceNotFound",
    "TimeLimitExceeded",
    "DockerUnavailable",
    "RegistryUnavailable",
    "StateUnavailable",
    "HostUnavailable",
}
SECRET = "hunter2-" + uuid.uuid4().hex[:8]


def error_name(tasks: TaskClient, name: str, **kwargs: Any) -> str:
    error, _ = tasks.failure(name, **kwargs)
    return type(error).__name__


def publish_raw(tasks: TaskClient, name: str, body: str) -> AsyncResult:
    """A task message whose body no Celery client would build: what a hostile caller can."""
    task_id = str(uuid.uuid4())
    with tasks.app.producer_or_acquire() as producer:
        producer.publish(
            body,
            routing_key="containers",
            exchange="containers",
            declare=[tasks.app.amqp.queues["containers"]],
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            headers={"id": task_id, "task": name, "lang": "py", "argsrepr": "", "kwargsrepr": ""},
        )
    return tasks.app.AsyncResult(task_id)


def workers_up(service: RunningService, tasks: TaskClient) -> None:
    assert service.process.poll() is None, service.log()[-3000:]
    wait_for_workers(tasks.app, {"containers", "images", "maintenance"}, timeout=30)


def spec(labels: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"image": TEST_IMAGE, "command": SLEEPER, "labels": labels, **fields}


# --- 1. one message must not end a worker -----------------------------------------------------


def test_the_crash_loop_message_fails_one_task_and_the_workers_stay_up(
    service: RunningService, tasks: TaskClient
) -> None:
    nested = json.loads("[" * 700 + "]" * 700)
    for queue_task in ("containerizer.containers.list", "containerizer.images.list"):
        error, result = tasks.failure(queue_task, labels=nested)
        assert type(error).__name__ == "InvalidSpec" and "nested deeper" in str(error)
        assert result.state == "FAILURE"
    # A body too big to decode, and an envelope that is not one: failed, not requeued.
    error, _ = tasks.failure("containerizer.containers.list", labels=["x" * 1000] * 400)
    assert type(error).__name__ == "InvalidSpec" and "bytes of arguments" in str(error)
    bad = publish_raw(tasks, "containerizer.containers.list", '"not a list"')
    with pytest.raises(Exception) as caught:
        bad.get(timeout=60)
    assert type(caught.value).__name__ == "InvalidSpec"
    undecodable = publish_raw(tasks, "containerizer.containers.list", "{not json")
    with pytest.raises(Exception) as caught:
        undecodable.get(timeout=60)
    assert type(caught.value).__name__ == "InvalidSpec"
    unknown = tasks.app.send_task("containerizer.no.such.task", queue="containers")
    with pytest.raises(Exception) as caught:
        unknown.get(timeout=60)
    assert type(caught.value).__name__ == "InvalidSpec"
    workers_up(service, tasks)
    assert isinstance(tasks.call("containerizer.containers.list"), list)
    # Nothing went back to a queue to end the next worker.
    broker = redis.Redis.from_url(service.env["CONTAINERIZER_BROKER_URL"])
    try:
        for queue in ("containers", "containers.ctz-test", "images", "images.ctz-test"):
            assert broker.llen(queue) == 0, queue
    finally:
        broker.close()


# --- 2. named volumes --------------------------------------------------------------------------


@pytest.fixture
def foreign_volumes(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """Volumes the service did not make: an operator's, a deployment's, a bind in disguise."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "operator": f"ctz-operator-{suffix}",
        "deployment": f"ctz-redis-data-{suffix}",
        "bind": f"ctz-bind-{suffix}",
        "managed-label": f"ctz-labelled-{suffix}",
    }
    docker_client.volumes.create(names["operator"])
    docker_client.volumes.create(names["deployment"], labels={DEPLOYMENT_LABEL: "true"})
    docker_client.volumes.create(
        names["bind"], driver="local", driver_opts={"type": "none", "o": "bind", "device": "/etc"}
    )
    docker_client.volumes.create(names["managed-label"], labels={MANAGED_LABEL: "true"})
    yield names
    for name in names.values():
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.volumes.get(name).remove(force=True)


def test_only_volumes_the_service_made_are_mountable(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    foreign_volumes: dict[str, str],
) -> None:
    for kind in ("operator", "deployment", "bind", "managed-label"):
        volume = foreign_volumes[kind]
        name = error_name(
            tasks, "containerizer.containers.create", spec=spec(labels, volumes=[f"{volume}:/d"])
        )
        assert name == "PolicyViolation", kind
    mine = {"label": f"ctz-test={labels['ctz-test']}"}
    assert docker_client.containers.list(all=True, filters=mine) == []

    # A volume that does not exist yet is made for the container, managed, and mountable.
    fresh = f"ctz-fresh-{uuid.uuid4().hex[:8]}"
    try:
        created = tasks.call(
            "containerizer.containers.run",
            spec=spec(labels, volumes=[f"{fresh}:/d"], command=["sh", "-c", "echo ok > /d/f"]),
        )
        volume = docker_client.volumes.get(fresh)
        assert volume.attrs["Labels"][MANAGED_LABEL] == "true"
        assert tasks.call("containerizer.containers.remove", container=created["id"], force=True)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.volumes.get(fresh).remove(force=True)


def test_an_allowlisted_volume_that_is_a_bind_follows_the_bind_rules(
    redis_server: str,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    foreign_volumes: dict[str, str],
    tmp_path: Path,
) -> None:
    bind, operator = foreign_volumes["bind"], foreign_volumes["operator"]
    with containers_worker(
        redis_server,
        "volumes-containers",
        tmp_path / "worker.log",
        CONTAINERIZER_REDIS_URL=f"{redis_server}/14",
        CONTAINERIZER_REDIS_PREFIX=f"ctz-volumes-{uuid.uuid4().hex[:6]}:",
        CONTAINERIZER_ALLOWED_VOLUMES=f"{bind},{operator}",
    ) as (_, allowed):
        error, _ = allowed.failure(
            "containerizer.containers.create", spec=spec(labels, volumes=[f"{bind}:/d:ro"])
        )
        assert type(error).__name__ == "PolicyViolation" and "/etc" in str(error)
        created = allowed.call(
            "containerizer.containers.create", spec=spec(labels, volumes=[f"{operator}:/d"])
        )
        assert allowed.call("containerizer.containers.remove", container=created["id"])


# --- 3. images the operator owns ---------------------------------------------------------------


def test_refreshing_the_operators_image_gives_no_caller_its_name(
    tasks: TaskClient, docker_client: docker.DockerClient
) -> None:
    # The operator's image, in a registry and on the host, never pulled through the service.
    reference = f"{OPEN_REGISTRY}/operator-{uuid.uuid4().hex[:8]}:1"
    docker_client.images.get(TEST_IMAGE).tag(reference)
    docker_client.images.push(reference)
    try:
        pulled = tasks.call("containerizer.images.pull", reference=reference, always_pull=True)
        assert pulled["cached"] is False
        for task, kwargs in (
            ("containerizer.images.tag", {"source": TEST_IMAGE, "target": reference}),
            ("containerizer.images.remove", {"reference": reference, "force": True}),
        ):
            assert error_name(tasks, task, **kwargs) == "PolicyViolation", task
        docker_client.images.get(reference)  # Still there, still the operator's.
    finally:
        docker_client.images.remove(reference, force=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"network": "host"},
        {"network": "HOST"},
        {"network_mode": "host"},
        {"pid_mode": "host"},
    ],
)
def test_the_hosts_namespaces_are_refused_however_they_are_asked_for(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    fields: dict[str, Any],
) -> None:
    """docker-py makes ``network`` the network mode when none is given: {"network": "host"} is
    the host's network namespace as surely as network_mode is."""
    for task in ("containerizer.containers.create", "containerizer.containers.run"):
        assert error_name(tasks, task, spec=spec(labels, **fields)) == "PolicyViolation"
    assert (
        docker_client.containers.list(all=True, filters={"label": f"ctz-test={labels['ctz-test']}"})
        == []
    )


# --- 4. ports ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ({"22/tcp": ["0.0.0.0", 22]}, "PolicyViolation"),
        ({"80": ["::", 8080]}, "PolicyViolation"),
        ({"80": ["not an ip", 8080]}, "InvalidSpec"),
        ({"80": "FLOWER"}, "PolicyViolation"),
        ({"80": "METRICS"}, "PolicyViolation"),
        ({"80": 80}, "PolicyViolation"),
    ],
)
def test_ports_stay_on_allowed_addresses_and_off_the_services_own(
    service: RunningService,
    tasks: TaskClient,
    labels: dict[str, str],
    ports: dict[str, Any],
    expected: str,
) -> None:
    own = {
        "FLOWER": int(service.env["CONTAINERIZER_FLOWER_PORT"]),
        "METRICS": int(service.env["CONTAINERIZER_METRICS_PORT"]),
    }
    ports = {key: own[v] if isinstance(v, str) else v for key, v in ports.items()}
    name = error_name(tasks, "containerizer.containers.create", spec=spec(labels, ports=ports))
    assert name == expected


def test_a_port_without_an_address_is_published_on_loopback(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    created = tasks.call("containerizer.containers.create", spec=spec(labels, ports={"80": None}))
    bindings = docker_client.api.inspect_container(created["id"])["HostConfig"]["PortBindings"]
    assert bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}


# --- 5. hardened defaults ----------------------------------------------------------------------


def test_a_minimal_spec_is_created_hardened(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    created = tasks.call("containerizer.containers.run", spec=spec(labels))
    host = docker_client.api.inspect_container(created["id"])["HostConfig"]
    assert set(host["CapDrop"]) == {"NET_RAW", "MKNOD"}
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["PidsLimit"] == 1024
    assert host["Memory"] == 512 * 1024**2 and host["MemorySwap"] == 512 * 1024**2
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }
    assert host["Runtime"] == "runc"
    assert host["PortBindings"] in ({}, None) and not host["Privileged"]
    # NET_RAW is gone: ping cannot open a raw socket.
    container = docker_client.containers.get(created["id"])
    code, output = container.exec_run(["ping", "-c", "1", "-W", "1", "127.0.0.1"])
    assert code != 0 and b"permission denied" in output.lower(), output


def test_tmpfs_is_noexec_nosuid_nodev_and_sized(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    created = tasks.call(
        "containerizer.containers.run",
        spec=spec(labels, tmpfs={"/scratch": "size=8m"}),
    )
    container = docker_client.containers.get(created["id"])
    code, output = container.exec_run(["sh", "-c", "grep ' /scratch ' /proc/mounts"])
    assert code == 0, output
    options = output.decode().split()[3].split(",")
    assert {"nosuid", "nodev", "noexec", "size=8192k"} <= set(options), options
    code, _ = container.exec_run(["sh", "-c", "cp /bin/busybox /scratch/b && /scratch/b true"])
    assert code != 0  # Not executable.
    assert (
        error_name(
            tasks, "containerizer.containers.create", spec=spec(labels, tmpfs={"/x": "exec"})
        )
        == "PolicyViolation"
    )


def test_a_pids_limit_stops_a_fork_loop(
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    state_redis: redis.Redis,
    service: RunningService,
    labels: dict[str, str],
) -> None:
    # A bounded loop: 30 sleepers against a limit of 10 processes (never a real fork bomb). The
    # shell says which fork it is at; the one past the limit fails and ends the shell.
    loop = "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo forking $i; sleep 60 & done; echo all"
    created = tasks.call(
        "containerizer.containers.run",
        spec={**spec(labels, pids_limit=10), "command": ["sh", "-c", loop]},
    )
    key = service.keys.container(created["id"])
    wait_for(lambda: state_redis.hget(key, "status") == "exited", 30, "the shell's end")
    output = docker_client.containers.get(created["id"]).logs().decode()
    assert "can't fork" in output and "all" not in output.split(), output
    forks = [int(line.split()[1]) for line in output.splitlines() if line.startswith("forking")]
    assert max(forks) <= 10, output
    assert docker_client.api.inspect_container(created["id"])["HostConfig"]["PidsLimit"] == 10


def test_the_default_memory_limit_ends_a_container_that_outgrows_it(
    tasks: TaskClient, state_redis: redis.Redis, service: RunningService, labels: dict[str, str]
) -> None:
    # dd allocates its 600 MiB buffer and fills it from /dev/zero: past the 512 MiB default.
    created = tasks.call(
        "containerizer.containers.run",
        spec={
            **spec(labels),
            "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=600M", "count=1"],
        },
    )
    key = service.keys.container(created["id"])
    wait_for(lambda: state_redis.hget(key, "status") == "exited", 60, "the OOM kill recorded")
    wait_for(lambda: state_redis.hget(key, "oom_killed") == "true", 10, "oom_killed")
    assert state_redis.hget(key, "exit_code") == "137"


# --- 6 and 7. bad input reaches nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "kwargs"),
    [
        ("containerizer.containers.kill", {"container": "x", "signal": "\u00b2"}),
        ("containerizer.containers.create", {"spec": {"image": TEST_IMAGE, "mem_limit": 2**70}}),
        ("containerizer.containers.create", {"spec": {"image": TEST_IMAGE, "pids_limit": 2**64}}),
        ("containerizer.containers.create", {"spec": {"image": TEST_IMAGE, "nano_cpus": 2**64}}),
        (
            "containerizer.containers.create",
            {"spec": {"image": TEST_IMAGE, "ports": {"\u0668\u0660": 8080}}},
        ),
        (
            "containerizer.containers.create",
            {"spec": {"image": TEST_IMAGE, "volumes": ["/srv\x00:/x:ro"]}},
        ),
        (
            "containerizer.containers.create",
            {"spec": {"image": TEST_IMAGE, "command": "sh -c 'unbalanced"}},
        ),
        (
            "containerizer.containers.run",
            {"spec": {"image": "127.0.0.1:5000/nowhere/x:1", "uts_mode": "private"}},
        ),
        (
            "containerizer.containers.run",
            {"spec": {"image": "127.0.0.1:5000/nowhere/x:1", "userns_mode": "keep-id"}},
        ),
        (
            "containerizer.containers.create",
            {
                "spec": {
                    "image": TEST_IMAGE,
                    "healthcheck": {"test": ["CMD", "true"], "interval": 2**63},
                }
            },
        ),
    ],
)
def test_bad_input_is_invalid_spec_before_docker(
    tasks: TaskClient, task: str, kwargs: dict[str, Any]
) -> None:
    began = time.monotonic()
    error, result = tasks.failure(task, **kwargs)
    assert type(error).__name__ == "InvalidSpec", repr(error)
    assert result.retries == 0 and time.monotonic() - began < 10


def test_a_huge_path_costs_no_cpu_before_it_is_refused(tasks: TaskClient) -> None:
    began = time.monotonic()
    error, _ = tasks.failure(
        "containerizer.containers.create",
        spec={"image": TEST_IMAGE, "volumes": ["/" + "a/" * 100_000 + ":/x:ro"]},
    )
    assert type(error).__name__ == "InvalidSpec"
    assert time.monotonic() - began < 5


# --- 9. secrets ----------------------------------------------------------------------------------


def test_secret_environment_values_reach_the_container_and_nothing_else(
    service: RunningService,
    tasks: TaskClient,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
) -> None:
    result = tasks.send(
        "containerizer.containers.run",
        spec=spec(labels, environment={"DB_PASSWORD": SECRET, "MODE": "visible"}),
    )
    created = result.get(timeout=60)
    container = docker_client.containers.get(created["id"])
    assert f"DB_PASSWORD={SECRET}" in container.attrs["Config"]["Env"]  # It reached it.

    inspected = tasks.call("containerizer.containers.inspect", container=created["id"])
    assert "DB_PASSWORD=**redacted**" in inspected["Config"]["Env"]
    stored = redis.Redis.from_url(service.env["CONTAINERIZER_RESULT_BACKEND"]).get(
        f"celery-task-meta-{result.id}"
    )
    assert stored is not None and SECRET.encode() not in stored and b"visible" in stored
    base = f"http://127.0.0.1:{service.env['CONTAINERIZER_FLOWER_PORT']}"

    def shown() -> str:
        status, body = flower_get(
            f"{base}/api/task/info/{result.id}", (FLOWER_USER, FLOWER_PASSWORD)
        )
        return body if status == 200 and "kwargs" in body else ""

    body = wait_for(shown, 20, "Flower showing the run")
    assert SECRET not in body and "visible" in body
    assert SECRET not in service.log()


def test_a_file_system_result_backend_stores_no_secret(
    redis_server: str, labels: dict[str, str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    with containers_worker(
        redis_server,
        "file-backend-containers",
        tmp_path / "worker.log",
        CONTAINERIZER_RESULT_BACKEND=f"file://{results}",
        CONTAINERIZER_REDIS_URL=f"{redis_server}/14",
        CONTAINERIZER_REDIS_PREFIX=f"ctz-file-{uuid.uuid4().hex[:6]}:",
    ) as (_, file_tasks):
        error, _ = file_tasks.failure(
            "containerizer.containers.create",
            spec={"image": "UPPER/Case", "environment": {"API_TOKEN": SECRET}},
            auth={"username": "u", "password": SECRET},
        )
        assert type(error).__name__ == "InvalidSpec"
        stored = [path.read_bytes() for path in results.iterdir()]
        assert stored and all(SECRET.encode() not in raw for raw in stored)
        assert any(b"redacted" in raw for raw in stored)


# --- 10. ownership by label alone ----------------------------------------------------------------


def test_a_container_labelled_managed_by_someone_else_is_out_of_reach(
    tasks: TaskClient, docker_client: docker.DockerClient, labels: dict[str, str]
) -> None:
    intruder = docker_client.containers.create(
        TEST_IMAGE,
        SLEEPER,
        labels={**labels, MANAGED_LABEL: "true"},
        name=f"ctz-op-{labels['ctz-test']}",
    )
    for task, kwargs in (
        ("containerizer.containers.stop", {"container": intruder.name}),
        ("containerizer.containers.inspect", {"container": intruder.id}),
        ("containerizer.containers.remove", {"container": intruder.id[:12], "force": True}),
        ("containerizer.containers.logs", {"container": intruder.id[:8]}),
    ):
        assert error_name(tasks, task, **kwargs) == "ContainerNotFound", task
    assert intruder.id not in {
        row["id"] for row in tasks.call("containerizer.containers.list", all=True)
    }
    docker_client.containers.get(intruder.id)  # Untouched.


# --- hypothesis over the whole task path ----------------------------------------------------------

TASKS = [
    "containerizer.containers.create",
    "containerizer.containers.run",
    "containerizer.containers.start",
    "containerizer.containers.stop",
    "containerizer.containers.kill",
    "containerizer.containers.restart",
    "containerizer.containers.remove",
    "containerizer.containers.inspect",
    "containerizer.containers.logs",
    "containerizer.containers.list",
    "containerizer.containers.stats",
    "containerizer.images.tag",
    "containerizer.images.remove",
    "containerizer.images.list",
    "containerizer.maintenance.summary",
]
ARGUMENT_NAMES = [
    "spec",
    "container",
    "timeout",
    "signal",
    "force",
    "volumes",
    "tail",
    "timestamps",
    "all",
    "labels",
    "reference",
    "source",
    "target",
    "auth",
    "pulled",
]
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\x00\u00b2\u0661/:.-aA0 '\"\\"), max_size=20),
    st.sampled_from(["busybox", "/", "/var/run/docker.sock", "host", "..", "\x00"]),
)
_json = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
_kwargs = st.dictionaries(
    st.one_of(st.sampled_from(ARGUMENT_NAMES), st.text(max_size=10)), _json, max_size=4
)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(TASKS), kwargs=_kwargs, args=st.lists(_json, max_size=2))
def test_whatever_is_sent_by_name_ends_in_success_or_a_documented_error(
    service: RunningService,
    tasks: TaskClient,
    name: str,
    kwargs: dict[str, Any],
    args: list[Any],
) -> None:
    queue = {"containers": "containers", "images": "images", "maintenance": "maintenance"}[
        name.split(".")[1]
    ]
    result = tasks.app.send_task(name, args=args, kwargs=kwargs, queue=queue)
    try:
        result.get(timeout=60)
    except Exception as exc:
        assert type(exc).__name__ in DOCUMENTED, (name, args, kwargs, repr(exc))
    assert service.process.poll() is None


def test_the_workers_survived_the_hypothesis_run(
    service: RunningService, tasks: TaskClient, docker_client: docker.DockerClient
) -> None:
    workers_up(service, tasks)
    # Nothing hypothesis sent made a container: no valid spec names an image here.
    made = docker_client.containers.list(all=True, filters={"label": "containerizer.host=ctz-test"})
    assert made == [] or all(c.labels.get("ctz-test") for c in made)
    assert "Unrecoverable error" not in service.log()
    assert "Traceback" not in "\n".join(
        line for line in service.log().splitlines() if "CRITICAL" in line
    )
    subprocess.run(["true"], check=True)
