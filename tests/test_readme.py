"""The README's example runs as written, with the serial and the local executor and through the CLI; its generated
PBTConfig table is current."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pbt.store import StoreReader
from repro.docs import with_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def example_files() -> dict[str, str]:
    """The code blocks the README marks with ``<!-- file: NAME -->``."""
    found = dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", README, flags=re.S))
    assert set(found) == {"mytask.py", "run.py"}, sorted(found)
    return found


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    for name, code in example_files().items():
        (tmp_path / name).write_text(code)
    # as a user has it: only the README's files in the folder, the installed package, no PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "disabled"}
    for executor in ("serial", "local"):
        proc = subprocess.run(
            [sys.executable, "run.py", executor], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("PBT best ") and "weight age 0: lr=" in proc.stdout
        store = StoreReader(tmp_path / "runs" / f"mytask-pbt-{executor}")
        assert store.meta()["status"] == "finished" and store.events("exploit")
        assert store.meta()["config"]["pbt"]["mode"] == "min"  # the example's loss: copies go to lower losses
        assert all(e.donor_score < e.score for e in store.events("exploit"))
        store.close()
    pbt_repro = str(Path(sys.executable).parent / "pbt-repro")  # the installed command, as the README names it
    for task, out in (("mytask", "cli-run"), ("mytask.py", "cli-file-run")):  # the default executor: worker processes
        cli = subprocess.run(
            [pbt_repro, "run", task, "--out", out, "--quiet"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert cli.returncode == 0, cli.stderr
        store = StoreReader(tmp_path / out)
        assert store.meta()["status"] == "finished" and store.meta()["config"]["pbt"]["executor"] == "local"
        store.close()
    assert StoreReader(tmp_path / "cli-run").meta()["module"] == "mytask"


def test_the_pbtconfig_table_is_generated_from_the_dataclass() -> None:
    assert with_table(README) == README, "run `python -m repro.docs` to regenerate the README's PBTConfig table"
