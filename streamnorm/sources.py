"""Temporary re-exports for the issue-13 merge; removed when the layers are joined.

Old name (``streamnorm.sources``) → new module:
DataSource, open_source → streamnorm.arrow.dataset; SchemaLike, parse_schema_text →
streamnorm.arrow.schemas; SkippedRowsWarning → streamnorm.arrow.text; is_uri, resolve,
is_local_file → streamnorm.arrow.locations; check_output_not_input →
streamnorm.arrow.outputs; is_partition_key → streamnorm.columns (where it is defined);
normalize_dataset → streamnorm.pipeline.dataset (not re-exported here: the reading layer no
longer imports the normalizer).
"""

from .arrow.dataset import DataSource, open_source
from .arrow.locations import is_local_file, is_uri, resolve
from .arrow.outputs import check_output_not_input
from .arrow.schemas import SchemaLike, parse_schema_text
from .arrow.text import SkippedRowsWarning
from .columns import is_partition_key

__all__ = [
    "DataSource", "SchemaLike", "SkippedRowsWarning", "check_output_not_input",
    "is_local_file", "is_partition_key", "is_uri", "open_source", "parse_schema_text",
    "resolve",
]
