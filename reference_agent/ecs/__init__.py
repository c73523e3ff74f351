"""ECS documents from kernel activities: file_documents, process_documents (see common.py)."""

from reference_agent.ecs.common import BootClock, Document, EventContext, nest
from reference_agent.ecs.file_event import file_documents
from reference_agent.ecs.process_event import process_documents

__all__ = ["BootClock", "Document", "EventContext", "file_documents", "nest", "process_documents"]
