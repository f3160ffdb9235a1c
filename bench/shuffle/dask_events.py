"""Dask baseline for bench/shuffle.sh: the same aggregates over the same CSV files.

Run with Debian's interpreter: /usr/bin/python3 bench/shuffle/dask_events.py DIR WORKERS
Prints the seconds the computation took (cluster start-up excluded) and the number of users.
"""
import sys
import time

import dask
import dask.dataframe as dd
from dask.distributed import Client, LocalCluster


def main():
    directory, workers = sys.argv[1], int(sys.argv[2])
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster):
        start = time.perf_counter()
        df = dd.read_csv(f"{directory}/*.csv", usecols=["user_id", "amount", "category"])
        df = df[df.amount > 0]
        df = df.assign(category=df.category.str.strip().str.lower())
        # This Dask's groupby agg() has no nunique, and SeriesGroupBy.nunique is very slow with
        # many groups: count distinct (user, category) pairs instead, in the same graph.
        sums = df.groupby("user_id").amount.agg(["sum", "count"])
        categories = df[["user_id", "category"]].drop_duplicates().groupby("user_id").size()
        sums, categories = dask.compute(sums, categories)
        out = sums.join(categories.rename("categories"))
        took = time.perf_counter() - start
    print(f"{took:.3f} {len(out)}")


if __name__ == "__main__":
    main()
