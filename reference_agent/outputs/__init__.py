"""Where ECS documents go: NDJSON files per data stream (always), stdout (optional), and
Elasticsearch `_bulk` (optional, shipped from the NDJSON files)."""

from reference_agent.outputs.elasticsearch import BulkShipper, ShipResult
from reference_agent.outputs.ndjson import NdjsonWriter, encode, stream_file

__all__ = ["BulkShipper", "NdjsonWriter", "ShipResult", "encode", "stream_file"]
