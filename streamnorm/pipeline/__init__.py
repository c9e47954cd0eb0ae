"""The pipeline layer: sources through a Normalizer into output files."""

from .files import FileResult, check_destination, count_rows, inverse_file, normalize_file
