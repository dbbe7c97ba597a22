"""A finished run read from Python (``pbt.results.Results``, the counterpart of Ray Tune's ``ResultGrid``): the best
member, its checkpoint and schedule, and the run's tables as pandas DataFrames or plain rows. Reading writes nothing,
works on a read-only copy and imports no task code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas
import pytest

import baselines
from pbt.results import TABLES, Results
from tests.conftest import cli
from tests.test_api import TOY, toy_config
from tests.test_robustness import _unprivileged_user, remove_read_only_tree
from tests.test_user_task import PACKAGED

REPO = Path(__file__).resolve().parents[1]
TASK_NAME = "reading_bowl"


def everything(run_dir: Path | str) -> dict:
    """All a user may read from a run, as JSON values."""
    results = Results(run_dir)
    best = results.member("best")
    return {
        "best": best.id,
        "checkpoint": results.checkpoint(best).name,
        "schedule": [[s.member, s.age_start, s.hparams] for s in results.schedule()],
        "replay": [list(change) for change in results.discovered_schedule().changes],
        "final": [list(change) for change in results.discovered_schedule(final=True).changes],
        "state": list(results.state),
        "rows": {of: results.table(of) for of in TABLES},
        "frames": {of: len(results.dataframe(of)) for of in TABLES},
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of a user's task file, trained by another process (the task is never imported here)."""
    folder = tmp_path_factory.mktemp("user")
    (folder / f"{TASK_NAME}.py").write_text(PACKAGED)
    cli(["run", f"{TASK_NAME}.py", "--out", "run", "--quiet"], cwd=folder, timeout=180)
    return folder / "run"


def files(run_dir: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def everything_as(user: int | None, run_dir: Path) -> dict:
    """``everything(run_dir)``, read by another process as ``user`` (None: as this one's)."""
    prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    code = (
        "import json, sys; from tests.test_reading_a_run import everything; print(json.dumps(everything(sys.argv[1])))"
    )
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", code, str(run_dir)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_reading_everything_writes_nothing_and_imports_no_task_code(finished_run: Path) -> None:
    before = files(finished_run)
    everything(finished_run)
    assert files(finished_run) == before  # not a byte, not a file, not an mtime
    task_file = str(finished_run.parent / f"{TASK_NAME}.py")
    assert TASK_NAME not in sys.modules
    assert not [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == task_file]


def test_a_read_only_copy_reads_the_same(finished_run: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="pbt-ro-results-"))  # not under pytest's tmp_path: that one is private to us
    try:
        os.chmod(base, 0o755)
        copy = base / "run"
        shutil.copytree(finished_run, copy)
        for path in copy.rglob("*"):
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        os.chmod(copy, 0o555)
        before = files(copy)
        read = everything_as(_unprivileged_user(), copy)
        assert files(copy) == before
    finally:
        remove_read_only_tree(base)
    assert read == json.loads(json.dumps(everything(finished_run)))
    assert read["frames"] == {of: len(read["rows"][of]) for of in TABLES}


def test_the_tables_as_dataframes(finished_run: Path) -> None:
    results = Results(finished_run)
    members, scores, events = (results.dataframe(of) for of in ("members", "scores", "events"))
    assert all(isinstance(frame, pandas.DataFrame) for frame in (members, scores, events))
    for of, frame in (("members", members), ("scores", scores), ("events", events)):
        assert list(frame.columns[: len(TABLES[of])]) == list(TABLES[of]), of
    assert list(members["member"]) == [0, 1, 2, 3] and set(members["step"]) == {24}
    assert list(members["h/lr"]) == [m.hparams["lr"] for m in results.members]
    # every evaluation, each member's at every ready step, with the task's training metrics
    assert len(scores) == 4 * 4 and sorted(set(scores["step"])) == [6, 12, 18, 24]
    assert "train/x" in scores.columns and scores["score"].max() >= results.best.score
    best_curve = scores[scores["member"] == results.best.id]  # Ray's result.metrics_dataframe
    assert list(best_curve["step"]) == [6, 12, 18, 24]
    # each exploit names its donor and the hyperparameters it took; the explore after it, how it changed them
    exploits, explores = events[events["kind"] == "exploit"], events[events["kind"] == "explore"]
    assert len(exploits) == len(results.events) // 2 == len(explores) > 0
    for (_, exploit), (_, explore) in zip(exploits.iterrows(), explores.iterrows()):
        assert exploit["donor"] != exploit["member"] and exploit["donor_score"] > exploit["score"]
        assert exploit["member"] == explore["member"] and exploit["step"] == explore["step"]
        assert exploit["after/lr"] == explore["before/lr"] != explore["after/lr"]
        assert explore["op/lr"] in ("* 0.8", "* 1.2")
    with pytest.raises(ValueError, match="no table 'trials' in a run \\(tables: members, scores, events\\)"):
        results.dataframe("trials")


def test_without_pandas_the_tables_are_plain_rows(finished_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = Results(finished_run)
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` meets where it is not installed
    for of in TABLES:
        rows = results.dataframe(of)
        assert isinstance(rows, list) and rows == results.table(of) and rows, of
    assert rows[0]["kind"] == "exploit" and rows[0]["before/lr"] != rows[0]["after/lr"]


def test_an_empty_table_keeps_its_columns(tmp_path: Path) -> None:
    baselines.random_search(TOY, toy_config(), tmp_path / "rs").close()  # random search: no events
    events = Results(tmp_path / "rs").dataframe("events")
    assert events.empty and list(events.columns) == list(TABLES["events"])
    assert events[events["kind"] == "exploit"].empty  # filters as on any run's
