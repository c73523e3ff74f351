"""ctypes mirror of bpf/include/d4c_abi.h: the constants, map values and ring-buffer records.

The header is the definition; this module repeats it for Python and tests/kernel/test_abi_layout.py
checks, against the BTF the compiler emitted into the object, that every struct has the same
size and every field the same offset and size, and that every enum constant has the same value.
"""

from __future__ import annotations

import ctypes
import enum

c_u8, c_u32, c_u64 = ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64

# enum d4c_limits
D4C_MAX_SELECTORS = 64
D4C_MAX_RESPONSES = 64
D4C_PATTERN_MAX = 256
D4C_MAX_PATTERNS = 512
D4C_PATH_MAX = 4096
D4C_PATH_BUF = 4096 + 256
D4C_MAX_WALK = 96
D4C_COMM_LEN = 16
D4C_POLICY_SLOTS = 2

LIMITS = {
    "D4C_MAX_SELECTORS": D4C_MAX_SELECTORS,
    "D4C_MAX_RESPONSES": D4C_MAX_RESPONSES,
    "D4C_PATTERN_MAX": D4C_PATTERN_MAX,
    "D4C_MAX_PATTERNS": D4C_MAX_PATTERNS,
    "D4C_PATH_MAX": D4C_PATH_MAX,
    "D4C_PATH_BUF": D4C_PATH_BUF,
    "D4C_MAX_WALK": D4C_MAX_WALK,
    "D4C_COMM_LEN": D4C_COMM_LEN,
    "D4C_POLICY_SLOTS": D4C_POLICY_SLOTS,
}


class Token(enum.IntEnum):  # enum d4c_token
    D4C_TOKEN_STAR = 1
    D4C_TOKEN_GLOBSTAR = 2


class FileOp(enum.IntFlag):  # enum d4c_file_op (bit index = index in op_selectors)
    D4C_OP_CREATE_EXECUTABLE = 1 << 0
    D4C_OP_MODIFY_EXECUTABLE = 1 << 1
    D4C_OP_CREATE_FILE = 1 << 2
    D4C_OP_MODIFY_FILE = 1 << 3
    D4C_OP_DELETE_FILE = 1 << 4


D4C_FILE_OP_COUNT = 5

# Policy operation name (D5) <-> kernel bit.
FILE_OP_BITS: dict[str, FileOp] = {
    "createExecutable": FileOp.D4C_OP_CREATE_EXECUTABLE,
    "modifyExecutable": FileOp.D4C_OP_MODIFY_EXECUTABLE,
    "createFile": FileOp.D4C_OP_CREATE_FILE,
    "modifyFile": FileOp.D4C_OP_MODIFY_FILE,
    "deleteFile": FileOp.D4C_OP_DELETE_FILE,
}
FILE_OP_NAMES: dict[int, str] = {int(bit): name for name, bit in FILE_OP_BITS.items()}


class MountClass(enum.IntEnum):  # enum d4c_mount_class (D19)
    D4C_MOUNT_ROOT = 0
    D4C_MOUNT_VOLUME = 1
    D4C_MOUNT_FILE = 2


MOUNT_NAMES = {0: "root", 1: "volume", 2: "file"}


class Action(enum.IntFlag):  # enum d4c_action
    D4C_ACTION_LOG = 1 << 0
    D4C_ACTION_ALERT = 1 << 1
    D4C_ACTION_BLOCK = 1 << 2


ACTION_BITS = {"log": Action.D4C_ACTION_LOG, "alert": Action.D4C_ACTION_ALERT, "block": Action.D4C_ACTION_BLOCK}


class Hook(enum.IntEnum):  # enum d4c_hook
    D4C_HOOK_FILE_OPEN = 1
    D4C_HOOK_PATH_MKNOD = 2
    D4C_HOOK_PATH_TRUNCATE = 3
    D4C_HOOK_PATH_RENAME = 4
    D4C_HOOK_PATH_LINK = 5
    D4C_HOOK_PATH_UNLINK = 6
    D4C_HOOK_PATH_CHMOD = 7


