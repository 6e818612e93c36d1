"""The read stage: any model input -> an immutable :class:`~archdiff.model.Architecture`.

``dispatch.load`` picks the reader by file type and content; one module per
on-disk layout reads it (``keras_zip``, ``legacy_h5``, ``keras3_h5``,
``documents`` for JSON/YAML, ``factory`` for ``module:callable``); ``config``
parses both config dialects; ``hdf5`` is the HDF5 safety layer every HDF5
read goes through; ``assemble`` joins a config with its weights.
"""
from __future__ import annotations

from archdiff.read.assemble import name_positional_weights
from archdiff.read.dispatch import SUPPORTED, load
from archdiff.read.documents import (
                                     check_document,
                                     from_config_document,
                                     parse_json_bytes,
                                     parse_yaml_text,
                                     read_json_file,
                                     read_yaml_file,
)
from archdiff.read.keras3_h5 import attach_keras3, read_sharded
from archdiff.read.keras_zip import read_keras_zip
from archdiff.read.legacy_h5 import attach_legacy, read_h5

__all__ = ['SUPPORTED', 'load', 'parse_json_bytes', 'check_document', 'read_json_file', 'read_yaml_file',
           'parse_yaml_text', 'from_config_document', 'read_keras_zip', 'read_h5', 'read_sharded', 'attach_legacy',
           'attach_keras3', 'name_positional_weights']
