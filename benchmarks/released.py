"""apple/ml-tic-clip's released TiC-DataComp files, in and out: `tic-splits import-released` and
`tic-splits export-released`.

The release (apple/ml-tic-clip, README "TiC-DataComp UIDs"; `dataset_creation/tic-datacomp/`):

  tic-datacomp_training_yearly_noeval/{year}.npy   sorted np.dtype("u8,u8") uids of the year, every eval uid removed
  tic-datacomp_training_yearly_noeval/sizes.json   {year: uids}
  tic-datacomp_training_monthly/{year}.tar         members {year}/{YYYYMM}.npy: the month's uids, eval included
  tic-datacomp_training_monthly/sizes.json         {year: uids}
  tic-datacomp_retrieval_evals_year2uids.pkl       {year: [hex uid, ...]}
  tic-datacompnet_year2uids.pkl                    {year: {wnid: [hex uid, ...]}}

`generate_eval_uids.py` packs each eval year with `(int(uid[:16], 16), int(uid[16:32], 16))`, sorts and
de-duplicates (here: `ticcore.datacomp_uids`); `generate_datacompnet_uid2classid.py` gives a Net uid
the class id of its wnid in the 1000-class order of BREEDS' `dataset_class_info.json`, which is the
standard sorted-wnid order `ticcore.imagenet` uses; `README.md` extracts a monthly tar so that
`{year}/{YYYYMM}.npy` appears under the target directory.

Import is one process over DuckDB, not a Spark job: it is a single equi-join of uid lists with the
metadata, with no UDF and no timestamp join, and DuckDB reads the parquet shards directly, runs the
join on all cores and spills to disk when a year does not fit in memory; the uid lists go in as two
uint64 columns straight from the memory-mapped .npy files (16 bytes a uid, no hex strings), one year
at a time. That covers DataComp's small to large pools on one machine; xlarge (12.8B rows) wants the
same join on a cluster.
"""
from __future__ import annotations

import io
import json
import pickle
import re
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from benchmarks.pools import read_hive, train_pools
from ticcore.datacomp_uids import hex_to_pairs, load_uid_npy, npy_bytes, pairs_to_hex, sorted_unique
from ticcore.errors import InputError, require_accounting
from ticcore.safepickle import NUMPY_ARRAY_GLOBALS, load_restricted
from ticcore.imagenet import classes_by_wnid
from ticcore.outputs import atomic_write, json_text, staged_dir

TOOL = "tic-splits"
YEARLY_DIR = "tic-datacomp_training_yearly_noeval"
MONTHLY_DIR = "tic-datacomp_training_monthly"
RETRIEVAL_PKL = "tic-datacomp_retrieval_evals_year2uids.pkl"
NET_PKL = "tic-datacompnet_year2uids.pkl"
SIZES = "sizes.json"
IMPORTED_POOL = "unfiltered"   # the yearly lists are DataComp's pool unfiltered (README: "no filter; no eval")
_YEAR_FILE = re.compile(r"(\d{4})\.npy")
_MONTH_MEMBER = re.compile(r"(?:.*/)?(\d{4})(\d{2})\.npy")


# ------------------------------------------------------------------ reading the release

# The eval maps are plain dicts of lists of strings: besides numpy arrays, only the containers such maps
# might be built from are resolved (`ticcore.safepickle`; loading an arbitrary pickle runs code).
_YEAR_MAP_GLOBALS = NUMPY_ARRAY_GLOBALS | {("collections", "defaultdict"), ("collections", "OrderedDict"),
                                           ("builtins", "set"), ("numpy.core.multiarray", "scalar"),
                                           ("numpy._core.multiarray", "scalar")}


def load_year_map(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            doc = load_restricted(fh, _YEAR_MAP_GLOBALS, "only plain data is expected")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a readable year map ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a dict year -> uids, got {type(doc).__name__}")
    return doc


def _year(key, path: Path) -> int:
    try:
        year = int(str(key))
    except ValueError:
        raise InputError(f"{path}: key {key!r} is not a year") from None
    if not 1900 <= year <= 2200:
        raise InputError(f"{path}: key {key!r} is not a year")
    return year


def _uid_list(value, path: Path, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple, set)):
        raise InputError(f"{path}: {what}: expected a list of hex uids, got {type(value).__name__}")
    # as generate_eval_uids.py packs them: sorted, each uid once
    return sorted_unique(hex_to_pairs([str(u) if not isinstance(u, str) else u for u in value], f"{path} ({what})"))


