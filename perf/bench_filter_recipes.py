"""tic-filter's two cluster recipes side by side on a sample web (issue 25): which to make the default.

The image filter's aim is DataComp's: keep the pairs whose images look like ImageNet. The sample web's
truth says which pairs show an ImageNet concept (`concept_kind == "imagenet"`), so each run is scored by
precision (the ImageNet share of the kept rows, against the pool's base rate), recall (the share of the
pool's English ImageNet pairs kept) and the kept count, with the driver's wall time. Runs: image and
bestpool under `scaled` (ours) and `datacomp` (DataComp's k-means; at its 100k default a small pool's k
is capped at the candidate count), and `datacomp` with the `scaled` run's cluster count (the geometry and
training set alone).

    tic-sample-web --out /tmp/world20k --pairs 20000 --seed 0 --no-big-page --quiet
    python perf/bench_filter_recipes.py /tmp/world20k
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world", type=Path, help="a tic-sample-web output")
    ap.add_argument("--filters", nargs="+", default=["image", "bestpool"])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()

    import pyarrow.parquet as pq

    from curation.filter_job import FilterConfig, run
    from ticcore.sparkio import build_session

    truth = pq.read_table(a.world / "truth", columns=["uid", "concept_kind", "language", "birth_year"]).to_pandas()
    imagenet = set(truth.uid[truth.concept_kind == "imagenet"])
    en_imagenet = set(truth.uid[(truth.concept_kind == "imagenet") & (truth.language == "en")])
    year = dict(zip(truth.uid, truth.birth_year))
    base = len(imagenet) / len(truth)
    print(f"pool {len(truth)} pairs; ImageNet share {base:.3f}; English ImageNet pairs {len(en_imagenet)}")
    spark = build_session("bench-filter-recipes", "local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.filters:
            scaled_k = None
            for recipe, clusters in (("scaled", None), ("datacomp", None), ("datacomp", "scaled_k")):
                k = scaled_k if clusters == "scaled_k" else None
                out = Path(tmp) / f"{name}-{recipe}-{k}"
                t0 = time.perf_counter()
                s = run(spark, FilterConfig(name, str(a.world / "metadata"), str(out), recipe=recipe, clusters=k),
                        log=lambda *_: None)
                wall = time.perf_counter() - t0
                kept = set(pq.read_table(out / "kept", columns=["uid"]).column("uid").to_pylist())
                if recipe == "scaled":
                    scaled_k = s["image_clusters"]["clusters"]
                early = [u for u in kept if year[u] <= 2016]
                late = [u for u in kept if year[u] >= 2020]
                row = {"filter": name, "recipe": recipe, "clusters": s["image_clusters"]["clusters"],
                       "clusters_requested": s["image_clusters"]["clusters_requested"],
                       "trained_on": s["image_clusters"]["sample_size"],
                       "target_clusters": s["image_clusters"]["target_clusters"], "kept": len(kept),
                       "precision": round(len(kept & imagenet) / max(1, len(kept)), 4),
                       "recall": round(len(kept & en_imagenet) / len(en_imagenet), 4),
                       "kept_2014_16": len(early), "kept_2020_22": len(late), "wall_s": round(wall, 1)}
                results.append(row)
                print(json.dumps(row), flush=True)
    spark.stop()
    print(f"\n{'filter':9} {'recipe':9} {'k':>6} {'targets':>7} {'kept':>6} {'precision':>9} {'recall':>7} "
          f"{'14-16':>6} {'20-22':>6} {'wall s':>7}   (pool ImageNet share {base:.3f})")
    for r in results:
        print(f"{r['filter']:9} {r['recipe']:9} {r['clusters']:>6} {r['target_clusters']:>7} {r['kept']:>6} "
              f"{r['precision']:>9.3f} {r['recall']:>7.3f} {r['kept_2014_16']:>6} {r['kept_2020_22']:>6} {r['wall_s']:>7}")
    if a.json:
        a.json.write_text(json.dumps({"pool": len(truth), "imagenet_share": base, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
