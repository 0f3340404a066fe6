"""Reverse-lookup index benchmark: bulk load of N handles (index written with each record), the one-time
index build at open of a store without it, and search throughput (exact, prefix, '*'-inside and AND).

    .venv/bin/python scripts/bench_reverse_index.py [--handles 100000] [--seconds 2]

Runs on a throw-away store in a temporary directory (sync off, as the loaders' benchmarks do).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hdlserver.store import reverse_index
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.store.reverse_index import condition
from hdlserver.wire.values import HandleValue

MAX_SCANNED = 200_000


def records(count: int) -> list[tuple[bytes, list[HandleValue]]]:
    return [(f"BENCH/{i:07}".encode(), [HandleValue(1, b"URL", f"https://repo.example/{i % 1000}/obj/{i}".encode()),
                                        HandleValue(2, b"CHECKSUM", f"md5:{i % 97:04}".encode())])
            for i in range(count)]


def drop_index(store: LmdbStore) -> None:
    for part in store._parts:
        part.write(lambda txn, part=part: txn.drop(part.revidx, delete=False))
        part.write(lambda txn, part=part: txn.delete(reverse_index.META_VERSION, db=part.meta))


def searches_per_second(store: LmdbStore, pairs: list[tuple[str, str]], seconds: float) -> tuple[float, int]:
    conditions = [condition(t, p) for t, p in pairs]
    done = 0
    found = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        found = len(store.search(conditions, limit=1000, max_scanned=MAX_SCANNED))
        done += 1
    return done / (time.perf_counter() - started), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with open_store(directory, case_sensitive=False, sync=False) as store:
            items = records(args.handles)
            started = time.perf_counter()
            store.create_handles(items)
            print(f"bulk load of {args.handles} handles (2 values each, indexed): "
                  f"{time.perf_counter() - started:.2f} s")
            drop_index(store)
        started = time.perf_counter()
        with open_store(directory, case_sensitive=False, sync=False) as store:
            print(f"index build at open for {args.handles} handles: {time.perf_counter() - started:.2f} s")
            cases = {
                "exact URL (1 hit)": [("URL", "https://repo.example/5/obj/5005")],
                "prefix URL* (100 hits)": [("URL", "https://repo.example/42/*")],
                "URL prefix AND CHECKSUM": [("URL", "https://repo.example/42/*"), ("CHECKSUM", "md5:0001")],
                "'*' inside, limit 1000": [("URL", "https://repo.example/7*/obj/*5")],
            }
            for name, pairs in cases.items():
                rate, found = searches_per_second(store, pairs, args.seconds)
                print(f"search {name}: {rate:,.0f}/s ({found} found)")


if __name__ == "__main__":
    main()