@dataclass
class Release:
    """The released lists as `u8,u8` arrays (yearly lists memory-mapped)."""
    root: Path
    yearly: dict[int, np.ndarray]
    monthly: dict[str, np.ndarray] = field(default_factory=dict)                 # "YYYY-MM" -> uids
    retrieval: dict[int, np.ndarray] = field(default_factory=dict)
    net: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)          # year -> wnid -> uids


def read_release(root: Path) -> Release:
    """Every released file under ROOT (the yearly lists are required, the rest optional); bad files are
    an InputError naming them."""
    root = Path(root)
    ydir = root / YEARLY_DIR
    if not ydir.is_dir():
        raise InputError(f"{ydir}: missing (the released yearly uid lists, {YEARLY_DIR}/{{year}}.npy)")
    yearly = {}
    for f in sorted(ydir.iterdir()):
        m = _YEAR_FILE.fullmatch(f.name)
        if m:
            yearly[int(m.group(1))] = load_uid_npy(f, str(f))
    if not yearly:
        raise InputError(f"{ydir}: no {{year}}.npy file")
    monthly: dict[str, np.ndarray] = {}
    mdir = root / MONTHLY_DIR
    for tar_path in sorted(mdir.glob("*.tar")) if mdir.is_dir() else []:
        try:
            with tarfile.open(tar_path) as tf:
                for member in tf:
                    m = _MONTH_MEMBER.fullmatch(member.name)
                    if member.isfile() and m:
                        where = f"{tar_path}:{member.name}"
                        monthly[f"{m.group(1)}-{m.group(2)}"] = load_uid_npy(tf.extractfile(member).read(), where)
        except (tarfile.TarError, OSError) as exc:
            raise InputError(f"{tar_path}: not a readable tar ({exc})") from None
    retrieval, net = {}, {}
    if (root / RETRIEVAL_PKL).is_file():
        path = root / RETRIEVAL_PKL
        retrieval = {_year(y, path): _uid_list(v, path, f"year {y}") for y, v in load_year_map(path).items()}
    if (root / NET_PKL).is_file():
        path = root / NET_PKL
        for y, by_wnid in load_year_map(path).items():
            if not isinstance(by_wnid, dict):
                raise InputError(f"{path}: year {y}: expected a dict wnid -> uids, got {type(by_wnid).__name__}")
            net[_year(y, path)] = {str(w): _uid_list(v, path, f"year {y}, {w}") for w, v in by_wnid.items()}
    return Release(root, yearly, monthly, retrieval, net)


# ------------------------------------------------------------------ import

@dataclass(frozen=True)
class ImportConfig:
    """What `tic-splits import-released` is asked to do."""
    release: Path
    out: Path
    metadata: Path
    subtrees: tuple[str, ...] = ("motor_vehicle.n.01",)
    templates: str = "simple"
    threads: int | None = None

    def __post_init__(self):
        for name in ("release", "out", "metadata"):
            object.__setattr__(self, name, Path(getattr(self, name)))

    @property
    def metadata_glob(self) -> str:
        return str(self.metadata / "*.parquet")

    def check_inputs(self) -> None:
        if not self.metadata.is_dir() or not any(self.metadata.glob("*.parquet")):
            raise InputError(f"{self.metadata}: no DataComp metadata (*.parquet) here")


def _pairs_table(pairs: np.ndarray, **const) -> pa.Table:
    """hi, lo (uint64) and constant columns: what DuckDB joins on, straight from the (mapped) array."""
    cols = {"hi": pa.array(np.ascontiguousarray(pairs["f0"])), "lo": pa.array(np.ascontiguousarray(pairs["f1"]))}
    for k, v in const.items():
        cols[k] = pa.array(v) if isinstance(v, (list, np.ndarray)) else pa.array([v] * len(pairs))
    return pa.table(cols)


