/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The file half of the contract (file_hooks.bpf.c): file operations, event actions, the file
 * section's policy value and the `struct d4c_file_event` record. Shared definitions are in
 * d4c_abi.h.
 */
#ifndef D4C_FILE_ABI_H
#define D4C_FILE_ABI_H

#include "d4c_abi.h"

/* File operations (D5, D17), one bit each; the bit index is the index in op_selectors, the
 * suffix the policy's operation name. */
enum d4c_file_op {
	D4C_OP_CREATE_EXECUTABLE = 1 << 0,
	D4C_OP_MODIFY_EXECUTABLE = 1 << 1,
	D4C_OP_CREATE_FILE = 1 << 2,
	D4C_OP_MODIFY_FILE = 1 << 3,
	D4C_OP_DELETE_FILE = 1 << 4,
	D4C_FILE_OP_COUNT = 5,
};

enum d4c_event_action { /* ECS event.action (D25) */
	D4C_EVENT_CREATION = 1,
	D4C_EVENT_MODIFICATION = 2,
	D4C_EVENT_DELETION = 3,
	D4C_EVENT_RENAME = 4,
	D4C_EVENT_LINK = 5,
};

/* The file section of the policy, static part (`file_policy` array, one entry per slot). */
struct d4c_file_policy {
	__u64 op_selectors[D4C_FILE_OP_COUNT]; /* per operation bit: selectors that apply (D5) */
	__u64 path_selectors;        /* selectors with a targetFilePath condition */
	__u64 ignore_volume_mounts;  /* D19 */
	__u64 ignore_volume_files;   /* D19 */
	__u32 n_patterns;
	__u32 n_responses;
};

/* Ring-buffer record of one file operation that fired at least one response (D22). A record
 * ends after the NUL that follows the path (path_len + 1 bytes of `path`). */
struct d4c_file_event {
	struct d4c_record_head head;
	__u32 operation;      /* one enum d4c_file_op bit */
	__u32 event_action;   /* enum d4c_event_action */
	__u32 mount;          /* enum d4c_mount_class */
	__u32 path_len;       /* bytes of path, no NUL */
	char path[D4C_PATH_BUF];
};

#endif /* D4C_FILE_ABI_H */
