"""The translation experiment: tokeniser, BLEU, data-path errors, checkpoints, dropout after a copy, and the smoke
profile through PBT. Data comes from the offline Multi30k copy beside the repository (``../shared/data/multi30k``)."""

from __future__ import annotations

import io
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from experiments.translation import data
from experiments.translation.tools import evaluate_test_bleu, extra_results, open_member, translate_command
from experiments.translation.transformer import (
    PROFILES,
    AttentionDropout,
    Member,
    ReluDropout,
    ResidualDropout,
    make_task,
    translate,
)
from pbt.config import replace_fields
from pbt.experiment import run_experiment
from pbt.space import ConfigError
from pbt.store import StoreReader

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MULTI30K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"
MODULE = "experiments.translation.transformer"
H1 = {"lr": 1e-3, "attention_dropout": 0.1, "residual_dropout": 0.2, "relu_dropout": 0.3}
H2 = {"lr": 2e-4, "attention_dropout": 0.35, "residual_dropout": 0.05, "relu_dropout": 0.45}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("translation-cache")


def smoke_config(cache_dir: Path, **overrides: object):
    return replace_fields(PROFILES["smoke"], {"data_dir": str(MULTI30K), "cache_dir": str(cache_dir), **overrides})


def dropout_rates(member: Member) -> dict[str, set[float]]:
    kinds = {"attention_dropout": AttentionDropout, "residual_dropout": ResidualDropout, "relu_dropout": ReluDropout}
    return {name: {m.p for m in member.model.modules() if type(m) is kind} for name, kind in kinds.items()}


def test_tokenizer_round_trips_text(cache_dir: Path) -> None:
    src, tgt = data.read_pairs(MULTI30K, "train", 400)
    tokenizer = data.cached_tokenizer(src, tgt, 400, cache_dir)
    unseen = data.read_lines(MULTI30K / "val.de", 20) + data.read_lines(MULTI30K / "val.en", 20)
    odd = ["Größe: 3½ €, naïve Café — 日本語 ✓", "  two  spaces and a tab\there ", "", "ÄÖÜ äöü ß"]
    for sentence in unseen + odd:
        ids = data.encode(tokenizer, [sentence], max_len=1000)[0]
        assert ids[-1] == data.EOS
        assert data.decode(tokenizer, ids) == sentence
    # subwords, not bytes: the vocabulary merged frequent pieces, so common sentences need fewer ids than bytes
    assert tokenizer.get_vocab_size() <= 400
    n_ids = sum(len(ids) for ids in data.encode(tokenizer, src[:50], 1000))
    n_bytes = sum(len(s.encode()) for s in src[:50])
    assert n_ids < 0.7 * n_bytes
    # the cache hands back the same tokeniser instead of training another
    assert data.cached_tokenizer(src, tgt, 400, cache_dir).to_str() == tokenizer.to_str()


def test_bleu_of_references_is_100_and_of_empty_output_is_0() -> None:
    refs = data.read_lines(MULTI30K / "val.de", 100)
    assert data.bleu(refs, refs).score == pytest.approx(100.0)
    assert data.bleu([""] * len(refs), refs).score == 0.0
    assert data.chunk_bleus(refs, refs, 10) == pytest.approx((100.0,) * 10)
    assert data.chunk_bleus([""] * len(refs), refs, 10) == (0.0,) * 10
    assert "tok:13a" in data.bleu_signature() and "nrefs:1" in data.bleu_signature()


