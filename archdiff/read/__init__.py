"""Readers: one place picks the reader by file type and content, one module per on-disk layout.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.read import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.read.dispatch import (  # noqa: F401
    SUPPORTED,
    load,
    parse_json_bytes,
    check_document,
    read_json_file,
    read_yaml_file,
    parse_yaml_text,
    from_config_document,
    read_keras_zip,
    read_h5,
    read_sharded,
    attach_legacy,
    attach_keras3,
    name_positional_weights,
)

__all__ = ['SUPPORTED', 'load', 'parse_json_bytes', 'check_document', 'read_json_file', 'read_yaml_file', 'parse_yaml_text', 'from_config_document', 'read_keras_zip', 'read_h5', 'read_sharded', 'attach_legacy', 'attach_keras3', 'name_positional_weights']