TRACE_POINTS = {  # cloud_defend.trace_point (event-decisions.md)
    Hook.D4C_HOOK_FILE_OPEN: "lsm__file_open",
    Hook.D4C_HOOK_PATH_MKNOD: "lsm__path_mknod",
    Hook.D4C_HOOK_PATH_TRUNCATE: "lsm__path_truncate",
    Hook.D4C_HOOK_PATH_RENAME: "lsm__path_rename",
    Hook.D4C_HOOK_PATH_LINK: "lsm__path_link",
    Hook.D4C_HOOK_PATH_UNLINK: "lsm__path_unlink",
    Hook.D4C_HOOK_PATH_CHMOD: "lsm__path_chmod",
}


class EventAction(enum.IntEnum):  # enum d4c_event_action (D25)
    D4C_EVENT_CREATION = 1
    D4C_EVENT_MODIFICATION = 2
    D4C_EVENT_DELETION = 3
    D4C_EVENT_RENAME = 4
    D4C_EVENT_LINK = 5


EVENT_ACTION_NAMES = {1: "creation", 2: "modification", 3: "deletion", 4: "rename", 5: "link"}


class EventFlag(enum.IntFlag):  # enum d4c_event_flags
    D4C_EVENT_PATH_INCOMPLETE = 1 << 0
    D4C_EVENT_MATCH_INCOMPLETE = 1 << 1
    D4C_EVENT_POLICY_SLOT1 = 1 << 2


class Stat(enum.IntEnum):  # enum d4c_stat
    D4C_STAT_EVENTS = 0
    D4C_STAT_BLOCKS = 1
    D4C_STAT_PATH_INCOMPLETE = 2
    D4C_STAT_MATCH_INCOMPLETE = 3
    D4C_STAT_RINGBUF_FULL = 4
    D4C_STAT_CREATE_IN_LOOKUP = 5
    D4C_STAT_DENIAL_WITHDRAWN = 6
    D4C_STAT_NOT_CONTAINER_FILE = 7  # pseudo-fs file or kernel-private mount (D19)
    D4C_STAT_INNER_OPEN = 8  # a stacked fs's open of the real file: same syscall, no event
    D4C_STAT_COUNT = 10


ENUMS: dict[str, type[enum.IntEnum | enum.IntFlag]] = {
    "d4c_token": Token,
    "d4c_file_op": FileOp,
    "d4c_mount_class": MountClass,
    "d4c_action": Action,
    "d4c_hook": Hook,
    "d4c_event_action": EventAction,
    "d4c_event_flags": EventFlag,
    "d4c_stat": Stat,
}


class InodeKey(ctypes.Structure):
    _fields_ = [("ino", c_u64), ("dev", c_u32), ("pad", c_u32)]


class ContainerSelectors(ctypes.Structure):
    _fields_ = [("selectors", c_u64 * D4C_POLICY_SLOTS)]


class FilePolicy(ctypes.Structure):
    _fields_ = [
        ("op_selectors", c_u64 * D4C_FILE_OP_COUNT),
        ("path_selectors", c_u64),
        ("ignore_volume_mounts", c_u64),
        ("ignore_volume_files", c_u64),
        ("n_patterns", c_u32),
        ("n_responses", c_u32),
    ]


class PathPattern(ctypes.Structure):
    _fields_ = [("selectors", c_u64), ("len", c_u32), ("pad", c_u32), ("tokens", c_u8 * D4C_PATTERN_MAX)]


class Response(ctypes.Structure):
    _fields_ = [("match", c_u64), ("exclude", c_u64), ("actions", c_u32), ("pad", c_u32)]


class FileEvent(ctypes.Structure):
    _fields_ = [
        ("timestamp_ns", c_u64),
        ("cgroup_id", c_u64),
        ("start_time_ns", c_u64),
        ("selectors", c_u64),
        ("pid", c_u32),
        ("tid", c_u32),
        ("ppid", c_u32),
        ("uid", c_u32),
        ("gid", c_u32),
        ("operation", c_u32),
        ("event_action", c_u32),
        ("hook", c_u32),
        ("mount", c_u32),
        ("actions", c_u32),
        ("blocked", c_u32),
        ("flags", c_u32),
        ("path_len", c_u32),
        ("tty", c_u32),
        ("comm", ctypes.c_char * D4C_COMM_LEN),
        ("path", ctypes.c_char * D4C_PATH_BUF),
    ]


STRUCTS: dict[str, type[ctypes.Structure]] = {
    "d4c_inode_key": InodeKey,
    "d4c_container_selectors": ContainerSelectors,
    "d4c_file_policy": FilePolicy,
    "d4c_path_pattern": PathPattern,
    "d4c_response": Response,
    "d4c_file_event": FileEvent,
}
