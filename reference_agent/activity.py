"""What the kernel side reports to userspace, after decoding a ring-buffer record.

This is the seam between `reference_agent/kernel/` (BPF loading, maps, ring buffer) and the
userspace pipeline (`metadata/`, `ecs/`, `outputs/`): the kernel side produces these values,
the pipeline turns them into ECS documents. Keeping it a plain immutable value lets the
pipeline be tested on any host, without a BPF-LSM kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskInfo:
    """The process that attempted the operation, as the kernel saw it at that moment."""

    pid: int  # thread-group id (what userspace calls the pid), in the initial pid namespace
    tid: int
    ppid: int
    uid: int  # effective user (D16)
    gid: int  # effective group
    cgroup_id: int  # cgroup v2 id; identifies the container (0 or the root cgroup = host)
    comm: str  # 15-byte kernel name; ECS uses the executable's basename instead (D16)
    executable: str  # path of the running image, as seen inside the container
    start_time_ns: int  # task start, nanoseconds since boot (stable per process: entity ids)
    tty: bool  # whether the session has a controlling terminal
    # For the process table (optional; None = not reported): session id and process-group
    # id in the initial pid namespace, as the kernel saw them at the event. Without them the table places a process learnt at exec (`docker exec`: runc
    # init calls setsid, then execs) in its session from /proc, which a short-lived process
    # has already left by the time its event is decoded.
    sid: int | None = None
    pgid: int | None = None


@dataclass(frozen=True)
class FileActivity:
    """One file operation (D17) that fired at least one response (D22)."""

    operation: str  # createFile | createExecutable | modifyFile | modifyExecutable | deleteFile
    event_action: str  # ECS event.action (D25): creation | modification | deletion | rename | link
    path: str  # normalised path inside the container's root (D11)
    mount: str  # root | volume | file (D19)
    trace_point: str  # cloud_defend.trace_point, e.g. "lsm__file_open"
    selectors: tuple[str, ...]  # matched selectors of fired responses, policy order (D22)
    actions: frozenset[str]  # union of the fired responses' actions
    blocked: bool  # the kernel returned -EPERM
    task: TaskInfo
    timestamp_ns: int  # when the hook ran, nanoseconds since boot
    # D30: the kernel could not resolve the path completely; `path` is then the resolved
    # tail, without a leading '/' (cloud_defend.path_truncated).
    path_truncated: bool = False


@dataclass(frozen=True)
class ProcessActivity:
    """One fork, exec or end (D20) that fired a response, or an end owed by D20."""

    operation: str  # fork | exec | end
    selectors: tuple[str, ...]
    actions: frozenset[str]
    blocked: bool
    task: TaskInfo
    timestamp_ns: int
    args: tuple[str, ...] = ()
    previous_executable: str | None = None  # exec: the image before (process.previous)
    previous_args: tuple[str, ...] = field(default=())
    # Added (additive) for cloud_defend.trace_point: the tracepoint or LSM hook that reported
    # it, e.g. "sched_process_exec" or "lsm__bprm_check_security"; None = omitted.
    trace_point: str | None = None
    # Added (additive) for ECS process.exit_code on `end` events: the exit code as a shell
    # reports it (128 + signal when killed); None = unknown, omitted.
    exit_code: int | None = None
    # D30: the executable's path (task.executable) is an incomplete tail, not an absolute path.
    path_truncated: bool = False
    # exec: the program is a memfd file, i.e. the policy operation was execMemFd (D32).
    memfd: bool = False

    @property
    def policy_operation(self) -> str:
        """The operation the policy decided it as: fork, exec or execMemFd (D5, D32)."""
        return "execMemFd" if self.memfd and self.operation == "exec" else self.operation


@dataclass(frozen=True)
class ProcessLifecycle:
    """A fork, exec or exit of a container task, reported whether or not a response fired.

    It keeps the process table current (parents, leaders, the executables and args of
    short-lived tasks) and drives D20's end events. Ordering contract of the kernel side: for
    an exec or fork that also fired a response, this value comes BEFORE its ProcessActivity,
    so the table already knows the new image/child when the document is built. A blocked exec
    or fork changed nothing and yields only its ProcessActivity (blocked=True).
    """

    kind: str  # fork | exec | exit
    # fork: the child (ppid = the forking process); exec: the task after the exec (its new
    # executable); exit: the ending thread-group leader.
    task: TaskInfo
    timestamp_ns: int  # nanoseconds since boot
    args: tuple[str, ...] = ()  # exec: argv as captured (may be cut, never invented)
    exit_code: int | None = None  # exit: the exit status when known


# --- what the process table adds: the acting task's relatives --------------------------------


@dataclass(frozen=True)
class ProcessSnapshot:
    """What a process table knows about one process (a relative of the acting task).

    Every field but pid and start_time_ns is optional: the ECS builders emit only what is
    known, never a guess.
    """

    pid: int
    start_time_ns: int  # nanoseconds since boot, as TaskInfo.start_time_ns (entity ids)
    executable: str | None = None
    args: tuple[str, ...] | None = None
    uid: int | None = None
    gid: int | None = None
    tty: bool | None = None
    working_directory: str | None = None


@dataclass(frozen=True)
class Ancestry:
    """The acting task's relatives, from the process table (process.parent/…_leader.*)."""

    parent: ProcessSnapshot | None = None
    session_leader: ProcessSnapshot | None = None
    entry_leader: ProcessSnapshot | None = None
    group_leader: ProcessSnapshot | None = None
    working_directory: str | None = None  # the acting task's own cwd, when known
