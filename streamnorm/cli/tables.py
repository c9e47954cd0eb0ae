"""Tables as text: :func:`format_table`, and the statistics table ``streamnorm stats`` prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..state.features import FeatureStats


def _format_number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    if value is None:
        return "null"
    return str(value)


def format_table(table: pa.Table) -> str:
    """A table as aligned text: a header line, then one line per row (numbers right-aligned).

    >>> print(format_table(pa.table({"column": ["a"], "mean": [1.5]})))
    column  mean
    a        1.5
    """
    header = table.column_names
    rows = [[_format_number(v) for v in row.values()] for row in table.to_pylist()]
    widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]
    text_columns = {
        j for j, f in enumerate(table.schema) if pa.types.is_string(f.type)
    }

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if j in text_columns else c.rjust(w)
            for j, (c, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    first = "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()
    return "\n".join([first, *(line(r) for r in rows)])


def summary_table(stats: FeatureStats, ddof: int = 0,
                  quantiles: Sequence[float] | None = None) -> pa.Table:
    """``stats.summary(ddof)`` with the std column named after its ddof: ``std(ddof=0)``,
    then one column ``q=<q>`` per quantile asked for (``stats --quantiles``)."""
    table = stats.summary(ddof=ddof)
    table = table.rename_columns(
        [f"std(ddof={ddof})" if name == "std" else name for name in table.column_names]
    )
    if quantiles:
        values = stats.quantile(list(quantiles))
        for q, row in zip(quantiles, values):
            table = table.append_column(f"q={q:g}", pa.array(row, pa.float64()))
    return table


def mode_text(mode: str, options: Mapping[str, Any], eps: float | None = None,
              online: bool = False) -> str:
    """How a normalization ran, for the summary lines: ``"minmax mode,
    feature_range=(0, 1)"``, ``"robust mode, quantile_range=(25, 75)"``; a mode without
    options of its own shows ``eps`` when given (``"batch mode, online, eps=0"``)."""
    parts = [f"{mode} mode"] + (["online"] if online else [])
    if options:
        parts += [f"{name}=({value[0]:g}, {value[1]:g})" for name, value in options.items()]
    elif eps is not None:
        parts.append(f"eps={eps:g}")
    return ", ".join(parts)
