"""The small-batch path (state/small.py, kernels/cpu_small.py) gives the same bits as the
general path for the same batching, and its per-schema plan follows schema changes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from helpers import run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamnorm as sn
from streamnorm.state import small


def bits(a: np.ndarray) -> np.ndarray:
    """The bits of each value (int64), NaN of any payload as one value."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return a.astype(np.int64)
    out = np.asarray(a, dtype=np.float64).view(np.int64).copy()
    out[np.isnan(a)] = -1
    return out


def assert_same_state(got: sn.FeatureStats, want: sn.FeatureStats) -> None:
    assert got.columns == want.columns and got.weighted == want.weighted
    for name in got._state.names:
        a, b = getattr(got._state, name), getattr(want._state, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(bits(a), bits(b)), (name, a, b)


class Spy:
    """Counts the batches the small-batch path took (so no test passes with it unused)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        real = small.add_small

        def counted(*args, **kwargs):
            done = real(*args, **kwargs)
            self.taken += bool(done)
            return done

        monkeypatch.setattr(small, "add_small", counted)


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(small, "add_small", lambda *args, **kwargs: False)


def fit(batches, weights=None, **options) -> sn.FeatureStats:
    stats = sn.FeatureStats(**options)
    for batch in batches:
        stats.update(batch, weights=weights)
    return stats


def both_paths(monkeypatch, batches, weights=None, **options):
    """(small path state, general path state, batches the small path took)."""
    with monkeypatch.context() as m:
        spy = Spy(m)
        fast = fit(batches, weights, **options)
    with monkeypatch.context() as m:
        general_path(m)
        slow = fit(batches, weights, **options)
    return fast, slow, spy.taken


def rows(rng, n, offset=1e9, spread=3.0, nulls=False, nan=False, inf=False, weights=False):
    """A batch of n rows: float64, float32, int32 and uint8 columns (two dtype groups or
    more), optionally nulls, NaN, ±inf and a float64 weights column."""
    x = rng.normal(offset, spread, n)
    y = rng.normal(-5.0, 100.0, n).astype(np.float32)
    if nan and n:
        x[rng.integers(0, n)] = np.nan
    if inf and n:
        y[rng.integers(0, n)] = np.inf
    mask = rng.random(n) < 0.3 if nulls else None
    columns = {
        "x": pa.array(x, mask=mask),
        "y": pa.array(y),
        "i": pa.array(rng.integers(-1000, 1000, n).astype(np.int32)),
        "u": pa.array(rng.integers(0, 255, n).astype(np.uint8)),
        "z": pa.array(rng.normal(0.0, 1.0, n)),
    }
    if weights:
        columns["w"] = pa.array(rng.integers(0, 4, n).astype(np.float64))
    return pa.record_batch(columns)


CASES = [
    dict(),
    dict(moments=4),
    dict(nan="propagate", inf="skip"),
    dict(moments=4, inf="skip"),
]


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_small_path_gives_the_general_paths_bits(monkeypatch, options, weighted):
    rng = np.random.default_rng(len(str(options)) + weighted)
    sizes = [1, 1, 2, 0, 1, 5, 3, 1, 17, 1]
    batches = [rows(rng, n, nulls=i % 3 == 1, nan=i == 5, inf=i == 6, weights=weighted)
               for i, n in enumerate(sizes)]
    fast, slow, taken = both_paths(monkeypatch, batches, "w" if weighted else None, **options)
    assert taken >= len(sizes) - 3  # the first (weighted) batch and new columns go general
    assert_same_state(fast, slow)


def test_huge_values_leave_the_small_path_for_the_scaled_merge(monkeypatch):
    """Values beyond 1e154 of both signs overflow m2: those columns take the careful path and
    carry a scale exponent, whose later merges the kernel leaves to the general merge."""
    rng = np.random.default_rng(5)
    batches = []
    for i in range(12):
        x = rng.normal(0.0, 1e300, 2) if i % 4 != 3 else np.array([1.0, -1.0])
        batches.append(pa.record_batch({"x": x, "y": rng.normal(1.0, 2.0, 2),
                                        "w": np.full(2, 1.0 + i % 2)}))
    for options in ({}, {"moments": 4}):
        for weights in (None, "w"):
            fast, slow, taken = both_paths(monkeypatch, batches, weights, **options)
            assert taken >= 10
            assert fast._state.scale_exp[0] != 0 and np.isfinite(fast.std()[0])
            assert_same_state(fast, slow)


def test_all_null_and_empty_columns(monkeypatch):
    batches = [pa.record_batch({"a": pa.array([None, None], pa.float64()),
                                "b": pa.array([1.0, 2.0])}) for _ in range(4)]
    batches.insert(2, pa.record_batch({"a": pa.array([3.0, None]), "b": pa.array([np.nan, 4.0])}))
    for options in ({}, {"moments": 4}, {"nan": "propagate"}):
        fast, slow, taken = both_paths(monkeypatch, batches, **options)
        assert taken
        assert_same_state(fast, slow)


def test_bad_weights_are_reported_as_by_the_general_path(monkeypatch):
    stats = sn.FeatureStats()
    stats.update(pa.record_batch({"x": [1.0, 2.0], "w": [1.0, 1.0]}), weights="w")
    stats.update(pa.record_batch({"x": [1.0, 2.0], "w": [1.0, 1.0]}), weights="w")
    before = stats.copy()
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="weights column 'w' holds"):
            stats.update(pa.record_batch({"x": [5.0, 6.0], "w": [1.0, bad]}), weights="w")
        assert stats == before  # nothing half-added
    # null weights (0) and integer weights are converted by the general path: same bits
    batches = [pa.record_batch({"x": [1.0, 2.0, 7.0], "w": pa.array([1.0, None, 2.0])}),
               pa.record_batch({"x": [3.0, 4.0], "w": pa.array([2, 5], pa.int32())}),
               pa.record_batch({"x": [3.0, 9.0], "w": [0.5, 1.5]})]
    fast, slow, _ = both_paths(monkeypatch, [batches[2], *batches, batches[2]], "w")
    assert_same_state(fast, slow)


def test_batches_above_the_serial_limit_take_the_parallel_located_path(monkeypatch):
    """Plain statistics of a batch over the serial limit go through the one parallel call
    (kernels/cpu_update.py), weights and ``moments=4`` through the general path; the general
    path's bits either way."""
    from streamnorm.kernels import cpu

    n = cpu.SERIAL_MAX_VALUES // 2 + 1  # two columns: one value over the limit
    rng = np.random.default_rng(9)
    batch = pa.record_batch({"a": rng.normal(size=n), "b": rng.normal(size=n),
                             "w": rng.integers(0, 3, n).astype(np.float64)})
    for weights, options, expected in ((None, {}, 3), ("w", {}, 1), (None, {"moments": 4}, 1)):
        fast, slow, taken = both_paths(monkeypatch, [batch, batch.slice(0, 3), batch], weights,
                                       **options)
        assert taken == expected  # the large ones too only for plain statistics
        assert_same_state(fast, slow)


def test_large_batches_of_adversarial_values_give_the_general_bits(monkeypatch):
    """Over the serial limit: nulls, NaN, ±inf, an all-null column, huge offsets, overflowing
    moments (the careful path), several dtype groups, the first batch without shifts, the
    same bits as the general path, and for one or two threads."""
    import numba

    rng = np.random.default_rng(21)
    batches = []
    for i in range(3):
        batch = rows(rng, 40_000 + 777 * i, nulls=i != 1, nan=True, inf=i == 2)
        huge = rng.normal(0.0, 1e300, batch.num_rows) if i == 1 else rng.normal(1e9, 1.0,
                                                                              batch.num_rows)
        batches.append(batch.append_column("h", pa.array(huge)).append_column(
            "n", pa.nulls(batch.num_rows, pa.float64())))
    fast, slow, taken = both_paths(monkeypatch, batches)
    assert taken == len(batches)
    assert fast._state.scale_exp[list(fast.columns).index("h")] != 0
    assert_same_state(fast, slow)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fit(batches)
    finally:
        numba.set_num_threads(threads)
    assert_same_state(one, fast)


def test_schema_changes_between_batches_replan(monkeypatch):
    """Same names with other types, another column order, nulls appearing, an extra column, a
    table with chunked columns: each batch is read by its own schema."""
    rng = np.random.default_rng(11)
    a, b = rng.normal(1e6, 2.0, 3), rng.normal(0.0, 1.0, 3)
    batches = [
        pa.record_batch({"a": a, "b": b}),
        pa.record_batch({"a": a.astype(np.float32), "b": b}),  # a: float64 -> float32
        pa.record_batch({"b": b, "a": a}),  # order changed
        pa.record_batch({"a": pa.array(a, mask=np.array([True, False, False])), "b": b}),
        pa.record_batch({"a": (a * 0).astype(np.int32), "b": b.astype(np.float32)}),
        pa.record_batch({"c": b, "a": a, "b": b}),  # an untracked extra column first
        pa.record_batch({"a": a, "b": b}),
    ]
    for options in ({}, {"moments": 4}):
        fast, slow, taken = both_paths(monkeypatch, batches, **options)
        assert taken >= len(batches) - 1
        assert_same_state(fast, slow)
        table = pa.Table.from_batches(batches[:1] * 3)  # one chunk per batch
        fast.update(table)
        slow.update(table)
        assert_same_state(fast, slow)
    with pytest.raises(sn.SchemaError, match="column 'a' changed type"):
        fit([batches[0], pa.record_batch({"a": pa.array(["x"] * 3), "b": b})])


def test_misaligned_group_falls_back_to_views(monkeypatch):
    """A batch whose second dtype group is not readable by address (a sliced buffer of
    int64 values at an odd byte offset) is read through numpy views for that group."""
    raw = np.arange(40, dtype=np.uint8)
    values = np.frombuffer(raw.tobytes()[1:33], dtype=np.int64)  # aligned copy by numpy
    odd = pa.Array.from_buffers(pa.int64(), 4, [None, pa.py_buffer(raw.tobytes())[1:33]])
    assert odd.buffers()[1].address % 8 != 0
    batches = [pa.record_batch({"f": np.arange(4.0), "n": odd}) for _ in range(3)]
    fast, slow, taken = both_paths(monkeypatch, batches)
    assert taken
    assert np.array_equal(fast.mean, [1.5, float(values.mean())])
    assert_same_state(fast, slow)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1,
                     max_size=24),
       cuts=st.lists(st.integers(1, 5), min_size=1, max_size=24),
       moments=st.sampled_from([2, 4]), weighted=st.booleans())
