"""Bring every committed run store and summary under ``results/`` to the current layout, once.

A store of the layouts before ``pbt.store.STORE_VERSION`` gains what the current code writes when it makes a run:
the tables and columns added since (a missing weight age is the member's step, as the readers took it; a table of
completed intervals stays empty, as the readers took it), the full config (each setting added since at its default,
as the readers took it), the metadata recorded since (the task module, the priors, the executor's slots, an empty
failure) and the layout version. Stores inside ``runs.tar.xz`` archives are migrated in place in the archive: each
entry keeps its name, order, mode, owner and time, and the archive is compressed again as it was. A summary gains
the robust measures of each paired comparison (``repro.reproduce.paired_metric``, from the seeds it holds), and its
folder's README is written again from it as ``reproduce`` writes it (the hand-written notes kept).

    python scripts/migrate_stores.py results
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from pbt.config import from_dict
from pbt.rundir import _config_dict
from pbt.space import describe
from pbt.store import DB_NAME, MIGRATIONS, SCHEMA, STORE_VERSION
from repro.compare import compare
from repro.domains import load_domain
from repro.reproduce import NOTES_MARKER, paired_metric, results_readme

# How each archive was compressed (checked: compressing its tar again so gives the archive back byte for byte): the
# first with ``xz -9`` in threaded mode (sizes in the block header), the later ones with ``xz -6`` in one thread.
XZ_OPTIONS = {"toy/analysis/runs.tar.xz": ("-9", "-T2")}
XZ_DEFAULT = ("-6", "-T1")


def migrate_store(path: Path) -> bool:
    """Migrate one ``pbt.sqlite`` in place; False if it is at the current layout already."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == STORE_VERSION:
            return False
        assert version == 0, f"{path}: unknown layout version {version}"
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        domain = load_domain(meta["domain"])
        config = from_dict(domain.config, meta["config"])
        added: dict[str, Any] = {"config": _config_dict(config)}
        if "module" not in meta:
            added["module"] = domain.module
        if "space" not in meta:
            added["space"] = {k: describe(p) for k, p in domain.search_space(config).items()}
        if "failure" not in meta:
            added["failure"] = None
        if "slots" not in meta:  # what a local executor ran at once on the machine the run recorded
            pbt = config.pbt
            serial = pbt.executor == "serial"
            added["slots"] = 1 if serial else max(1, min(pbt.workers or meta["machine"]["cpus"], pbt.population))
        db.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, SCHEMA.split(";")):
            db.execute(statement)
        for table, column, kind in MIGRATIONS:
            if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute("UPDATE member SET weight_age = step WHERE weight_age IS NULL")
        changed = {k: v for k, v in added.items() if k not in meta or meta[k] != v}
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in changed.items()])
        db.execute(f"PRAGMA user_version = {STORE_VERSION}")
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"{path}: layout version {STORE_VERSION}; meta {', '.join(sorted(changed)) or 'unchanged'}")
        return True
    finally:
        db.close()


def migrate_archive(path: Path, results: Path) -> None:
    """Migrate the stores inside a ``.tar.xz`` archive, keeping every entry's name, order and attributes."""
    with tarfile.open(path) as archive, tempfile.TemporaryDirectory() as tmp:
        entries = archive.getmembers()
        archive.extractall(tmp, filter="tar")
        changed = [migrate_store(Path(tmp, e.name)) for e in entries if e.isfile() and Path(e.name).name == DB_NAME]
        if not any(changed):
            return
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w", format=tarfile.GNU_FORMAT) as out:
            for entry in entries:
                if entry.isfile():
                    data = Path(tmp, entry.name).read_bytes()
                    entry.size = len(data)
                    out.addfile(entry, io.BytesIO(data))
                else:
                    out.addfile(entry)
    options = XZ_OPTIONS.get(path.relative_to(results).as_posix(), XZ_DEFAULT)
    path.write_bytes(
        subprocess.run(["xz", *options, "-c"], input=packed.getvalue(), capture_output=True, check=True).stdout
    )
    print(f"{path}: {sum(changed)} stores migrated")


def migrate_paired(value: Any, name: str = "") -> int:
    """Give every paired comparison in ``value`` (a summary or part of one) the robust measures, in place."""
    count = 0
    if isinstance(value, dict):
        for key, inner in list(value.items()):
            if isinstance(inner, dict) and "per_seed" in inner and "sign_flip_p" not in inner:
                pbt = {int(seed): p for seed, p, _ in inner["per_seed"]}
                baseline = {int(seed): b for seed, _, b in inner["per_seed"]}
                current = json.loads(json.dumps(paired_metric(key, pbt, baseline)))
                assert all(current[k] == v for k, v in inner.items()), f"{name}.{key}: recomputed numbers differ"
                value[key] = current
                count += 1
            else:
                count += migrate_paired(inner, f"{name}.{key}")
    elif isinstance(value, list):
        count += sum(migrate_paired(inner, name) for inner in value)
    return count


def migrate_summary(path: Path) -> None:
    summary = json.loads(path.read_text())
    if not migrate_paired(summary):
        return
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    runs = [d for arm in summary["provenance"]["runs"].values() for d in arm]
    with tempfile.TemporaryDirectory() as tmp:  # only its runs table is needed: the rest is committed already
        comparison = compare(runs, tmp, metric=summary["metric"], figures=False, seed=summary["figure_seed"])
    readme = path.with_name("README.md")
    notes = readme.read_text().partition(NOTES_MARKER)[2]
    readme.write_text(results_readme(summary, comparison) + (f"\n{NOTES_MARKER}{notes}" if notes else ""))
    print(f"{path}: robust measures added; {readme} written again")


def main(results: Path) -> None:
    for path in sorted(results.rglob(DB_NAME)):
        migrate_store(path)
    for path in sorted(results.rglob("*.tar.xz")):
        migrate_archive(path, results)
    for path in sorted(results.rglob("summary.json")):
        migrate_summary(path)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
