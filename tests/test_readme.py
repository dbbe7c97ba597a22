"""The README's example runs as written, with the serial and the local executor and through the CLI, and its analysis
reads the runs it made; its generated PBTConfig table is current."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from pbt.results import Results
from pbt.store import StoreReader
from repro.docs import with_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
RAY_PORTS = (
    "pbt_function_class.py",
    "pbt_function_fn.py",
)  # Ray Tune's pbt_function example, as a class and a function


def example_files() -> dict[str, str]:
    """The code blocks the README marks with ``<!-- file: NAME -->``."""
    found = dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", README, flags=re.S))
    assert set(found) == {"mytask.py", "run.py", "analyse.py", "heavyball.py", *RAY_PORTS}, sorted(found)
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
        analysed = subprocess.run(
            [sys.executable, "analyse.py", executor], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert analysed.returncode == 0, analysed.stderr
        best = Results(tmp_path / "runs" / f"mytask-pbt-{executor}").best
        first, *schedule = analysed.stdout.splitlines()
        checkpoint = first.split(", checkpoint ")[1]
        assert first.startswith(f"best member {best.id}: score {best.score:.3g}") and (tmp_path / checkpoint).is_file()
        assert schedule[0].startswith("  from weight age 0: lr=")
        assert re.search(r"^  step \d+: score \S+, x=\S+$", analysed.stdout, flags=re.M)  # the best member's scores
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


def test_the_ports_of_ray_tunes_pbt_function_example_run_as_written(tmp_path: Path) -> None:
    files = example_files()
    for name in RAY_PORTS:
        (tmp_path / name).write_text(files[name])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "disabled"}
    pbt_repro = str(Path(sys.executable).parent / "pbt-repro")
    for name in RAY_PORTS:  # as the README runs them: the installed command, the default executor
        out = name.removesuffix(".py")
        cli = subprocess.run(
            [pbt_repro, "run", name, "--out", out, "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert cli.returncode == 0, cli.stderr
        with StoreReader(tmp_path / out) as store:
            assert store.meta()["status"] == "finished" and store.meta()["config"]["pbt"]["executor"] == "local"
            assert store.events("exploit") and {m.step for m in store.members()} == {300}


def test_the_readme_mutation_example_runs_as_written(tmp_path: Path) -> None:
    """heavyball.py: members start anywhere in momentum's prior, explore sets only the values its mutation lists, and
    the domain's explore_fn caps every explored step size."""
    for name, code in example_files().items():
        (tmp_path / name).write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "heavyball.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "member 0: momentum=" in proc.stdout
    store = StoreReader(tmp_path / "runs" / "heavyball")
    listed = (0.8, 0.9, 0.99)
    assert not any(h["momentum"] in listed for h in store.meta()["initial_hparams"])
    explored = store.events("explore")
    assert explored and all(e.new_hparams["momentum"] in listed and e.new_hparams["lr"] <= 0.1 for e in explored)
    store.close()


def test_the_readme_stop_score_command_stops_the_example_early(tmp_path: Path) -> None:
    for name, code in example_files().items():
        (tmp_path / name).write_text(code)
    (command,) = re.findall(r"^(pbt-repro run mytask --stop-score .*?)\s+#", README, flags=re.M)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"WANDB_MODE": "disabled"}
    args = [str(Path(sys.executable).parent / "pbt-repro"), *shlex.split(command)[1:]]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "stopped: stop score 15 reached by member" in proc.stdout
    store = StoreReader(tmp_path / "runs" / "mytask-stop")
    assert store.meta()["status"] == "finished" and store.meta()["stop"]["reason"] == "stop_score"
    assert store.compute()["used_steps"] < store.compute()["planned_steps"]
    store.close()


def test_the_pbtconfig_table_is_generated_from_the_dataclass() -> None:
    assert with_table(README) == README, "run `python -m repro.docs` to regenerate the README's PBTConfig table"
