// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
// The whole kernel/userspace contract in one object, never loaded: its BTF has every type of
// include/d4c_*abi.h, also those no program names (clang emits only the types code uses), and
// abi_from_btf.py generates the Python mirror from it. The program objects are read too, so a
// type that one of them and this object disagree on fails the build.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "d4c_file_abi.h"
#include "d4c_process_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* One unused pointer per type: enough for clang to describe the type in BTF. */
#define KEEP(type, name) const type *keep_##name __attribute__((unused))

KEEP(enum d4c_limits, limits);
KEEP(enum d4c_token, token);
KEEP(enum d4c_mount_class, mount_class);
KEEP(enum d4c_action, action);
KEEP(enum d4c_hook, hook);
KEEP(enum d4c_event_flags, event_flags);
KEEP(enum d4c_stat, stat);
KEEP(struct d4c_container_selectors, container_selectors);
KEEP(struct d4c_path_pattern, path_pattern);
KEEP(struct d4c_response, response);
KEEP(struct d4c_record_head, record_head);

KEEP(enum d4c_file_op, file_op);
KEEP(enum d4c_event_action, event_action);
KEEP(struct d4c_file_policy, file_policy);
KEEP(struct d4c_file_event, file_event);

KEEP(enum d4c_process_limits, process_limits);
KEEP(enum d4c_process_op, process_op);
KEEP(enum d4c_pattern_set, pattern_set);
KEEP(enum d4c_record_type, record_type);
KEEP(enum d4c_process_kind, process_kind);
KEEP(struct d4c_process_policy, process_policy);
KEEP(struct d4c_user_id_key, user_id_key);
KEEP(struct d4c_user_name_key, user_name_key);
KEEP(struct d4c_exe_path, exe_path);
KEEP(struct d4c_process_event, process_event);
