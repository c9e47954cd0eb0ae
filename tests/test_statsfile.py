"""Statistics files from anywhere: every corruption of a saved state is one StatsFileError (a
ValueError naming the file, the field and the problem) or a valid load, never another exception.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamnorm as sn
from streamnorm.errors import StatsFileError

#: Values each field of a saved state is replaced with, one at a time.
BAD_VALUES: list[Any] = [
    None, -1, -(2**63), 2**63, 2**64, 10**400, 1.5, -0.5, 1e308, "x", "nan", "-inf", "", True,
    [], {}, [1, 2], {"a": 1}, [[[[[]]]]],
]


def _table(rng: np.random.Generator, n: int = 60) -> pa.Table:
    return pa.table({
        "k": pa.array(rng.choice(["a", "b", "c"], n)),
        "x": pa.array(1e6 + rng.normal(size=n), mask=rng.random(n) < 0.1),
        "y": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "w": rng.integers(0, 3, n),
    })


def _states(rng: np.random.Generator) -> dict[str, sn.FeatureStats]:
    table = _table(rng)
    return {
        "plain": sn.FeatureStats(["x", "y"]).update(table),
        "moments4": sn.FeatureStats(["x", "y"], moments=4).update(table),
        "weighted": sn.FeatureStats(["x", "y"]).update(table, weights="w"),
        "grouped": sn.FeatureStats(["x", "y"], by="k").update(table),
    }


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def _assert_sane(stats: sn.FeatureStats) -> None:
    """What any state that loads must satisfy."""
    assert (np.asarray(stats.count) >= 0).all()
    assert (stats.null_count >= 0).all() and (stats.nan_count >= 0).all()
    lo, hi = stats.min, stats.max
    both = ~np.isnan(lo) & ~np.isnan(hi)
    assert (lo[both] <= hi[both]).all()


def _load_or_error(path: Path) -> sn.FeatureStats | None:
    """Load ``path``; a StatsFileError naming it is fine, any other exception fails the test."""
    try:
        stats = sn.FeatureStats.load(path)
    except StatsFileError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message
        return None
    _assert_sane(stats)
    return stats


@pytest.mark.parametrize("kind", ["plain", "moments4", "weighted", "grouped"])
def test_every_field_mutation_of_a_json_file_is_one_clear_error_or_a_valid_load(
    tmp_path, rng, kind
):
    doc = _states(rng)[kind].to_dict()
    path = tmp_path / "s.json"
    errors = 0
    for where in _paths(doc):
        for value in [*BAD_VALUES, "delete"]:
            mutated = _set(doc, where, value, delete=value == "delete")
            path.write_text(json.dumps(mutated))
            errors += _load_or_error(path) is None
    assert errors > len(_paths(doc)) * 5  # most mutations are caught


@pytest.mark.parametrize("kind", ["plain", "grouped"])
def test_corrupt_json_bytes_are_one_clear_error(tmp_path, rng, kind):
    blob = json.dumps(_states(rng)[kind].to_dict()).encode()
    path = tmp_path / "s.json"
    cases = [b"", b" ", b"[]", b"[1, 2]", b"3", b"null", b'"text"', b"true", b"\xff\xfe{}",
             blob.replace(b'"x"', b'"\xe9"'), b"[" * 100_000 + b"]" * 100_000,
             b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"1" * 5000, b"{" + b"9" * 5000 + b"}"]
    cases += [blob[:cut] for cut in range(0, len(blob), max(1, len(blob) // 60))]
    flips = np.random.default_rng(5)
    for _ in range(150):
        corrupt = bytearray(blob)
        i = int(flips.integers(len(corrupt)))
        corrupt[i] = int(flips.integers(256))
        cases.append(bytes(corrupt))
    for case in cases:
        path.write_bytes(case)
        _load_or_error(path)


def test_named_corruptions_say_what_is_wrong(tmp_path, rng):
    doc = _states(rng)["plain"].to_dict()
    path = tmp_path / "s.json"

    def message(mutated: Any) -> str:
        path.write_text(json.dumps(mutated))
        with pytest.raises(StatsFileError) as info:
            sn.FeatureStats.load(path)
        assert isinstance(info.value, ValueError) and isinstance(info.value, sn.InputError)
        return str(info.value)

    row = ("columns", 0)
    cases = {
        "'count' is negative": _set(doc, (*row, "count"), -3),
        "'null_count' is negative": _set(doc, (*row, "null_count"), -1),
        "'nan_count' is negative": _set(doc, (*row, "nan_count"), -1),
        "does not fit in 64 bits": _set(doc, (*row, "count"), 2**63),
        "not an integer": _set(doc, (*row, "count"), 2.5),
        "'min' is greater than max": _set(doc, (*row, "min"), 1e300),
        "outside [min, max]": _set(doc, (*row, "shifted_mean"), 1e12),
        "'m2' is negative": _set(doc, (*row, "m2"), -1.0),
        "'m2' is missing": _set(doc, (*row, "m2"), None, delete=True),
        "too large for a float64": _set(doc, (*row, "m2"), 10**400),
        "appears twice": _set(doc, ("columns", 1, "column"), doc["columns"][0]["column"]),
        "field 'nan'": {**doc, "nan": "sometimes"},
        "field 'moments'": {**doc, "moments": 3},
        "not a list of objects": {**doc, "columns": {"x": 1}},
        "reaches 2**63": _set(_set(doc, (*row, "count"), 2**62), (*row, "null_count"), 2**62),
    }
    for needle, mutated in cases.items():
        text = message(mutated)
        assert text.startswith(f"{path}: ") and needle in text, (needle, text)
        assert "'x'" in text or "field" in text
    path.write_bytes(b"[" * 100_000)
    with pytest.raises(StatsFileError, match="nested too deeply|not valid JSON"):
        sn.FeatureStats.load(path)
    path.write_bytes(b'{"kind": "FeatureStats", "columns": [], "x": "\xff"}')
    with pytest.raises(StatsFileError, match="not UTF-8"):
        sn.FeatureStats.load(path)
    for text in ("", "[1]", "42"):
        path.write_text(text)
        with pytest.raises(StatsFileError, match=str(path)):
            sn.FeatureStats.load(path)


def test_files_written_before_keep_loading(tmp_path, rng):
    """A JSON state as today's writer makes it, without the optional fields of newer versions,
    and one with them (inf_count), both load; the round trip stays bit-exact."""
    stats = _states(rng)["plain"]
    doc = stats.to_dict()
    assert sn.FeatureStats.from_dict(doc) == stats
    newer = copy.deepcopy(doc)
    for row in newer["columns"]:
        row["inf_count"] = 0
    assert sn.FeatureStats.from_dict(newer) == stats
    newer["columns"][0]["inf_count"] = -2
    with pytest.raises(StatsFileError, match="'inf_count' is negative"):
        sn.FeatureStats.from_dict(newer)


def _arrow_cases(table: pa.Table) -> dict[str, pa.Table]:
    """Corruptions of a saved statistics table."""
    meta = table.schema.metadata
    i = table.schema.get_field_index

    def replace(name: str, array: pa.Array) -> pa.Table:
        return table.set_column(i(name), name, array)

    n = table.num_rows
    return {
        "missing": table.drop_columns(["m2"]),
        "string count": replace("count", pa.array(["1"] * n)),
        "float count": replace("count", pa.array([1.5] * n)),
        "negative count": replace("count", pa.array([-1] * n, pa.int64())),
        "huge uint count": replace("count", pa.array([2**64 - 1] * n, pa.uint64())),
        "null count": replace("count", pa.array([None] * n, pa.int64())),
        "string m2": replace("m2", pa.array(["x"] * n)),
        "int column names": replace("column", pa.array(list(range(n)))),
        "null column name": replace("column", pa.array([None] * n, pa.string())),
        "min above max": replace("min", pa.array([1e300] * n)),
        "duplicate field": table.append_column("count", table.column("count")),
        "metadata not utf-8": table.replace_schema_metadata({b"streamnorm": b"\xff\xfe"}),
        "metadata not json": table.replace_schema_metadata({b"streamnorm": b"{nope"}),
        "metadata an array": table.replace_schema_metadata({b"streamnorm": b"[1]"}),
        "metadata nested": table.replace_schema_metadata({b"streamnorm": b"[" * 100_000}),
        "metadata bad nan": table.replace_schema_metadata(
            {b"streamnorm": json.dumps({**json.loads(meta[b"streamnorm"]), "nan": 1})}),
    }


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
@pytest.mark.parametrize("kind", ["plain", "grouped"])
def test_arrow_and_parquet_statistics_with_wrong_columns_are_clear_errors(tmp_path, rng, suffix, kind):
    table = _states(rng)[kind].to_arrow()
    for name, bad in _arrow_cases(table).items():
        path = tmp_path / f"{name.replace(' ', '-')}{suffix}"
        if name == "duplicate field" and suffix == ".parquet":
            pq.write_table(bad, path)
        else:
            sn.arrow.write_table(bad, path)
        with pytest.raises(StatsFileError) as info:
            sn.FeatureStats.load(path)
        assert str(info.value).startswith(f"{path}: "), (name, str(info.value))
        with pytest.raises(StatsFileError):
            sn.FeatureStats.from_arrow(bad)


def test_arrow_statistics_of_other_widths_load(rng):
    """int32 counts, float32 values and large strings are of the right kind: cast, not refused."""
    stats = _states(rng)["plain"]
    table = stats.to_arrow()
    wide = table.set_column(0, "column", table.column("column").cast(pa.large_string()))
    wide = wide.set_column(1, "count", wide.column("count").cast(pa.int32()))
    assert sn.FeatureStats.from_arrow(wide) == stats


def test_grouped_statistics_corruptions_are_clear_errors(rng):
    stats = _states(rng)["grouped"]
    doc = stats.to_dict()
    with pytest.raises(StatsFileError, match="appears twice"):
        sn.FeatureStats.from_dict({**doc, "columns": doc["columns"] + doc["columns"][:2]})
    with pytest.raises(StatsFileError, match="key-major"):
        sn.FeatureStats.from_dict({**doc, "columns": doc["columns"][:-1]})
    swapped = copy.deepcopy(doc)
    swapped["columns"][1]["k"] = "zz"
    with pytest.raises(StatsFileError, match="key changes"):
        sn.FeatureStats.from_dict(swapped)
    with pytest.raises(StatsFileError, match="'by'"):
        sn.FeatureStats.from_dict({**doc, "by": "k"})
    with pytest.raises(StatsFileError, match="key_types"):
        sn.FeatureStats.from_dict({**doc, "key_types": ["string", "string"]})


def test_normalizer_refuses_corrupt_statistics_files_and_records(tmp_path, rng):
    table = _table(rng).drop_columns(["k"])
    path = tmp_path / "s.json"
    doc = sn.feature_stats(table, ["x"]).to_dict()
    path.write_text(json.dumps(_set(doc, ("columns", 0, "count"), -5)))
    with pytest.raises(StatsFileError, match="'count' is negative"):
        sn.Normalizer.from_stats(path)
    out = sn.Normalizer(columns=["x"]).fit(table).transform(table)
    record = json.loads(out.schema.metadata[b"streamnorm"])
    for bad in (_set(record, ("stats", "columns", 0, "min"), 1e300), _set(record, ("eps",), "x"),
                _set(record, ("mode",), "zz"), _set(record, ("stats",), 3), [1]):
        broken = out.schema.with_metadata({b"streamnorm": json.dumps(bad)})
        with pytest.raises(sn.InputError):
            sn.Normalizer.from_metadata(broken)