def test_any_small_batching_of_any_values_gives_the_general_bits(monkeypatch, data, cuts,
                                                                  moments, weighted):
    x = np.array(data)
    w = (np.arange(len(x)) % 3).astype(np.float64)
    batches, start = [], 0
    for cut in cuts * (len(x) // len(cuts) + 1):
        if start >= len(x):
            break
        batches.append(pa.record_batch({"x": x[start: start + cut], "v": -x[start: start + cut],
                                        "w": w[start: start + cut]}))
        start += cut
    fast, slow, _ = both_paths(monkeypatch, batches, "w" if weighted else None,
                               moments=moments)
    assert_same_state(fast, slow)


WARM_SCRIPT = """
import numpy as np, pyarrow as pa, streamnorm as sn
from streamnorm.kernels import cpu_small, cpu_update
batch = pa.record_batch({"x": [1.0, 2.0], "i": pa.array([3, 4], pa.int32()), "w": [1.0, 2.0]})
large = pa.record_batch({"x": np.arange(70000.0), "i": np.arange(70000, dtype=np.int32)})
for stats, weights in ((sn.FeatureStats(), None), (sn.FeatureStats(), "w"),
                       (sn.FeatureStats(moments=4), None)):
    for _ in range(3):
        stats.update(batch, weights=weights)
sn.FeatureStats().update(large)
kernels = [f for m in (cpu_small, cpu_update) for f in vars(m).values() if hasattr(f, "stats")]
print(sum(sum(f.stats.cache_misses.values()) for f in kernels),
      sum(len(f.signatures) for f in kernels))
"""


def test_small_kernels_load_from_the_cache_in_a_fresh_process():
    """The small-batch kernels and the parallel one of large batches are cached, and none
    calls a parallel kernel (a cached function calling a parallel one crashes on a warm cache,
    numba issue 8578): a second fresh process runs every path and compiles nothing."""
    for _ in range(2):  # the first run may fill the cache; a second must then only load it
        done = run_python("-c", WARM_SCRIPT, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        misses, loaded = map(int, done.stdout.split())
        if misses == 0:
            break  # this run already loaded every kernel (the suite's warm-up filled the cache)
    assert misses == 0 and loaded >= 6, done.stdout
