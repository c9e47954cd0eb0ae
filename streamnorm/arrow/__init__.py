"""The Arrow layer: any source → (schema, record batches), and sinks that write atomically.

Modules, bottom up (each imports only those before it, plus ``streamnorm.columns``,
``config`` and ``errors``): ``failures`` (Arrow errors as one-line messages), ``formats``
(suffixes, magic bytes, the sniffer, codecs), ``locations`` (URIs, paths, globs, directory
listing), ``schemas``, ``parquet``, ``thrift`` (compact protocol), ``parquet_stitch`` (Parquet row
groups encoded on several threads), ``signal_io`` (pipe reads that notice signals), ``text`` (CSV, JSON lines), ``files`` (one file of any format), ``dataset``
(:class:`DataSource`), ``outputs`` (outputs against inputs), ``open`` (the one entry
:func:`schema_and_batches`) and ``sinks`` (:func:`atomic_path`, :class:`BatchWriter`).
"""

from .dataset import DataSource, FilePart, open_source
from .failures import read_error
from .formats import (
                      IPC_CODECS,
                      IPC_SUFFIXES,
                      PARQUET_CODECS,
                      PARQUET_SUFFIXES,
                      file_format,
                      format_of,
                      output_format,
)
from .locations import has_glob, is_local_file, is_path, is_path_list, is_uri, resolve
from .open import Source, iter_batches, numpy_to_batch, schema_and_batches
from .outputs import check_output_not_input, output_name
from .schemas import (
                      SchemaLike,
                      as_schema,
                      check_unique_names,
                      float32_schema,
                      parse_schema_text,
                      unify_schemas,
)
from .sinks import BatchWriter, atomic_path, read_table, write_table
from .text import SkippedRowsWarning

__all__ = [
    "IPC_CODECS", "IPC_SUFFIXES", "PARQUET_CODECS", "PARQUET_SUFFIXES", "BatchWriter",
    "DataSource", "FilePart", "SchemaLike", "SkippedRowsWarning", "Source", "as_schema",
    "atomic_path", "check_output_not_input", "check_unique_names", "file_format",
    "float32_schema", "format_of", "has_glob", "is_local_file", "is_path", "is_path_list",
    "is_uri", "iter_batches", "numpy_to_batch", "open_source", "output_format", "output_name",
    "parse_schema_text", "read_error", "read_table", "resolve", "schema_and_batches",
    "unify_schemas", "write_table",
]