def test_missing_data_gives_a_clear_error_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PBT_MULTI30K_DIR", raising=False)
    monkeypatch.delenv("PBT_WMT14_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"config\.data_dir \(or \$PBT_MULTI30K_DIR\)"):
        make_task(smoke_config(tmp_path, data_dir=str(tmp_path / "nowhere")))
    monkeypatch.setenv("PBT_MULTI30K_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"missing train\.en.*config\.data_dir"):
        make_task(smoke_config(tmp_path, data_dir=""))
    monkeypatch.delenv("PBT_MULTI30K_DIR")
    with pytest.raises(ConfigError, match=r"config\.data_dir \(or set \$PBT_WMT14_DIR\)"):
        make_task(PROFILES["paper"])

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)  # no flag, no variable: the download is tried, and fails
    with pytest.raises(ConfigError, match=r"could not download Multi30k.*when offline pass config\.data_dir"):
        make_task(smoke_config(tmp_path, data_dir=""))

    # the same message reaches a user of the command line naming the flag, as one line and exit status 2
    from repro.cli import main

    assert main(["run", "translation", "--profile", "smoke", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "Traceback" not in err


def test_checkpoint_round_trip_gives_the_same_translation(tmp_path: Path, cache_dir: Path) -> None:
    task = make_task(smoke_config(cache_dir))
    member = task.make(H1, seed=3)
    task.train(member, H1, 10)
    sentences = task.val_src[:12]
    greedy = translate(member.model, task.tokenizer, sentences, 1, 40, 4000, task.device)
    beam = translate(member.model, task.tokenizer, sentences, 4, 40, 4000, task.device)
    task.save(member, tmp_path / "m.ckpt")
    loaded = task.load(tmp_path / "m.ckpt")
    assert translate(loaded.model, task.tokenizer, sentences, 1, 40, 4000, task.device) == greedy
    assert translate(loaded.model, task.tokenizer, sentences, 4, 40, 4000, task.device) == beam
    assert any(greedy) and len(greedy) == len(sentences)
    # everything training depends on was saved (optimiser, batch order, dropout RNG): both continue identically
    assert task.train(loaded, H1, 3)["loss"] == pytest.approx(task.train(member, H1, 3)["loss"], rel=1e-6)

    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="not a checkpoint of this experiment"):
        task.load(tmp_path / "foreign.ckpt")


def test_copied_member_trains_with_its_new_dropouts_and_lr(tmp_path: Path, cache_dir: Path) -> None:
    task = make_task(smoke_config(cache_dir))
    donor = task.make(H1, seed=0)
    task.train(donor, H1, 2)
    task.save(donor, tmp_path / "donor.ckpt")
    copy = task.load(tmp_path / "donor.ckpt")  # exploit: the donor's weights ...
    assert dropout_rates(copy) == {k: {H1[k]} for k in dropout_rates(copy)}
    task.train(copy, H2, 1)  # ... explore: perturbed hyperparameters, in force from the first step
    assert dropout_rates(copy) == {k: {H2[k]} for k in dropout_rates(copy)}
    assert all(len(rates) == 1 for rates in dropout_rates(copy).values())
    assert [g["lr"] for g in copy.optimizer.param_groups] == [H2["lr"]]
    assert dropout_rates(donor) == {k: {H1[k]} for k in dropout_rates(donor)}  # the donor is untouched
    # one module of each kind per place it is used: 2 attentions + 1 FFN in the 1-layer smoke decoder, etc.
    assert sum(type(m) is AttentionDropout for m in copy.model.modules()) == 3


def test_smoke_through_pbt_exploits_and_the_copies_train_with_new_dropouts(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # truncation at population 4 makes the bottom member copy the top one at every ready event, so copies are certain
    config = smoke_config(cache_dir, exploit="truncation", executor="serial", workers=1)
    store = run_experiment(MODULE, config, tmp_path / "run", domain="translation")
    members = store.members()
    assert all(m.status == "done" and m.step == config.pbt.budget_steps for m in members)
    exploits, explores = store.events("exploit"), store.events("explore")
    assert exploits and len(explores) == len(exploits)
    for explore in explores:
        assert explore.old_hparams != explore.new_hparams
    task = make_task(config)
    for m in members:  # each final checkpoint's modules carry the member's own (perturbed, if copied) rates
        state = task.load(store.checkpoint_dir / str(m.checkpoint))
        assert dropout_rates(state) == {k: {m.hparams[k]} for k in dropout_rates(state)}
        assert len(m.samples) == config.bleu_chunks
    copied = {e.member for e in exploits}
    last_explore = {e.member: e for e in explores}
    assert any(members[i].hparams == last_explore[i].new_hparams != last_explore[i].old_hparams for i in copied)

    # the translate command: best member, sentences from stdin, one line out per line in
    monkeypatch.setattr(sys, "stdin", io.StringIO("A man is riding a bike.\nTwo dogs play in the snow.\n"))
    capsys.readouterr()
    assert translate_command([str(store.run_dir), "--member", "best", "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    # test BLEU of a saved member, on every Multi30k test set, with the sacrebleu signature
    task, state, _ = open_member(store.run_dir, "best")
    result = evaluate_test_bleu(task, state, beam=2, limit=8)
    assert set(result["bleu"]) == {"test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr"}
    assert result["signature"] == data.bleu_signature()
    # what reproduce records for a finished run: the same numbers for its best member
    extra = extra_results(store.run_dir, test_limit=8)
    assert extra["test_bleu"] == evaluate_test_bleu(task, state, limit=8)["bleu"]
    assert extra["member"] == max(members, key=lambda m: m.score).id
    assert extra["sacrebleu_signature"] == data.bleu_signature()
    store.close()


def test_smoke_profile_runs_from_the_command_line(tmp_path: Path, cache_dir: Path) -> None:
    """The profile as a user runs it: t-test exploit, two worker processes."""
    from repro.cli import main

    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "translation",
                "--profile",
                "smoke",
                "--data-dir",
                str(MULTI30K),
                "--cache-dir",
                str(cache_dir),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    store = StoreReader(out)
    assert store.meta()["status"] == "finished"
    assert all(m.status == "done" and len(m.samples) == 10 for m in store.members())
    assert len(store.scores()) == 4 * 4  # 4 members x 4 ready intervals, one evaluation each
    store.close()