# the columns a tic-splits pool carries beside the metadata (benchmarks/cli.py: the join's first_seen table);
# the release knows months, not times or snapshots, so those stay null
_FIRST_SEEN_SQL = ("r.first_seen_month, CAST(r.year AS INTEGER) AS first_seen_year, NULL::TIMESTAMP AS first_seen_time, "
                   "NULL::VARCHAR AS first_seen_snapshot, NULL::TIMESTAMP AS last_seen_time, "
                   "NULL::INTEGER AS n_snapshots_seen")


def _run(con, sql: str) -> None:
    """A statement run to completion (DuckDB keeps an unfetched result open on the connection)."""
    con.execute(sql).fetchall()


def _connect(cfg: ImportConfig):
    import duckdb  # imported here: only import-released needs it

    con = duckdb.connect()
    if cfg.threads:
        _run(con, f"SET threads = {int(cfg.threads)}")
    _run(con, "SET preserve_insertion_order = false")
    glob = cfg.metadata_glob.replace("'", "''")
    _run(con, f"CREATE VIEW meta AS SELECT *, TRY_CAST('0x' || substr(uid, 1, 16) AS UBIGINT) AS hi, "
                f"TRY_CAST('0x' || substr(uid, 17, 16) AS UBIGINT) AS lo FROM read_parquet('{glob}', union_by_name = true)")
    bad = con.execute("SELECT count(*), min(uid) FROM meta WHERE NOT regexp_full_match(coalesce(uid, ''), '[0-9a-f]{32}')").fetchall()[0]
    if bad[0]:
        raise InputError(f"{cfg.metadata}: {bad[0]} uid(s) are not 32 lowercase hex digits, as DataComp's uids are "
                         f"(e.g. {bad[1]!r}); the pool is refused")
    return con


def _month_table(rel: Release, years: set[int]) -> pa.Table:
    parts = [_pairs_table(p, first_seen_month=m) for m, p in sorted(rel.monthly.items()) if int(m[:4]) in years]
    if not parts:
        return pa.table({"hi": pa.array([], pa.uint64()), "lo": pa.array([], pa.uint64()),
                         "first_seen_month": pa.array([], pa.string())})
    return pa.concat_tables(parts)


