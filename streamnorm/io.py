"""Temporary re-exports for the issue-13 merge; removed when the layers are joined.

Old name (``streamnorm.io``) → new module:
IPC_SUFFIXES, PARQUET_SUFFIXES, PARQUET_CODECS, file_format, output_format,
_check_codec (now check_codec) → streamnorm.arrow.formats; Source, schema_and_batches,
iter_batches → streamnorm.arrow.open; atomic_path, BatchWriter, write_table, read_table →
streamnorm.arrow.sinks.
"""

from .arrow.formats import (IPC_SUFFIXES, PARQUET_CODECS, PARQUET_SUFFIXES, file_format,
                            output_format)
from .arrow.formats import check_codec as _check_codec
from .arrow.open import Source, iter_batches, schema_and_batches
from .arrow.sinks import BatchWriter, atomic_path, read_table, write_table

__all__ = [
    "IPC_SUFFIXES", "PARQUET_CODECS", "PARQUET_SUFFIXES", "BatchWriter", "Source",
    "_check_codec", "atomic_path", "file_format", "iter_batches", "output_format", "read_table",
    "schema_and_batches", "write_table",
]
