"""archdiff's documented caps on what it reads from an untrusted file.

Each cap, when exceeded, raises LimitExceededError with a clear message, so
a hostile file fails fast instead of eating memory. They are constants, not
settings: change them here (and in the README's "Limits" table) if a real
model needs more.
"""
from __future__ import annotations

#: Bytes read from one text member of a .keras zip (config.json, metadata.json)
#: or from a .json / .yaml file.
MAX_CONFIG_BYTES = 256 * 1024 * 1024
#: Bytes a compressed zip member may inflate to when it must be copied out.
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024 * 1024
#: Members in a .keras zip.
MAX_ZIP_MEMBERS = 100_000
#: Nesting depth of JSON / YAML documents.
MAX_DOCUMENT_DEPTH = 200
#: Nodes (mappings, sequences, scalars) a YAML document may expand to, anchors
#: included: stops "billion laughs".
MAX_YAML_NODES = 5_000_000