def _copy(con, select: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    _run(con, f"COPY ({select}) TO '{str(dest).replace(chr(39), chr(39) * 2)}' "
              "(FORMAT parquet, PARTITION_BY (year), OVERWRITE_OR_IGNORE true)")


def _missing(con, name: str) -> int:
    return con.execute(f"SELECT count(*) FROM {name} r ANTI JOIN meta m USING (hi, lo)").fetchall()[0][0]


def import_released(cfg: ImportConfig, log=print) -> dict:
    """Write cfg.out in tic-splits' layout from the released lists; returns its stats.json."""
    cfg.check_inputs()
    rel = read_release(cfg.release)
    by_wnid = classes_by_wnid()
    for year, classes in rel.net.items():
        unknown = sorted(set(classes) - set(by_wnid))
        if unknown:
            raise InputError(f"{cfg.release / NET_PKL}: year {year}: {len(unknown)} wnid(s) are not ImageNet-1K "
                             f"classes: {', '.join(unknown[:3])}")
    t0 = time.perf_counter()
    con = _connect(cfg)
    released: dict = {"train": {}, "retrieval": {}, "net": {}}
    missing: dict = {"train": {}, "retrieval": {}, "net": {}}
    written: dict = {"train": {}, "retrieval": {}, "net": {}}
    # every eval uid, once: a training row that is also an eval pair is removed (the release removed them already)
    eval_pairs = [p for p in rel.retrieval.values()] + [p for c in rel.net.values() for p in c.values()]
    con.register("evals", _pairs_table(sorted_unique(np.concatenate(eval_pairs)) if eval_pairs
                                       else np.empty(0, np.dtype("u8,u8"))))
    leaked: dict = {}   # year -> training uids that are eval pairs: (removed, of which also missing)
    with staged_dir(cfg.out, TOOL) as tmp:
        for year, pairs in sorted(rel.yearly.items()):
            con.register("r_pairs", _pairs_table(pairs, year=year))
            con.register("months", _month_table(rel, {year}))
            _run(con, "CREATE OR REPLACE TEMP TABLE r AS SELECT p.hi, p.lo, p.year, mo.first_seen_month "
                        "FROM r_pairs p LEFT JOIN months mo USING (hi, lo)")
            released["train"][str(year)] = len(pairs)
            missing["train"][str(year)] = _missing(con, "r")
            leaked[str(year)] = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE m.hi IS NULL) FROM (SELECT * FROM r SEMI JOIN evals USING (hi, lo)) r "
                "LEFT JOIN (SELECT hi, lo FROM meta) m USING (hi, lo)").fetchall()[0]
            _copy(con, f"SELECT m.* EXCLUDE (hi, lo), {_FIRST_SEEN_SQL}, CAST(r.year AS INTEGER) AS year "
                       "FROM (SELECT * FROM r ANTI JOIN evals USING (hi, lo)) r JOIN meta m USING (hi, lo) ORDER BY m.uid",
                  tmp / "train" / IMPORTED_POOL)
        all_months = _month_table(rel, set(rel.retrieval) | set(rel.net))
        con.register("months", all_months)
        for year, pairs in sorted(rel.retrieval.items()):
            con.register("r_pairs", _pairs_table(pairs, year=year))
            _run(con, "CREATE OR REPLACE TEMP TABLE r AS SELECT p.hi, p.lo, p.year, mo.first_seen_month "
                        "FROM r_pairs p LEFT JOIN months mo USING (hi, lo)")
            released["retrieval"][str(year)] = len(pairs)
            missing["retrieval"][str(year)] = _missing(con, "r")
            found = len(pairs) - missing["retrieval"][str(year)]
            # the release has one retrieval set a year, scored whole: subset `all`, one seed
            _copy(con, f"SELECT m.* EXCLUDE (hi, lo), {_FIRST_SEEN_SQL}, 'all' AS subset, [0]::BIGINT[] AS seeds, "
                       f"CAST({found} AS BIGINT) AS holdout_size, CAST(r.year AS INTEGER) AS year "
                       "FROM r JOIN meta m USING (hi, lo) ORDER BY m.uid", tmp / "eval" / "retrieval")
        for year, classes in sorted(rel.net.items()):
            parts = [_pairs_table(p, year=year, wnid=w, class_id=by_wnid[w].class_id) for w, p in sorted(classes.items())]
            con.register("r_pairs", pa.concat_tables(parts).cast(pa.schema([
                ("hi", pa.uint64()), ("lo", pa.uint64()), ("year", pa.int64()), ("wnid", pa.string()),
                ("class_id", pa.int32())])))
            _run(con, "CREATE OR REPLACE TEMP TABLE r AS SELECT p.*, mo.first_seen_month "
                        "FROM r_pairs p LEFT JOIN months mo USING (hi, lo)")
            released["net"][str(year)] = sum(len(p) for p in classes.values())
            missing["net"][str(year)] = _missing(con, "r")
            _copy(con, f"SELECT m.* EXCLUDE (hi, lo), {_FIRST_SEEN_SQL}, r.class_id, r.wnid, NULL::VARCHAR AS lemma, "
                       "NULL::DOUBLE AS similarity, NULL::BOOLEAN AS ambiguous, CAST(r.year AS INTEGER) AS year "
                       "FROM r JOIN meta m USING (hi, lo) ORDER BY m.uid", tmp / "eval" / "net")
        for part in ("train/" + IMPORTED_POOL, "eval/retrieval", "eval/net"):
            kind = part.split("/")[-1] if part.startswith("eval") else "train"
            root = tmp / part
            if root.is_dir():
                t = ds.dataset(str(root), format="parquet", partitioning="hive").to_table(columns=["year"])
                counts = t.group_by("year").aggregate([("year", "count")]).to_pylist()
                written[kind] = {str(r["year"]): r["year_count"] for r in sorted(counts, key=lambda r: r["year"])}
        from benchmarks.prompts import net_classes_doc  # open_clip (torch) only once the join is done

        atomic_write(tmp / "net_classes.json", json.dumps(net_classes_doc(cfg.subtrees, cfg.templates), indent=1) + "\n")
        stats = import_stats(cfg, rel, released, missing, written, leaked, time.perf_counter() - t0)
        atomic_write(tmp / "stats.json", json_text(stats, indent=1) + "\n")
        require_accounting(stats, cfg.out)
    con.close()
    log(import_summary(stats))
    return stats


