"""How a Spark stage scales out (issue 27, docs/scale.md): the same spark-submit run in local mode and on a
standalone cluster of 2 workers with the same total cores, side by side in one run, alternated A B A B.

The standalone master and workers are started on 127.0.0.1 by ticcore.spark_standalone (as in
tests/test_timestamp_join.py::test_standalone_cluster_gives_the_local_result) and stopped at the end.
The stage is the timestamp join over a sample web's WARC files and metadata (extraction + join + outputs), the
Spark stage whose input a real run distributes; wall time of spark-submit, JVM start included, is printed per run.

    tic-sample-web --out /tmp/world --pairs 50000 --seed 0 --quiet
    python perf/bench_cluster.py /tmp/world --cores 2 --rounds 2
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ticcore.spark_standalone import StandaloneCluster, standalone_cluster  # noqa: E402


def submit(cluster: StandaloneCluster, master: str, cores: int, world: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [cluster.spark_submit, "--master", master,
           "--conf", "spark.sql.session.timeZone=UTC", "--conf", "spark.ui.enabled=false",
           # the same shuffle width both ways (the cluster default of 200 is for big inputs)
           "--conf", f"spark.sql.shuffle.partitions={2 * cores}"]
    if master.startswith("spark://"):
        cmd += ["--total-executor-cores", str(cores), "--executor-cores", "1", "--executor-memory", "1g"]
    cmd += ["curation/timestamp_join.py", str(world / "warc.manifest"), str(world / "metadata"), str(out)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=cluster.env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"spark-submit --master {master} failed:\n{res.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", type=Path, help="a tic-sample-web output")
    p.add_argument("--cores", type=int, default=2, help="total cores both ways; the cluster gets one worker per core")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        with standalone_cluster(workers=args.cores, cores_per_worker=1, worker_memory="1500m") as cluster:
            runs = {"local": [], "standalone": []}
            for r in range(args.rounds):
                for name, m in (("local", f"local[{args.cores}]"), ("standalone", cluster.master)):
                    wall = submit(cluster, m, args.cores, args.world, scratch / "out")
                    runs[name].append(wall)
                    print(f"  round {r + 1}  {name:10s} {wall:7.1f} s wall", flush=True)
        n_files = sum(1 for _ in (args.world / "metadata").glob("*.parquet"))
        print(f"timestamp join (spark-submit) on {args.world} ({n_files} metadata files), {args.cores} cores in all:")
        for r, (a, b) in enumerate(zip(runs["local"], runs["standalone"])):
            print(f"  round {r + 1}: local[{args.cores}] {a:.1f} s, standalone {args.cores} workers x 1 core "
                  f"{b:.1f} s, standalone/local = {b / a:.2f}x")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
