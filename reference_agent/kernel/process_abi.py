"""ctypes mirror of bpf/include/d4c_process_abi.h (process_hooks.bpf.c).

Shared types (limits, tokens, actions, PathPattern, Response, ContainerSelectors) come from
abi.py. tests/kernel/test_process_abi_layout.py checks this module against the BTF of
bpf/build/process_hooks.bpf.o, field by field and constant by constant.
"""

from __future__ import annotations

import ctypes
import enum

from reference_agent.kernel.abi import D4C_COMM_LEN, D4C_PATH_BUF

c_u32, c_u64 = ctypes.c_uint32, ctypes.c_uint64

# enum d4c_process_limits
D4C_ARGS_MAX = 1024
D4C_ARGS_BUF = 2048
D4C_MAX_ARGV = 64
D4C_PATTERN_SETS = 3
D4C_MAX_TASKS = 32768

LIMITS = {
    "D4C_ARGS_MAX": D4C_ARGS_MAX,
    "D4C_ARGS_BUF": D4C_ARGS_BUF,
    "D4C_MAX_ARGV": D4C_MAX_ARGV,
    "D4C_PATTERN_SETS": D4C_PATTERN_SETS,
    "D4C_MAX_TASKS": D4C_MAX_TASKS,
}


class ProcessOp(enum.IntFlag):  # enum d4c_process_op (bit index = index in op_selectors)
    D4C_OP_FORK = 1 << 0
    D4C_OP_EXEC = 1 << 1


D4C_PROCESS_OP_COUNT = 2
PROCESS_OP_BITS: dict[str, ProcessOp] = {"fork": ProcessOp.D4C_OP_FORK, "exec": ProcessOp.D4C_OP_EXEC}


class PatternSet(enum.IntEnum):  # enum d4c_pattern_set
    D4C_SET_EXECUTABLE = 0
    D4C_SET_NAME = 1
    D4C_SET_LEADER = 2


class RecordType(enum.IntEnum):  # enum d4c_record_type
    D4C_RECORD_LIFECYCLE = 1
    D4C_RECORD_ACTIVITY = 2


class Kind(enum.IntEnum):  # enum d4c_process_kind
    D4C_KIND_FORK = 1
    D4C_KIND_EXEC = 2
    D4C_KIND_EXIT = 3


KIND_NAMES = {1: "fork", 2: "exec", 3: "exit"}


class ProcessHook(enum.IntEnum):  # enum d4c_process_hook
    D4C_PHOOK_SCHED_PROCESS_FORK = 1
    D4C_PHOOK_SCHED_PROCESS_EXEC = 2
    D4C_PHOOK_SCHED_PROCESS_EXIT = 3
    D4C_PHOOK_BPRM_CREDS_FOR_EXEC = 4
    D4C_PHOOK_TASK_ALLOC = 5


TRACE_POINTS = {  # cloud_defend.trace_point, in the file side's naming (abi.TRACE_POINTS)
    ProcessHook.D4C_PHOOK_SCHED_PROCESS_FORK: "sched_process_fork",
    ProcessHook.D4C_PHOOK_SCHED_PROCESS_EXEC: "sched_process_exec",
    ProcessHook.D4C_PHOOK_SCHED_PROCESS_EXIT: "sched_process_exit",
    ProcessHook.D4C_PHOOK_BPRM_CREDS_FOR_EXEC: "lsm__bprm_creds_for_exec",
    ProcessHook.D4C_PHOOK_TASK_ALLOC: "lsm__task_alloc",
}


class ProcessFlag(enum.IntFlag):  # enum d4c_process_flags
    D4C_PFLAG_EXE_INCOMPLETE = 1 << 0
    D4C_PFLAG_MATCH_INCOMPLETE = 1 << 1
    D4C_PFLAG_POLICY_SLOT1 = 1 << 2
    D4C_PFLAG_LEADER_UNKNOWN = 1 << 3
    D4C_PFLAG_ARGS_CUT = 1 << 4
    D4C_PFLAG_NO_EXE = 1 << 5


class ProcessStat(enum.IntEnum):  # enum d4c_process_stat
    D4C_PSTAT_EVENTS = 0
    D4C_PSTAT_BLOCKS = 1
    D4C_PSTAT_RINGBUF_FULL = 2
    D4C_PSTAT_EXE_INCOMPLETE = 3
    D4C_PSTAT_MATCH_INCOMPLETE = 4
    D4C_PSTAT_LEADER_UNKNOWN = 5
    D4C_PSTAT_EXE_MISSING = 6
    D4C_PSTAT_COUNT = 8


ENUMS: dict[str, type[enum.IntEnum | enum.IntFlag]] = {
    "d4c_process_op": ProcessOp,
    "d4c_pattern_set": PatternSet,
    "d4c_record_type": RecordType,
    "d4c_process_kind": Kind,
    "d4c_process_hook": ProcessHook,
    "d4c_process_flags": ProcessFlag,
    "d4c_process_stat": ProcessStat,
}


class ProcessPolicy(ctypes.Structure):
    _fields_ = [
        ("op_selectors", c_u64 * D4C_PROCESS_OP_COUNT),
        ("set_selectors", c_u64 * D4C_PATTERN_SETS),
        ("user_id_selectors", c_u64),
        ("user_name_selectors", c_u64),
        ("interactive_true", c_u64),
        ("interactive_false", c_u64),
        ("n_patterns", c_u32 * D4C_PATTERN_SETS),
        ("n_responses", c_u32),
    ]


class UserIdKey(ctypes.Structure):
    _fields_ = [("uid", c_u32), ("slot", c_u32)]


class UserNameKey(ctypes.Structure):
    _fields_ = [("cgroup_id", c_u64), ("uid", c_u32), ("slot", c_u32)]


class ExePath(ctypes.Structure):
    _fields_ = [
        ("start_time_ns", c_u64),
        ("path_len", c_u32),
        ("flags", c_u32),
        ("path", ctypes.c_char * D4C_PATH_BUF),
    ]


class ProcessEvent(ctypes.Structure):
    _fields_ = [
        ("timestamp_ns", c_u64),
        ("cgroup_id", c_u64),
        ("start_time_ns", c_u64),
        ("selectors", c_u64),
        ("record", c_u32),
        ("kind", c_u32),
        ("pid", c_u32),
        ("tid", c_u32),
        ("ppid", c_u32),
        ("uid", c_u32),
        ("gid", c_u32),
        ("actions", c_u32),
        ("blocked", c_u32),
        ("flags", c_u32),
        ("hook", c_u32),
        ("tty", c_u32),
        ("exit_code", c_u32),
        ("path_len", c_u32),
        ("args_len", c_u32),
        ("argc", c_u32),
        ("sid", c_u32),
        ("pgid", c_u32),
        ("comm", ctypes.c_char * D4C_COMM_LEN),
        ("args", ctypes.c_char * D4C_ARGS_BUF),
        ("path", ctypes.c_char * D4C_PATH_BUF),
    ]


STRUCTS: dict[str, type[ctypes.Structure]] = {
    "d4c_process_policy": ProcessPolicy,
    "d4c_user_id_key": UserIdKey,
    "d4c_user_name_key": UserNameKey,
    "d4c_exe_path": ExePath,
    "d4c_process_event": ProcessEvent,
}