def import_stats(cfg: ImportConfig, rel: Release, released: dict, missing: dict, written: dict, leaked: dict,
                 seconds: float) -> dict:
    """Every released uid ends in the output, in `missing_from_metadata`, or (a training uid that is also
    an eval pair) in `leakage_removed`; a uid both missing and an eval pair is in both counts."""
    errors = []
    for kind in released:
        for year, n in released[kind].items():
            removed, removed_missing = leaked.get(year, (0, 0)) if kind == "train" else (0, 0)
            accounted = written[kind].get(year, 0) + missing[kind].get(year, 0) + removed - removed_missing
            if accounted != n:
                errors.append(f"{kind} {year}: released {n} != written {written[kind].get(year, 0)} + missing "
                              f"{missing[kind].get(year, 0)} + eval pairs removed {removed - removed_missing}")
    total_missing = sum(sum(v.values()) for v in missing.values())
    return {"tool": TOOL, "command": "import-released", "release": str(cfg.release), "metadata": str(cfg.metadata),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "pools": [IMPORTED_POOL], "released": released, "train_rows": {IMPORTED_POOL: written["train"]},
            "retrieval": {y: {"all": {"holdout_size": n, "seeds": {"0": n}}} for y, n in written["retrieval"].items()},
            "net": {"by_year": written["net"]},
            "missing_from_metadata": {"total": total_missing, "by_year": _by_year(missing), "by_list": missing},
            "monthly_lists": len(rel.monthly),
            "leakage_removed": {IMPORTED_POOL: {"uid": sum(v[0] for v in leaked.values())}},
            "seconds": round(seconds, 2), "accounting": {"ok": not errors, "errors": errors}}


def _by_year(missing: dict) -> dict:
    out: dict = {}
    for per_year in missing.values():
        for y, n in per_year.items():
            out[y] = out.get(y, 0) + n
    return dict(sorted(out.items()))


def import_summary(stats: dict) -> str:
    m = stats["missing_from_metadata"]
    lines = [f"[{TOOL}] imported the released lists: train ({IMPORTED_POOL}) rows by year: "
             + ", ".join(f"{y}: {n}" for y, n in stats["train_rows"][IMPORTED_POOL].items()),
             f"[{TOOL}] retrieval pairs by year: " + (", ".join(f"{y}: {v['all']['holdout_size']}"
                                                              for y, v in stats["retrieval"].items()) or "none"),
             f"[{TOOL}] Net pairs by year: " + (", ".join(f"{y}: {n}" for y, n in stats["net"]["by_year"].items()) or "none"),
             f"[{TOOL}] released uids missing from the metadata: {m['total']}"
             + (" (" + ", ".join(f"{y}: {n}" for y, n in m["by_year"].items() if n) + ")" if m["total"] else "")]
    return "\n".join(lines)


# ------------------------------------------------------------------ export

@dataclass(frozen=True)
class ExportConfig:
    """What `tic-splits export-released` is asked to do."""
    splits: Path
    out: Path
    pool: str = IMPORTED_POOL     # the training pool written as the yearly lists

    def __post_init__(self):
        for name in ("splits", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))

    def check_inputs(self) -> None:
        if not (self.splits / "stats.json").is_file():
            raise InputError(f"{self.splits}: not a tic-splits output (no stats.json)")
        if self.pool not in train_pools(self.splits):
            raise InputError(f"{self.splits}/train/{self.pool}: no such training pool "
                             f"(there are: {', '.join(train_pools(self.splits)) or 'none'})")


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A deterministic tar (mtime 0, owner 0) of the given members, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _group_pairs(df, key: str) -> dict:
    return {k: hex_to_pairs(g["uid"].tolist(), k) for k, g in df.groupby(key)} if df is not None and len(df) else {}


