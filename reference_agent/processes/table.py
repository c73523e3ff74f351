"""The agent's process table: seeded from /proc at start, then kept by fork/exec/exit events.

Identity. A process is keyed by (pid, start since boot rounded to the clock tick): /proc and
the kernel side agree on that pair (see entity_id.py), and it survives pid reuse. `_live` maps
each running pid to its key; `_records` holds every process the table still needs.

Relatives. Each record stores the *keys* of its parent, session leader, process-group leader
and entry leader, captured when the process was learnt (fork, seed) and updated on exec. Keys,
not pids: a leader that exited and whose pid was reused must still describe the old leader,
not the newcomer.

Entry leader (ECS entry_meta.type "container"): the first process of the container the
process is in — walk up the parents while they are in the same container; the last one is it.
For `docker run` that is the container's init (its parent, runc/containerd-shim, is outside);
a `docker exec` process is its own entry leader for the same reason. Host processes have none.

Memory is bounded two ways:
1. An exited process is dropped as soon as no *live* process refers to it as parent, session,
   group or entry leader (a reference count per key): it is kept only while some event may
   still need to describe it. So the table holds the live processes plus the dead ancestors
   and leaders of live ones — about the number of processes running on the node.
2. A hard cap (`max_records`). When it is reached, the oldest retained dead process goes
   first, then the oldest live one (most likely a process whose exit event was lost);
   `stats()` counts both. Relatives that were evicted are described as unknown (omitted).

Not seen by this table: setsid()/setpgid() after fork and cgroup moves happen without an
event. Exec refreshes sid/pgid/tty/cwd from /proc (setsid-then-exec is how sessions start);
`reconcile()` finds processes whose exit was lost.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reference_agent.activity import Ancestry, ProcessSnapshot, TaskInfo

from reference_agent.system import procfs
from reference_agent.system.cgroups import CgroupIndex, container_resolver, find_cgroup2_mount
from .entity_id import entity_id as make_entity_id
from .facts import ENTRY_META_CONTAINER, ProcessDescription, ProcessFacts, ProcessImage
from reference_agent.system.accounts import AccountNames

Key = tuple[int, int]  # (pid, start since boot in ns, tick-rounded)

# A typical node runs a few thousand processes; 64k records (~1 KiB each with args) bound the
# table at a few tens of MiB even when exit events are lost wholesale.
DEFAULT_MAX_RECORDS = 65536
# Images kept in process.previous: a shell that execs a wrapper that execs the program is
# common, long exec chains are not; the oldest are dropped first.
MAX_PREVIOUS = 8
AUTO = "auto"


@dataclass(slots=True)
class _Record:
    key: Key
    ppid: int
    sid: int | None
    pgid: int | None
    executable: str | None
    args: tuple[str, ...]
    cwd: str | None
    uid: int
    gid: int
    user_name: str | None
    group_name: str | None
    tty: bool
    cgroup_id: int
    container_id: str | None
    previous: tuple[ProcessImage, ...] = ()
    parent: Key | None = None
    session: Key | None = None
    group: Key | None = None
    entry: Key | None = None
    exited: bool = False
    eid: str | None = None  # entity id, computed once: it never changes for a key

    @property
    def pid(self) -> int:
        return self.key[0]

    @property
    def start_ns(self) -> int:
        return self.key[1]

    def links(self) -> tuple[Key | None, ...]:
        return (self.parent, self.session, self.group, self.entry)


@dataclass(frozen=True)
class ProcessTableStats:
    live: int
    retained_exited: int  # dead processes kept because a live one refers to them
    evicted_exited: int  # dropped by the cap while still referred to
    evicted_live: int  # live records dropped by the cap
    missed_exits: int  # records ended without an exit event (pid reused, reconcile)
    unknown_exec: int  # exec events for a pid the table could not learn
    max_records: int


class ProcessTable:
    """Processes of this node, by pid, with their relatives; see the module docstring."""

    def __init__(
        self,
        agent_id: str,
        proc_root: str = "/proc",
        *,
        cgroup_root: str | None = AUTO,
        host_root: str = "/",
        boot_time_ns: int | None = None,
        container_of: Callable[[int], str | None] | None = None,
        entity_ids: Callable[[int, int], str] | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        """`entity_ids(pid, start_ns_since_boot)` replaces the default formula (entity_id.py)
        when the agent wants one formula shared with its ECS builders."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.agent_id = agent_id
        self.proc_root = proc_root.rstrip("/") or "/"
        self.host_root = host_root
        self.boot_time_ns = procfs.boot_time_ns(self.proc_root) if boot_time_ns is None else boot_time_ns
        if cgroup_root == AUTO:
            cgroup_root = find_cgroup2_mount(f"{self.proc_root}/self/mounts")
        self.cgroups = CgroupIndex(cgroup_root)
        self._container_of = container_of or container_resolver(self.cgroups)
        self._entity_ids = entity_ids
        self.max_records = max_records
        self._names = AccountNames()
        self._records: dict[Key, _Record] = {}
        self._live: dict[int, Key] = {}
        self._refs: dict[Key, int] = {}
        self._retained: OrderedDict[Key, None] = OrderedDict()  # exited, still referred to
        self._evicted_exited = 0
        self._evicted_live = 0
        self._missed_exits = 0
        self._unknown_exec = 0

    # ---------------------------------------------------------------- lookups

    def __contains__(self, pid: object) -> bool:
        return pid in self._live

    def __len__(self) -> int:
        """Records held: live processes plus retained dead relatives."""
        return len(self._records)

    def live_pids(self) -> list[int]:
        return sorted(self._live)

    def entity_id(self, pid: int) -> str | None:
        rec = self._live_record(pid)
        return self._eid(rec) if rec else None

    def parent_pid(self, pid: int) -> int | None:
        rec = self._live_record(pid)
        parent = self._records.get(rec.parent) if rec and rec.parent else None
        return parent.pid if parent else None

    def describe(self, pid: int) -> ProcessFacts | None:
        """The running process `pid` and its relatives, or None if the table does not know it."""
        rec = self._live_record(pid)
        return self._facts(rec) if rec else None

    def ancestry(self, process: TaskInfo | int) -> Ancestry | None:
        """The relatives of a process as the ECS builders' seam (activity.Ancestry) takes them.

        Takes a pid or the kernel's TaskInfo (the agent's optional `ancestry(task)` hook); for
        a TaskInfo whose start differs from the table's record (a pid reused before the table
        caught up) nothing is returned rather than another process's relatives.
        """
        pid = process if isinstance(process, int) else process.pid
        rec = self._live_record(pid)
        if rec is None:
            return None
        if not isinstance(process, int) and procfs.round_to_tick(process.start_time_ns) != rec.start_ns:
            return None

        def snapshot(key: Key | None) -> ProcessSnapshot | None:
            other = self._records.get(key) if key is not None else None
            if other is None:
                return None
            return ProcessSnapshot(
                pid=other.pid,
                start_time_ns=other.start_ns,
                executable=other.executable,
                args=other.args,
                uid=other.uid,
                gid=other.gid,
                tty=other.tty,
                working_directory=other.cwd,
            )

        return Ancestry(
            parent=snapshot(rec.parent),
            session_leader=snapshot(rec.session),
            entry_leader=snapshot(rec.entry),
            group_leader=snapshot(rec.group),
            working_directory=rec.cwd,
        )

    def knows(self, task: TaskInfo) -> bool:
        """Whether the table has the running process `task` (same pid AND start: not a reuse)."""
        rec = self._live_record(task.pid)
        return rec is not None and rec.start_ns == procfs.round_to_tick(task.start_time_ns)

    def learn(self, task: TaskInfo) -> bool:
        """Make the table know `task`, a process it missed (started before the seed finished,
        or an event was lost); True when it knows it afterwards.

        /proc first, when it still shows that very process (pid and start); otherwise only the
        kernel's view of it: its image, ids and tty, with session, group, args and cwd left
        unknown rather than copied from a parent it may have exec'd away from.
        """
        if self.knows(task):
            return True
        stale = self._live_record(task.pid)
        if stale is not None:
            self._end(stale, missed=True)  # pid reused behind our back
        start = procfs.round_to_tick(task.start_time_ns)
        try:
            snap = procfs.read_snapshot(self.proc_root, task.pid)
        except procfs.ProcessGone:
            snap = None
        if snap is not None and snap.stat.start_ns == start and not snap.stat.kernel_thread:
            rec = self._record_from_snapshot(snap)
        else:
            rec = self._record_from_task(task, None)
        self._add(rec)
        self._set_links(rec, self._compute_links(rec))
        return True

    def image(self, task: TaskInfo) -> ProcessImage | None:
        """The program `task` runs now as the table knows it (executable, args), or None."""
        rec = self._live_record(task.pid)
        if rec is None or rec.start_ns != procfs.round_to_tick(task.start_time_ns):
            return None
        return ProcessImage(rec.executable, rec.args)

    def previous_image(self, task: TaskInfo) -> ProcessImage | None:
        """The program `task` ran before its last exec (ECS process.previous), or None."""
        rec = self._live_record(task.pid)
        if rec is None or rec.start_ns != procfs.round_to_tick(task.start_time_ns) or not rec.previous:
            return None
        return rec.previous[-1]

    def stats(self) -> ProcessTableStats:
        return ProcessTableStats(
            live=len(self._live),
            retained_exited=len(self._retained),
            evicted_exited=self._evicted_exited,
            evicted_live=self._evicted_live,
            missed_exits=self._missed_exits,
            unknown_exec=self._unknown_exec,
            max_records=self.max_records,
        )

    # ---------------------------------------------------------------- seeding

    def seed(self) -> int:
        """Learn every user-space process now in /proc; returns how many were new.

        Processes that exit during the walk are skipped; kernel threads are skipped (no image,
        never in a container). Safe to call again: known processes are kept as they are.
        """
        fresh: list[_Record] = []
        for pid in procfs.list_pids(self.proc_root):
            try:
                snap = procfs.read_snapshot(self.proc_root, pid)
            except procfs.ProcessGone:
                continue
            if snap.stat.kernel_thread:
                continue
            key = (pid, snap.stat.start_ns)
            known = self._live.get(pid)
            if known == key:
                continue
            if known is not None:
                self._end(self._records[known], missed=True)
            fresh.append(self._record_from_snapshot(snap))
        # Add all before linking: a parent may have a higher pid than its child (pid wrap).
        for rec in fresh:
            self._add(rec)
        # Parents first (they started earlier), so an entry leader is found from the parent's.
        for rec in sorted(fresh, key=lambda r: r.key[::-1]):
            if rec.key in self._records:
                self._set_links(rec, self._compute_links(rec))
        return len(fresh)

    def _record_from_snapshot(self, snap: procfs.ProcSnapshot) -> _Record:
        cgroup_id = self.cgroups.id_of(snap.cgroup_path)
        container_id = self._container_of(cgroup_id)
        user_name, group_name = self._account_names(snap.stat.pid, snap.uid, snap.gid, container_id)
        return _Record(
            key=(snap.stat.pid, snap.stat.start_ns),
            ppid=snap.stat.ppid,
            sid=snap.stat.sid,
            pgid=snap.stat.pgid,
            executable=snap.executable,
            args=snap.args,
            cwd=snap.cwd,
            uid=snap.uid,
            gid=snap.gid,
            user_name=user_name,
            group_name=group_name,
            tty=snap.stat.tty_nr != 0,
            cgroup_id=cgroup_id,
            container_id=container_id,
        )

    # ---------------------------------------------------------------- events

    def on_fork(self, child: TaskInfo, parent_pid: int | None = None) -> str:
        """A new process (the kernel's view of the child); returns its entity id.

        The child starts as a copy of its parent — same image, args, cwd, session and process
        group — which is exactly what fork makes; the kernel's values (ids, cgroup, tty, image)
        win where given. A parent the table does not know leaves those to /proc, if the child
        is still there.

        `parent_pid` is the task that called fork (default: child.ppid); it is what the child
        copies. process.parent is always child.ppid, the real parent (they differ only with
        CLONE_PARENT). child.start_time_ns must be the thread-group leader's start_boottime,
        so that every thread, and the process after exec (de_thread copies it), has one id.
        """
        key = (child.pid, procfs.round_to_tick(child.start_time_ns))
        known = self._live.get(child.pid)
        if known == key:
            return self._eid(self._records[known])
        if known is not None:
            self._end(self._records[known], missed=True)
        parent = self._live_record(child.ppid if parent_pid is None else parent_pid)
        rec = self._record_from_task(child, parent)
        self._add(rec)
        self._set_links(rec, self._compute_links(rec))
        return self._eid(rec)

    def on_exec(
        self,
        pid: int,
        executable: str,
        args: Iterable[str],
        *,
        task: TaskInfo | None = None,
        cwd: str | None = None,
    ) -> ProcessImage | None:
        """`pid` now runs `executable` with `args`; returns the image it replaced (process.previous).

        `task` is the kernel's view after the exec (credentials change on setuid images, the
        cgroup may have changed since fork, e.g. runc moving the container's first process in).
        Session, group, tty and cwd are re-read from /proc when the process is still there.
        Returns None when the previous image is unknown (the table learnt the process here).
        """
        rec = self._live_record(pid)
        if rec is not None and task is not None and rec.start_ns != procfs.round_to_tick(task.start_time_ns):
            self._end(rec, missed=True)  # pid reused behind our back
            rec = None
        previous: ProcessImage | None = None
        if rec is None:
            rec = self._learn_late(pid, task)
            if rec is None:
                self._unknown_exec += 1
                return None
        else:
            previous = ProcessImage(rec.executable, rec.args)
            rec.previous = (*rec.previous, previous)[-MAX_PREVIOUS:]
        rec.executable = executable
        rec.args = tuple(args)
        stat = self._fresh_stat(rec)
        if stat is not None:
            rec.sid, rec.pgid, rec.tty = stat.sid, stat.pgid, stat.tty_nr != 0
        if cwd is not None:
            rec.cwd = cwd
        elif stat is not None:
            rec.cwd = procfs.read_cwd(self.proc_root, pid) or rec.cwd
        if task is not None:
            if task.sid is not None:
                rec.sid = task.sid
            if task.pgid is not None:
                rec.pgid = task.pgid
            changed = (task.uid, task.gid, task.cgroup_id) != (rec.uid, rec.gid, rec.cgroup_id)
            rec.uid, rec.gid, rec.tty = task.uid, task.gid, task.tty
            if task.cgroup_id != rec.cgroup_id:
                rec.cgroup_id = task.cgroup_id
                rec.container_id = self._container_of(task.cgroup_id)
            if changed:
                rec.user_name, rec.group_name = self._account_names(pid, rec.uid, rec.gid, rec.container_id)
        self._set_links(rec, self._compute_links(rec))
        return previous

    def on_exit(self, pid: int, *, end_ns: int | None = None, start_ns: int | None = None) -> ProcessFacts | None:
        """The process `pid` ended (its whole thread group); returns its last facts, with `end`.

        `end_ns` is nanoseconds since boot (the kernel's clock); `start_ns`, when given, guards
        against an exit for a pid the table knows under another start (a lost exit + reuse).
        """
        rec = self._live_record(pid)
        if rec is None:
            return None
        if start_ns is not None and procfs.round_to_tick(start_ns) != rec.start_ns:
            self._end(rec, missed=True)
            return None
        facts = self._facts(rec, end_ns=None if end_ns is None else self.boot_time_ns + end_ns)
        self._end(rec)
        return facts

    def reconcile(self) -> list[ProcessFacts]:
        """End every live record whose process is no longer in /proc, or is there only as a
        zombie (it exited; its parent has not reaped it): its exit event was lost.

        Returns their last facts so the pipeline can still emit the `end` events it owes (D20).
        """
        ended: list[ProcessFacts] = []
        for pid in list(self._live):
            rec = self._records[self._live[pid]]
            stat = self._fresh_stat(rec)
            if stat is None or stat.exited:
                ended.append(self._facts(rec))
                self._end(rec, missed=True)
        return ended

    # ---------------------------------------------------------------- internals

    def _live_record(self, pid: int) -> _Record | None:
        key = self._live.get(pid)
        return self._records[key] if key is not None else None

    def _fresh_stat(self, rec: _Record) -> procfs.StatLine | None:
        """/proc's stat of `rec`'s process, if /proc still shows that very process."""
        try:
            stat = procfs.read_stat(self.proc_root, rec.pid)
        except procfs.ProcessGone:
            return None
        return stat if stat.start_ns == rec.start_ns else None

    def _record_from_task(self, task: TaskInfo, parent: _Record | None) -> _Record:
        container_id = self._container_of(task.cgroup_id)
        if parent is not None:
            sid, pgid, args, cwd = parent.sid, parent.pgid, parent.args, parent.cwd
            executable = task.executable or parent.executable
        else:
            sid = pgid = None
            args, cwd, executable = (), None, task.executable or None
        rec = _Record(
            key=(task.pid, procfs.round_to_tick(task.start_time_ns)),
            ppid=task.ppid,
            sid=sid,
            pgid=pgid,
            executable=executable,
            args=args,
            cwd=cwd,
            uid=task.uid,
            gid=task.gid,
            user_name=None,
            group_name=None,
            tty=task.tty,
            cgroup_id=task.cgroup_id,
            container_id=container_id,
        )
        if parent is None:
            stat = self._fresh_stat(rec)
            if stat is not None:
                rec.sid, rec.pgid = stat.sid, stat.pgid
                rec.args = procfs.read_args(self.proc_root, task.pid) or ()
                rec.cwd = procfs.read_cwd(self.proc_root, task.pid)
        # The kernel's session/group (when it reports them) are the truth at the event; a
        # parent's copy or a later /proc read may not be (setsid after fork).
        if task.sid is not None:
            rec.sid = task.sid
        if task.pgid is not None:
            rec.pgid = task.pgid
        if parent is not None and (parent.uid, parent.gid, parent.container_id) == (task.uid, task.gid, container_id):
            rec.user_name, rec.group_name = parent.user_name, parent.group_name
        else:
            fallback = (parent.pid,) if parent is not None and parent.container_id == container_id else ()
            rec.user_name, rec.group_name = self._account_names(task.pid, task.uid, task.gid, container_id, fallback)
        return rec

    def _learn_late(self, pid: int, task: TaskInfo | None) -> _Record | None:
        """A process first seen at exec (its fork predates the agent or was lost).

        Nothing is copied from its parent: a process that was not seen forking may have
        changed session since (runc init calls setsid before it execs the container's
        command, whose parent is runc or containerd-shim), so session, group, args and cwd
        come from /proc or the kernel, or stay unknown.
        """
        if task is not None:
            rec = self._record_from_task(task, None)
        else:
            try:
                rec = self._record_from_snapshot(procfs.read_snapshot(self.proc_root, pid))
            except procfs.ProcessGone:
                return None
        self._add(rec)
        return rec

    def _account_names(
        self, pid: int, uid: int, gid: int, container_id: str | None, fallback_pids: tuple[int, ...] = ()
    ) -> tuple[str | None, str | None]:
        """Names from the process's own root; a container process never gets the host's."""
        if container_id is None:
            return self._names.user_name(self.host_root, uid), self._names.group_name(self.host_root, gid)
        for candidate in (pid, *fallback_pids):
            root = f"{self.proc_root}/{candidate}/root"
            if self._names.readable(root):
                return self._names.user_name(root, uid), self._names.group_name(root, gid)
        return None, None

    def _leader_key(self, rec: _Record, leader_pid: int | None, attr: str) -> Key | None:
        if leader_pid is None:
            return None
        if leader_pid == rec.pid:
            return rec.key
        leader = self._live_record(leader_pid)
        if leader is not None and getattr(leader, attr) == leader_pid:
            return leader.key
        # The leader is dead: inherit the parent's key for it when they share the session/group.
        parent = self._records.get(rec.parent) if rec.parent else None
        if parent is not None and getattr(parent, attr) == leader_pid:
            return parent.session if attr == "sid" else parent.group
        return None

    def _entry_key(self, rec: _Record, parent_key: Key | None) -> Key | None:
        if rec.container_id is None:
            return None
        current, seen = rec, {rec.key}
        parent = self._records.get(parent_key) if parent_key else None
        while parent is not None and parent.container_id == rec.container_id and parent.key not in seen:
            if parent.entry is not None:
                return parent.entry
            seen.add(parent.key)
            current = parent
            # During seed() a parent may not be linked yet (same start tick, pid wrapped):
            # fall back to its ppid.
            up = parent.parent or self._live.get(parent.ppid)
            parent = self._records.get(up) if up else None
        return current.key

    def _compute_links(self, rec: _Record) -> tuple[Key | None, ...]:
        parent_key = rec.parent
        if parent_key is None or parent_key not in self._records:
            live_parent = self._live.get(rec.ppid)
            parent_key = live_parent if live_parent != rec.key else None
        saved, rec.parent = rec.parent, parent_key  # _leader_key reads rec.parent
        try:
            session = self._leader_key(rec, rec.sid, "sid")
            group = self._leader_key(rec, rec.pgid, "pgid")
        finally:
            rec.parent = saved
        return (parent_key, session, group, self._entry_key(rec, parent_key))

    def _set_links(self, rec: _Record, links: tuple[Key | None, ...]) -> None:
        # Take the new references before releasing the old: a retained leader that stays a
        # leader must not be dropped in between.
        old = rec.links() if not rec.exited else (None, None, None, None)
        for key in links:
            self._incref(key)
        rec.parent, rec.session, rec.group, rec.entry = links
        for key in old:
            self._decref(key)

    def _incref(self, key: Key | None) -> None:
        if key is not None and key in self._records:
            self._refs[key] = self._refs.get(key, 0) + 1

    def _decref(self, key: Key | None) -> None:
        if key is None or key not in self._refs:
            return
        self._refs[key] -= 1
        if self._refs[key] <= 0:
            del self._refs[key]
            rec = self._records.get(key)
            if rec is not None and rec.exited:
                self._drop(key)

    def _add(self, rec: _Record) -> None:
        while len(self._records) >= self.max_records:
            self._evict_one()
        self._records[rec.key] = rec
        self._live[rec.pid] = rec.key

    def _evict_one(self) -> None:
        if self._retained:
            key, _ = self._retained.popitem(last=False)
            self._evicted_exited += 1
            self._drop(key)
            return
        oldest = next(iter(self._records.values()))
        self._evicted_live += 1
        self._end(oldest)
        self._drop(oldest.key)

    def _end(self, rec: _Record, *, missed: bool = False) -> None:
        if missed:
            self._missed_exits += 1
        if self._live.get(rec.pid) == rec.key:
            del self._live[rec.pid]
        links = rec.links()
        rec.exited = True
        if self._refs.get(rec.key, 0) > 0:
            self._retained[rec.key] = None
        for key in links:
            self._decref(key)
        if rec.key not in self._refs:
            self._drop(rec.key)

    def _drop(self, key: Key) -> None:
        self._records.pop(key, None)
        self._refs.pop(key, None)
        self._retained.pop(key, None)

    def _eid(self, rec: _Record) -> str:
        if rec.eid is None:
            if self._entity_ids is not None:
                rec.eid = self._entity_ids(rec.pid, rec.start_ns)
            else:
                rec.eid = make_entity_id(self.agent_id, rec.pid, self.boot_time_ns + rec.start_ns)
        return rec.eid

    def _describe(
        self, rec: _Record, subject: _Record | None = None, entry_meta_type: str | None = None
    ) -> ProcessDescription:
        return ProcessDescription(
            entity_id=self._eid(rec),
            pid=rec.pid,
            start_ns=self.boot_time_ns + rec.start_ns,
            executable=rec.executable,
            args=rec.args,
            working_directory=rec.cwd,
            user_id=rec.uid,
            user_name=rec.user_name,
            group_id=rec.gid,
            group_name=rec.group_name,
            interactive=rec.tty,
            same_as_process=None if subject is None else rec.key == subject.key,
            entry_meta_type=entry_meta_type,
        )

    def _facts(self, rec: _Record, *, end_ns: int | None = None) -> ProcessFacts:
        def relative(key: Key | None, meta: str | None = None) -> ProcessDescription | None:
            other = self._records.get(key) if key is not None else None
            return self._describe(other, rec, meta) if other is not None else None

        entry = relative(rec.entry, ENTRY_META_CONTAINER)
        # The seed's table also gives the session leader entry_meta.type "container": true
        # exactly when the session leader is the container's entry process, so say it then.
        session_meta = ENTRY_META_CONTAINER if entry is not None and rec.session == rec.entry else None
        return ProcessFacts(
            process=self._describe(rec),
            parent=relative(rec.parent),
            session_leader=relative(rec.session, session_meta),
            group_leader=relative(rec.group),
            entry_leader=entry,
            previous=rec.previous,
            cgroup_id=rec.cgroup_id,
            container_id=rec.container_id,
            end_ns=end_ns,
        )
