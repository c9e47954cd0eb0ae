"""The normalize layer: :class:`Normalizer` (batch, layer and rms modes), its column plan, one
mapper per mode, and the record written into normalized outputs' metadata.

Files in, files out (:func:`~streamnorm.normalize_file`, :func:`~streamnorm.inverse_file`)
are the pipeline layer's, above this one.
"""

from .mappers import check_finite_stats
from .normalizer import Normalizer
from .plan import MODES, Mode, check_batch_columns, output_type
from .record import INLINE_STATS_BYTES, METADATA_KEY, STATS_FILE_SUFFIX

__all__ = [
    "INLINE_STATS_BYTES",
    "METADATA_KEY",
    "MODES",
    "Mode",
    "Normalizer",
    "STATS_FILE_SUFFIX",
    "check_batch_columns",
    "check_finite_stats",
    "output_type",
]