def export_released(cfg: ExportConfig, log=print) -> dict:
    """Write ml-tic-clip's release layout from a tic-splits output; returns the counts written."""
    cfg.check_inputs()
    train = read_hive(cfg.splits / "train" / cfg.pool, columns=["uid", "first_seen_month", "year"])
    retrieval = read_hive(cfg.splits / "eval" / "retrieval", columns=["uid", "subset", "first_seen_month", "year"])
    net = read_hive(cfg.splits / "eval" / "net", columns=["uid", "wnid", "first_seen_month", "year"])
    counts: dict = {}
    with staged_dir(cfg.out, "tic-splits export-released") as tmp:
        ydir = tmp / YEARLY_DIR
        ydir.mkdir()
        sizes = {}
        for year, pairs in sorted(_group_pairs(train, "year").items()):
            data = npy_bytes(pairs)
            atomic_write(ydir / f"{year}.npy", data)
            sizes[str(year)] = len(sorted_unique(pairs))
        atomic_write(ydir / SIZES, json.dumps(sizes) + "\n")
        counts["yearly"] = sizes
        # the monthly lists include the eval pairs (README: "monthly data; no filter; including eval")
        import pandas as pd

        frames = [f[["uid", "first_seen_month"]] for f in (train, retrieval, net) if f is not None and len(f)]
        months = pd.concat(frames).dropna().drop_duplicates("uid") if frames else None
        mdir = tmp / MONTHLY_DIR
        mdir.mkdir()
        msizes: dict = {}
        by_year: dict = {}
        for month, pairs in sorted(_group_pairs(months, "first_seen_month").items()):
            y, mm = str(month)[:4], str(month)[5:7]
            by_year.setdefault(y, []).append((f"{y}/{y}{mm}.npy", npy_bytes(pairs)))
            msizes[y] = msizes.get(y, 0) + len(sorted_unique(pairs))
        for y, members in sorted(by_year.items()):
            atomic_write(mdir / f"{y}.tar", _tar_bytes(members))
        atomic_write(mdir / SIZES, json.dumps(msizes) + "\n")
        counts["monthly"] = msizes
        # retrieval: the IID holdout (subset `all`); the COVID and Flickr holdouts are ours alone
        ret = retrieval[retrieval["subset"] == "all"] if retrieval is not None else None
        year2uids = {int(y): sorted(set(g["uid"])) for y, g in ret.groupby("year")} if ret is not None else {}
        atomic_write(tmp / RETRIEVAL_PKL, pickle.dumps(year2uids, protocol=4))
        counts["retrieval"] = {str(y): len(v) for y, v in year2uids.items()}
        counts["retrieval_not_exported"] = (int(retrieval.loc[~retrieval["uid"].isin(set(ret["uid"])), "uid"].nunique())
                                            if retrieval is not None else 0)
        net_map = ({int(y): {str(w): sorted(set(gw["uid"])) for w, gw in g.groupby("wnid")} for y, g in net.groupby("year")}
                   if net is not None else {})
        atomic_write(tmp / NET_PKL, pickle.dumps(net_map, protocol=4))
        counts["net"] = {str(y): sum(len(v) for v in c.values()) for y, c in net_map.items()}
        atomic_write(tmp / "export_stats.json", json_text({"tool": TOOL, "command": "export-released",
                                                            "splits": str(cfg.splits), "pool": cfg.pool, **counts},
                                                           indent=1) + "\n")
    log(f"[{TOOL}] exported {cfg.pool} as yearly lists ({sum(counts['yearly'].values())} uids), "
        f"{len(by_year)} monthly archives, retrieval ({sum(counts['retrieval'].values())}) and Net "
        f"({sum(counts['net'].values())}) year maps to {cfg.out}")
    return counts


def membership(splits: Path) -> dict:
    """What a split holds, as sets: (pool, year) -> uids, ("retrieval", year) -> uids of subset all,
    ("net", year) -> (uid, wnid). The round trip export -> import keeps exactly this."""
    out: dict = {}
    for pool in train_pools(splits):
        df = read_hive(Path(splits) / "train" / pool, columns=["uid", "year"])
        for y, g in df.groupby("year"):
            out[(pool, int(y))] = set(g["uid"])
    ret = read_hive(Path(splits) / "eval" / "retrieval", columns=["uid", "subset", "year"])
    if ret is not None:
        for y, g in ret[ret["subset"] == "all"].groupby("year"):
            out[("retrieval", int(y))] = set(g["uid"])
    net = read_hive(Path(splits) / "eval" / "net", columns=["uid", "wnid", "year"])
    if net is not None:
        for y, g in net.groupby("year"):
            out[("net", int(y))] = set(zip(g["uid"], g["wnid"]))
    return out


__all__ = ["ImportConfig", "ExportConfig", "Release", "read_release", "import_released", "export_released",
           "membership", "pairs_to_hex"]
