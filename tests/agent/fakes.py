"""Test doubles with the surfaces the agent uses: the docker SDK client, and a kernel backend."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import docker.errors


class FakeContainer:
    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs
        self.id = attrs["Id"]
        self.labels = (attrs.get("Config") or {}).get("Labels") or {}


class FakeImage:
    def __init__(self, tags: list[str]) -> None:
        self.tags = tags


class _Containers:
    def __init__(self, client: FakeDockerClient) -> None:
        self._client = client

    def list(self, **_kwargs: Any) -> list[FakeContainer]:
        self._client.list_calls += 1
        return [FakeContainer(a) for a in self._client.running.values()]

    def get(self, cid: str) -> FakeContainer:
        self._client.asked.append(cid)
        for attrs in self._client.running.values():
            if attrs["Id"] == cid or attrs["Id"].startswith(cid):
                return FakeContainer(attrs)
        raise docker.errors.NotFound(f"No such container: {cid}")


class _Images:
    def __init__(self, client: FakeDockerClient) -> None:
        self._client = client

    def get(self, image_id: str) -> FakeImage:
        if image_id in self._client.image_tags:
            return FakeImage(self._client.image_tags[image_id])
        raise docker.errors.ImageNotFound(image_id)


class FakeEventStream:
    """What DockerClient.events(decode=True) returns: an iterator with close()."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()

    def push(self, event: Mapping[str, Any]) -> None:
        self._queue.put(dict(event))

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.closed.set()
        self._queue.put(None)


class FakeDockerClient:
    def __init__(self) -> None:
        self.running: dict[str, dict[str, Any]] = {}
        self.image_tags: dict[str, list[str]] = {}
        self.list_calls = 0
        self.asked: list[str] = []  # container ids asked with containers.get
        self.containers = _Containers(self)
        self.images = _Images(self)
        self.stream = FakeEventStream()
        self.events_filters: Any = None

    def events(self, decode: bool = False, filters: Any = None, **_kwargs: Any) -> FakeEventStream:
        assert decode, "the agent must ask for decoded events"
        self.events_filters = filters
        return self.stream

    def add(self, cid: str, image: str, *, pid: int | None = None, labels: dict[str, str] | None = None,
            name: str = "web", image_id: str = "sha256:" + "1" * 64, ip: str = "") -> dict[str, Any]:
        attrs = {
            "Id": cid,
            "Name": "/" + name,
            "Image": image_id,
            "Config": {"Image": image, "Labels": labels or {}},
            "State": {"Pid": pid or 0, "Running": True},
            "NetworkSettings": {"IPAddress": ip, "Networks": {}},
        }
        self.running[cid] = attrs
        return attrs


class FakeKernelBackend:
    """In-memory KernelBackend: records applied policies, replays queued activities."""

    def __init__(self) -> None:
        self.applied: list[tuple[Any, dict[int, frozenset[str]]]] = []
        self.queue: queue.Queue[Any] = queue.Queue()
        self.closed = False
        self.fail_next_apply: Exception | None = None
        self.ancestries: dict[int, Any] = {}
        # program -> stats counter -> value, as BpfBackend.counters() reads them; tests raise them
        self.kernel_counters: dict[str, dict[str, int]] = {"file": {}, "process": {}}

    def counters(self) -> dict[str, dict[str, int]]:
        return {program: dict(values) for program, values in self.kernel_counters.items()}

    def apply_policy(self, policy: Any, container_masks: Mapping[int, frozenset[str]]) -> None:
        if self.fail_next_apply is not None:
            exc, self.fail_next_apply = self.fail_next_apply, None
            raise exc
        self.applied.append((policy, dict(container_masks)))

    def poll(self, timeout: float) -> Iterable[Any]:
        out = []
        try:
            out.append(self.queue.get(timeout=timeout))
            while True:
                out.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def ancestry(self, task: Any) -> Any:
        return self.ancestries.get(task.pid)

    def close(self) -> None:
        self.closed = True
