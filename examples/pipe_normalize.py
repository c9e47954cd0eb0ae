"""Normalize data flowing through a Unix pipe: query | streamnorm | consumer.

    python examples/pipe_normalize.py [ROWS]

ROWS (default 200,000, or $STREAMNORM_EXAMPLE_ROWS) rows of generated events go through:

1. ``streamnorm stats events.parquet -o stats.json``: statistics fitted once, on a file;
2. the pipeline, built with ``subprocess`` exactly as a shell would build

       python -c "<duckdb query>" | streamnorm normalize - - --stats stats.json | python -c "<consumer>"

   a duckdb query streams Arrow IPC record batches to stdout as it produces them,
   streamnorm normalizes each batch and flushes it at once, and the consumer reads the
   normalized stream batch by batch (it prints the rows, the mean of ``latency`` and the
   statistics streamnorm recorded in the stream's schema metadata).

No stage holds more than a few batches, so the same pipeline runs over a stream of any length.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PRODUCER = textwrap.dedent("""
    import sys
    import duckdb
    import pyarrow.ipc as ipc
    query = '''SELECT user_id, latency, bytes FROM read_parquet('events.parquet')
               WHERE kind <> 'ping' '''
    # no progress bar: duckdb draws it on stdout, which here carries the data
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    reader = con.sql(query).to_arrow_reader(50_000)
    with ipc.new_stream(sys.stdout.buffer, reader.schema) as writer:
        for batch in reader:  # each batch leaves as soon as duckdb has it
            writer.write_batch(batch)
            sys.stdout.buffer.flush()
""")

CONSUMER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import pyarrow.ipc as ipc
    reader = ipc.open_stream(sys.stdin.buffer)
    record = json.loads(reader.schema.metadata[b"streamnorm"])
    rows, total = 0, 0.0
    for batch in reader:
        rows += batch.num_rows
        total += float(np.nansum(batch.column("latency").to_numpy(zero_copy_only=False)))
    print(f"consumer: {rows:,} normalized rows, mean latency {total / rows:+.4f}; "
          f"the stream's metadata records mode={record['mode']}, eps={record['eps']}")
""")


def make_events(path: Path, rows: int) -> None:
    """Events with a kind (a quarter are pings), a user, a latency and a size."""
    rng = np.random.default_rng(16)
    pq.write_table(pa.table({
        "kind": rng.choice(["ping", "click", "view", "buy"], rows),
        "user_id": rng.integers(0, 1000, rows),
        "latency": rng.lognormal(3.0, 0.5, rows),
        "bytes": rng.normal(2e4, 5e3, rows),
    }), path)


def main(rows: int) -> None:
    streamnorm = [sys.executable, "-m", "streamnorm"]
    with tempfile.TemporaryDirectory() as tmp:
        make_events(Path(tmp) / "events.parquet", rows)
        subprocess.run([*streamnorm, "stats", "events.parquet", "-c", "latency", "-c", "bytes",
                        "-o", "stats.json"], cwd=tmp, check=True)
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER], cwd=tmp,
                                    stdout=subprocess.PIPE)
        normalize = subprocess.Popen([*streamnorm, "normalize", "-", "-", "--stats",
                                      "stats.json"], cwd=tmp, stdin=producer.stdout,
                                     stdout=subprocess.PIPE)
        consumer = subprocess.Popen([sys.executable, "-c", CONSUMER], cwd=tmp,
                                    stdin=normalize.stdout)
        producer.stdout.close()  # the pipes now belong to the stages that read them
        normalize.stdout.close()
        codes = [p.wait() for p in (producer, normalize, consumer)]
        if any(codes):
            raise SystemExit(f"the pipeline failed: exit codes {codes}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1
         else int(os.environ.get("STREAMNORM_EXAMPLE_ROWS", "200000")))
