"""Peak memory of this process and all its descendants (worker processes included), sampled from /proc (Linux)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in tree}
        tree |= frontier
    return tree


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the tree. RSS counts shared pages (torch's libraries, memory-mapped data) once
    per process; PSS splits them between the processes sharing them, so its sum is the tree's real footprint."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.endswith("kB")}
        rss, pss = rss + fields.get("Rss", 0), pss + fields.get("Pss", 0)
    return rss, pss


class PeakMemory:
    """Samples ``tree_memory`` of this process in a thread while in a ``with`` block; ``peak_rss`` / ``peak_pss``."""

    def __init__(self, every_s: float = 0.5):
        self.every_s, self.peak_rss, self.peak_pss, self._stop = every_s, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            rss, pss = tree_memory(os.getpid())
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
