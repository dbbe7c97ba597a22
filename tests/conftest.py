import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "disabled")


def cli_environment(*paths: Path | str, **variables: str) -> dict[str, str]:
    """This process's environment plus ``variables``, with the repository (then ``paths``) first on PYTHONPATH: what
    ``python -m repro.cli`` needs in a subprocess started from any folder."""
    env = dict(os.environ, **variables)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *map(str, paths), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def cli_env() -> dict[str, str]:
    return cli_environment()


def cli(
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    cwd: Path | str = REPO,
    timeout: float = 120,
    check: bool = True,
    user: int | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -m repro.cli ARGS`` in a subprocess, as a user would, and capture both streams. With ``check``, a
    non-zero exit fails the test and shows the output; tests of refusals pass ``check=False`` and read the exit.
    ``user``: run as that user id (for permission tests)."""
    prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "repro.cli", *args],
        capture_output=True,
        text=True,
        env=cli_environment() if env is None else env,
        cwd=cwd,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def one_torch_thread():
    """In-process tests use one torch thread, as each worker does: tiny models only lose by sharing 2 cores, badly
    so on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def interrupt_training():
    """``interrupt(command, run_dir, cwd)``: start ``command`` in its own process group, wait until ``run_dir`` has
    trained some steps, then send SIGINT to the whole group, as Ctrl-C in a terminal does; the finished process."""
    from pbt.results import Results

    def interrupt(command: list[str], run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="disabled")
        # A shell starts a background job with SIGINT ignored, and Python keeps an ignored SIGINT ignored (no
        # KeyboardInterrupt): under a suite started in the background the run would never see Ctrl-C. A terminal's
        # foreground job, which this stands for, has the default disposition.
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "pbt.sqlite").is_file() and any(row["step"] > 0 for row in Results(run_dir).table()):
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"ended before it could be interrupted: {proc.communicate()}"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    return interrupt


def only_line(text: str) -> str:
    """The one non-blank line of ``text`` (fails if there are more or none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]
