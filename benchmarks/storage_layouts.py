"""How should prediction features be stored? COPY speed and disk size of three layouts.

Usage: python benchmarks/storage_layouts.py [--rows N] [--url postgresql://...]

Each layout is loaded with psycopg binary COPY into a table with the same keys driftwatch needs
(primary key (model_id, prediction_id), index (model_id, ts)); 20 numerical + 5 categorical
features. Prints rows/s (median of --repeat loads) and the size of table and indexes.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

N_NUM, N_CAT = 20, 5


def make_rows(n: int) -> tuple[list[str], list[datetime], np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(0)
    ids = [uuid.uuid4().hex for _ in range(n)]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    ts = [start + timedelta(seconds=i * 0.01) for i in range(n)]
    num = rng.normal(size=(n, N_NUM))
    cats = rng.choice(["CA", "NY", "TX", "WA", "FL", "OR"], size=(n, N_CAT)).tolist()
    return ids, ts, num, cats


LAYOUTS = {
    "typed columns": (
        ", ".join([f"f{i} float8" for i in range(N_NUM)] + [f"c{i} text" for i in range(N_CAT)]),
        ["int4", "text", "timestamptz", "float8"] + ["float8"] * N_NUM + ["text"] * N_CAT,
    ),
    "float8[] + text[]": (
        "num_values float8[], cat_values text[]",
        ["int4", "text", "timestamptz", "float8", "float8[]", "text[]"],
    ),
    "jsonb": ("features jsonb", ["int4", "text", "timestamptz", "float8", "jsonb"]),
}


def rows_for(layout: str, ids, ts, num, cats):
    num_lists = num.tolist()
    if layout == "typed columns":
        return [(1, ids[i], ts[i], 0.5, *num_lists[i], *cats[i]) for i in range(len(ids))]
    if layout == "float8[] + text[]":
        return [(1, ids[i], ts[i], 0.5, num_lists[i], cats[i]) for i in range(len(ids))]
    names = [f"f{i}" for i in range(N_NUM)] + [f"c{i}" for i in range(N_CAT)]
    return [
        (1, ids[i], ts[i], 0.5, Jsonb(dict(zip(names, num_lists[i] + cats[i], strict=True))))
        for i in range(len(ids))
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    ids, ts, num, cats = make_rows(args.rows)
    print(f"{args.rows} rows, {N_NUM} numerical + {N_CAT} categorical features")
    print(f"{'layout':<20} {'rows/s (median)':>16} {'table+index MB':>15}")
    with psycopg.connect(args.url, autocommit=True) as conn:
        for layout, (columns, types) in LAYOUTS.items():
            rows = rows_for(layout, ids, ts, num, cats)
            rates, size = [], 0
            for _ in range(args.repeat):
                conn.execute("DROP TABLE IF EXISTS layout_bench")
                conn.execute(
                    f"CREATE TABLE layout_bench (model_id int4, prediction_id text, ts timestamptz,"
                    f" prediction float8, {columns}, PRIMARY KEY (model_id, prediction_id))"
                )
                conn.execute("CREATE INDEX ON layout_bench (model_id, ts)")
                names = [
                    c.split()[0]
                    for c in ("model_id x, prediction_id x, ts x, prediction x, " + columns).split(
                        ", "
                    )
                ]
                start = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(
                        f"COPY layout_bench ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(types)
                        for row in rows:
                            copy.write_row(row)
                rates.append(args.rows / (time.perf_counter() - start))
                size = conn.execute("SELECT pg_total_relation_size('layout_bench')").fetchone()[0]
            print(f"{layout:<20} {statistics.median(rates):>16,.0f} {size / 1e6:>15.1f}")
        conn.execute("DROP TABLE IF EXISTS layout_bench")


if __name__ == "__main__":
    main()
