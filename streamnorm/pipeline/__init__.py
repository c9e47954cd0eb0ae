"""The pipeline: whole files and datasets in, normalized files out."""

from .dataset import normalize_dataset
from .files import (
    FileResult,
    check_destination,
    count_rows,
    inverse_file,
    normalize_file,
)

__all__ = [
    "FileResult", "check_destination", "count_rows", "inverse_file", "normalize_dataset",
    "normalize_file",
]
