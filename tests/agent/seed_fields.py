"""The field columns of the seed's "Process Events" and "File Events" tables (d4c-seed.md),
copied verbatim so the tests run without the spec checkout."""

_COMMON_HEAD = """
@timestamp agent.id agent.type agent.version cloud.account.id cloud.account.name cloud.availability_zone
cloud.project.id cloud.project.name cloud.provider cloud.region cloud_defend.matched_selectors
cloud_defend.package_policy_id cloud_defend.package_policy_version cloud_defend.trace_point container.id
container.image.name container.image.tag data_stream.dataset data_stream.namespace data_stream.type ecs.version
event.action event.agent_id_status event.category event.created event.dataset event.id event.ingested
event.kind event.type
"""
_HOST_AND_ORCH = """
group.id group.name host.architecture host.boot.id host.id host.ip host.hostname host.mac host.name
host.os.family host.os.full host.os.kernel host.os.name host.os.platform host.os.type host.os.version
host.pid_ns_ino message orchestrator.cluster.id orchestrator.cluster.name orchestrator.namespace
orchestrator.resource.ip orchestrator.resource.name orchestrator.resource.parent.type orchestrator.resource.type
"""

_RELATIVE = """args entity_id executable group.id group.name interactive name pid same_as_process start
user.id user.name working_directory"""

PROCESS_EVENT_FIELDS = sorted(set(
    (_COMMON_HEAD + _HOST_AND_ORCH).split()
    + """process.args process.end process.entity_id process.executable process.interactive process.name
    process.pid process.previous process.previous.args process.previous.executable process.start
    process.working_directory user.id user.name
    process.entry_leader.entry_meta.type process.session_leader.entry_meta.type""".split()
    + [f"process.{rel}.{f}" for rel in ("entry_leader", "group_leader", "parent", "session_leader")
       for f in _RELATIVE.split()]
))

FILE_EVENT_FIELDS = sorted(set(
    (_COMMON_HEAD + _HOST_AND_ORCH).split()
    + """file.extension file.name file.path process.entity_id process.entry_leader.entity_id process.executable
    process.group_leader.entity_id process.interactive process.name process.parent.entity_id process.pid
    process.session_leader.entity_id process.user.id process.user.name user.id user.name""".split()
))
