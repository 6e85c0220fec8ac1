"""Drive containerizer from a service that has only Celery (and redis-py) installed.

    python docs/examples/drive_by_name.py      # with `containerizer up` running

Tasks are sent by name with JSON arguments to the queue the contract names; failures come back as
exceptions whose class names are the documented error names.
"""

import json

import redis
from celery import Celery

app = Celery(broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/1")
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
state = redis.Redis.from_url("redis://127.0.0.1:6379/2", decode_responses=True)


def call(task: str, queue: str = "containers", **kwargs):
    return app.send_task(f"containerizer.{task}", kwargs=kwargs, queue=queue).get(timeout=120)


def status(container_id: str) -> str:
    return state.hget(f"containerizer:container:{container_id}", "status")


spec = {
    "image": "containerizer-test/busybox:latest",
    "name": "demo-web",
    "command": ["sh", "-c", "echo hello from demo-web; trap 'exit 0' TERM; sleep 1000 & wait"],
    "labels": {"team": "demo"},
    "mem_limit": "64m",
}
created = call("containers.create", spec=spec)
cid = created["id"]
print("create ", created, "| redis:", status(cid))
print("start  ", call("containers.start", container=cid), "| redis:", status(cid))
print("stats  ", call("containers.stats", container=cid))
print("logs   ", call("containers.logs", container="demo-web", tail=5))
print(
    "inspect",
    call("containers.inspect", container=cid)["State"]["Status"],
    "(by id),",
    call("containers.inspect", container="demo-web")["Name"],
    "(by name)",
)
print("list   ", [c["name"] for c in call("containers.list", labels={"team": "demo"})])
print("stop   ", call("containers.stop", container=cid, timeout=5), "| redis:", status(cid))
print("restart", call("containers.restart", container=cid), "| redis:", status(cid))
print("kill   ", call("containers.kill", container=cid), "| redis:", status(cid))
print("remove ", call("containers.remove", container=cid), "| redis:", status(cid))
try:
    call("containers.create", spec={**spec, "privileged": True})
except Exception as exc:
    print("denied ", type(exc).__name__, "-", exc)
print("summary", json.dumps(call("maintenance.summary", queue="maintenance")))
