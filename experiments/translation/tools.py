"""After a translation run: the test BLEU of a saved member (and what ``reproduce`` records for a finished run), and
the ``translate`` and ``test-bleu`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from experiments.common import open_saved_member
from experiments.translation import data
from experiments.translation.transformer import Config, Member, TranslationTask, make_task, translate


def open_member(run_dir: Path, which: str = "best", device: str = "") -> tuple[TranslationTask, Member, int]:
    """The task and loaded state of a run's member ``which`` (an id, or ``best``: the highest last score)."""
    task, state, chosen = open_saved_member(run_dir, which, Config, make_task, device=device)
    return task, state, chosen.id


def evaluate_test_bleu(task: TranslationTask, member: Member, beam: int = 0, limit: int = 0) -> dict[str, Any]:
    """Beam-search BLEU of a member on every test set of its dataset (the first ``limit`` sentences of each when
    ``limit`` > 0), with the sacrebleu signature."""
    cfg, beam = task.config, beam or task.config.beam_size
    scores = {}
    for split in task.splits["test"]:
        src, ref = data.read_pairs(task.data_dir, split, limit)
        hypotheses = translate(
            member.model, task.tokenizer, src, beam, cfg.max_len, cfg.eval_max_tokens, task.device, cfg.length_penalty
        )
        scores[split] = round(data.bleu(hypotheses, ref).score, 2)
    return {
        "bleu": scores,
        "beam_size": beam,
        "length_penalty": cfg.length_penalty,
        "step": member.step,
        "signature": data.bleu_signature(),
    }


def extra_results(run_dir: Path, test_limit: int = 0) -> dict[str, Any]:
    """What ``reproduce`` records for one finished run, while its checkpoints still exist: the beam-search BLEU of
    its best member (the highest last validation BLEU) on every test set (the first ``test_limit`` sentences of each
    when > 0), with the sacrebleu signature."""
    task, member, member_id = open_member(run_dir)
    result = evaluate_test_bleu(task, member, limit=test_limit)
    return {
        "member": member_id,
        "test_bleu": result.pop("bleu"),
        "sacrebleu_signature": result.pop("signature"),
        **result,
    }


def _member_args(argv: list[str], description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run_dir", type=Path, help="A translation run directory.")
    parser.add_argument("--member", default="best", help="Member id, or best (highest last score).")
    parser.add_argument("--beam", type=int, default=0, help="Beam width (default: the run's beam_size).")
    parser.add_argument("--device", default="", help="auto, cpu or cuda (default: the run's).")
    return parser.parse_args(argv)


def translate_command(argv: list[str]) -> int:
    args = _member_args(argv, "Translate English sentences from stdin (one per line) into German.")
    task, member, _ = open_member(args.run_dir, args.member, args.device)
    cfg = task.config
    sentences = [line.rstrip("\n") for line in sys.stdin]
    for line in translate(
        member.model,
        task.tokenizer,
        sentences,
        args.beam or cfg.beam_size,
        cfg.max_len,
        cfg.eval_max_tokens,
        task.device,
        cfg.length_penalty,
    ):
        print(line)
    return 0


def bleu_command(argv: list[str]) -> int:
    args = _member_args(argv, "Beam-search BLEU of a member on the test sets, as JSON.")
    task, member, member_id = open_member(args.run_dir, args.member, args.device)
    print(json.dumps({"member": member_id, **evaluate_test_bleu(task, member, args.beam)}, indent=2))
    return 0


COMMANDS = {
    "translate": ("Translate stdin with a run's member (--member best).", translate_command),
    "test-bleu": ("Beam-search test BLEU of a run's member, with the sacrebleu signature.", bleu_command),
}
