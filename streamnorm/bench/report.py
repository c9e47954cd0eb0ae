"""The goals of issue 14, each marked HIT or MISS with the figure measured in this run."""

from __future__ import annotations

from typing import Any

CEILING = "numba prange sum (memory-read ceiling)"
SKLEARN_BATCHES = "scikit-learn StandardScaler.partial_fit"
RSS_GOAL_MB = 400.0


def goal_lines(results: dict[str, Any]) -> list[tuple[str, str]]:
    """``(status, text)`` per goal: status HIT, MISS, or "note" (no goal, or not measured)."""
    lines: list[tuple[str, str]] = []

    def check(value: float, goal: float, text: str, lower_is_better: bool = False) -> None:
        hit = value <= goal if lower_is_better else value >= goal
        lines.append(("HIT" if hit else "MISS", f"{value:7.2f}  {text}"))

    stats = results.get("stats", {})
    ours = stats.get("streamnorm FeatureStats.update")
    if ours:
        if "polars mean+var+min+max" in stats:
            check(stats["polars mean+var+min+max"] / ours, 2.5,
                  "x polars mean+var+min+max, stats (goal >= 2.5)")
        if CEILING in stats:
            check(stats[CEILING] / ours, 0.65, "of the memory-read ceiling, stats (goal >= 0.65)")
    batches = results.get("batches", {})
    ours_b = next((v for k, v in batches.items() if k.startswith("streamnorm")), None)
    if ours_b and SKLEARN_BATCHES in batches:
        check(batches[SKLEARN_BATCHES] / ours_b, 30.0,
              "x scikit-learn partial_fit over batches (64k rows at full size; goal >= 30)")
        if CEILING in batches:  # the ratio a kernel at the read ceiling would reach
            lines.append(("note", f"{batches[SKLEARN_BATCHES] / batches[CEILING]:7.2f}  x "
                                  "scikit-learn partial_fit at the memory-read ceiling (its "
                                  "bound); streamnorm's batches at "
                                  f"{batches[CEILING] / ours_b:.2f} of the ceiling"))
    layer = results.get("layer", {})
    if layer:
        torch_t = next((v for k, v in layer.items() if k.startswith("torch")), None)
        for key, value in layer.items():
            if not key.startswith("streamnorm"):
                continue
            what = key.split(", ")[-1]
            if torch_t:
                check(torch_t / value, 1.5, f"x torch layer_norm, LayerNorm {what} (goal >= 1.5)")
            else:
                lines.append(("note", f"LayerNorm {what} vs torch: torch not installed "
                                      "(pip install torch --index-url "
                                      "https://download.pytorch.org/whl/cpu)"))
    walls = results.get("file", {})
    polars_ways = {k: v for k, v in walls.items() if k.startswith("polars")}
    if "streamnorm" in walls and polars_ways:
        fastest = min(polars_ways, key=polars_ways.get)
        check(walls["streamnorm"] / polars_ways[fastest], 0.8,
              f"x the faster polars way's wall ({fastest}), file -> file (goal <= 0.8)",
              lower_is_better=True)
    rss = results.get("file_rss", {}).get("streamnorm")
    if rss:
        check(rss / 1e6, RSS_GOAL_MB, f"MB peak RSS, file -> file (goal <= {RSS_GOAL_MB:.0f})",
              lower_is_better=True)
    small = results.get("small_us", {})
    for ours_key, peer_key, goal in [
        ("streamnorm update", "sklearn partial_fit", 10.0),
        ("streamnorm update, weights", "sklearn partial_fit, sample_weight", 5.0),
        ("streamnorm update, moments=4", "sklearn partial_fit", 5.0),
    ]:
        if ours_key in small and peer_key in small:
            check(small[peer_key] / small[ours_key], goal,
                  f"x {peer_key} of 1 row, {ours_key} ({small[ours_key]:.0f} µs vs "
                  f"{small[peer_key]:.0f} µs; goal >= {goal:.0f})")
    wide = results.get("wide", {})
    if "streamnorm inverse_file" in wide and "streamnorm normalize_file" in wide:
        check(wide["streamnorm inverse_file"] / wide["streamnorm normalize_file"], 1.5,
              "x normalize, inverse of the wide file (goal <= 1.5)", lower_is_better=True)
    grouped = results.get("grouped", {})
    ours_g = next((v for k, v in grouped.items() if k.startswith("streamnorm")), None)
    peer_g = next((v for k, v in grouped.items() if k.startswith("polars")), None)
    if ours_g and peer_g:
        lines.append(("note", f"{peer_g / ours_g:7.2f}  x polars group_by, grouped statistics "
                              f"({ours_g:.3f} s vs {peer_g:.3f} s; the issue sets no goal)"))
    quantiles = results.get("quantiles", {})
    with_q = next((v for k, v in quantiles.items() if "quantiles=True" in k), None)
    without = next((v for k, v in quantiles.items() if "no quantiles" in k), None)
    if with_q and without:
        check(with_q / without, 8.0, "x the time without quantiles, stats with quantile "
              "sketches (goal <= 8)", lower_is_better=True)
    return lines


def print_goals(results: dict[str, Any], out: Any) -> list[tuple[str, str]]:
    lines = goal_lines(results)
    if lines:
        print("\n## targets (issue 14)", file=out)
        for status, text in lines:
            print(f"  {status:<4} {text}", file=out)
    return lines
