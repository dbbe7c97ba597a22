"""PB2's explore step (Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits"), chosen with ``PBTConfig.strategy = "pb2"``. Where PBT perturbs a copier's hyperparameters,
PB2 picks them with a time-varying Gaussian-process bandit (TV-GP-UCB, Bogunovic et al. 2016) fitted on what the
population's recent ready intervals taught; the exploit rule is PBT's, unchanged.

The data: each completed interval in the window (``IntervalRow``, kept by the store in the interval's own transaction)
is one point, ``(when it started, the hyperparameters it trained with) -> its score change per step``. Time is counted
in ready intervals before the decision's step (the interval about to be chosen starts at 0). The window holds the
intervals that started at most ``pb2_window`` ready intervals before the decision and ended at or before it (a member
deciding at step t sees the population as it was at t), so the GP sees at most ``population × pb2_window`` points
however long the run. Score changes are standardised over the window and clipped to ±2 standard deviations, as Ray
Tune's PB2 does, so that one lucky interval does not dominate.

The model: scikit-learn's ``GaussianProcessRegressor`` with kernel ``c · k_time · k_h + noise``. The time-varying part
of TV-GP-UCB, (1 − ε)^(|Δt|/2), equals exp(−|Δt|/ℓ) with ℓ = −2 / ln(1 − ε): scikit-learn's Matérn kernel with ν = ½
on the time column, ℓ ≥ 2/ln 2 ≈ 2.9 intervals (ε ≤ 0.5, Ray's bound on ε). ``k_h`` is an RBF on the hyperparameters.
c, both length scales and the noise are fitted by maximising the marginal likelihood.

The choice: the upper confidence bound μ(x) + κ·σ(x) (``pb2_kappa``) at time 0, maximised over the box [0, 1]^d:
``pb2_candidates`` random points and the copied values are scored, and the best is refined with L-BFGS-B. σ is the
posterior deviation of the function given also the values PB2 already gave other members at this step: their outcome
is not known yet, so they count as observed at the posterior mean, which leaves μ as it was and lowers σ there, and the
copiers of one round spread out (GP-BUCB, Desautels et al. 2014, as Ray Tune's PB2 does).

Which hyperparameters (Ray Tune's PB2 takes only real-valued bounds): a ``Uniform`` one is placed in [0, 1] linearly,
a ``LogUniform`` one in log space, an ``IntUniform`` one linearly and rounded to a whole number (and clipped) after the
acquisition is maximised. ``Categorical`` ones (and priors of any other kind) are not given to the GP: they keep PBT's
explore, ``PBTConfig.explore``. Before the window holds any interval (the first ready round: a fresh member's weights
have no score to start from), PB2 has nothing to learn from and every hyperparameter gets PBT's explore.

Everything random (the optimiser's restarts, the candidates) is drawn from the decision's ``random.Random``
(``pbt.algorithm.decision_rng``), so a serial run decides the same whether or not it was killed and resumed.
scikit-learn is an optional extra, imported only here and only when PB2 decides (``require`` checks for it first).
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pbt.config import PBTConfig
from pbt.rows import IntervalRow, oriented
from pbt.space import ConfigError, HParams, HValue, IntUniform, LogUniform, Prior, Uniform, explore

OP = "pb2"  # what an explore event's ops say of a hyperparameter PB2 chose
INSTALL = "pip install 'pbt-repro[pb2]'"
CLIP_SD = 2.0  # standardised score changes are clipped to ± this many standard deviations (Ray Tune's PB2)
MIN_TIME_SCALE = 2.0 / math.log(2.0)  # ε = 0.5 in (1 − ε)^(|Δt|/2): the most forgetting TV-GP-UCB allows
# Extra starts of the marginal-likelihood optimiser from random (seeded) kernel parameters: none, since one start
# from the values in ``_kernel`` suits standardised targets and a second doubles a decision's time.
GP_RESTARTS = 0
REFINE_ITERATIONS = 30  # L-BFGS-B iterations that refine the best candidate
# ... and the acquisition evaluations they may take, finite-difference gradients included. At three dimensions a
# refinement takes 24 to 56, but one whose line search failed took 148: half again a decision's time. Past the
# budget the refinement stops at the best point it evaluated.
REFINE_EVALUATIONS = 60


class _OutOfEvaluations(Exception):
    pass


def require() -> None:
    """Raise a one-line ``ConfigError`` naming the extra to install unless scikit-learn can be imported."""
    _sklearn()


def _sklearn() -> Any:
    try:
        from sklearn import exceptions, gaussian_process
        from sklearn.gaussian_process import kernels
    except ImportError:
        raise ConfigError(f"strategy pb2 needs scikit-learn, which is not installed: {INSTALL}") from None
    return gaussian_process.GaussianProcessRegressor, kernels, exceptions.ConvergenceWarning


@functools.cache
def _blas_threads() -> Any:
    _sklearn()  # a controller limits only the BLAS libraries loaded when it is made: scikit-learn's and scipy's too
    import scipy.optimize  # noqa: F401
    from threadpoolctl import ThreadpoolController  # installed with scikit-learn

    return ThreadpoolController()


def one_blas_thread() -> Any:
    """A context in which numpy's and scipy's BLAS use one thread: the GP's matrices (population × window rows) are
    too small to gain from more, and on cores already busy (workers train on them) threaded BLAS made a decision 20
    times slower."""
    return _blas_threads().limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class History:
    """What PB2 learns from, as the store holds it when a member decides: completed intervals (``Store.intervals``;
    those outside the window are ignored), and the hyperparameters PB2 already gave other members at the decision's
    step (their explore events), whose outcome is still to come."""

    intervals: tuple[IntervalRow, ...] = ()
    pending: tuple[HParams, ...] = ()


@dataclass(frozen=True)
class Dimension:
    """A hyperparameter PB2 searches, placed in [0, 1] by its prior."""

    name: str
    prior: Uniform | IntUniform

    def _ends(self) -> tuple[float, float]:
        if isinstance(self.prior, LogUniform):
            return math.log(self.prior.low), math.log(self.prior.high)
        return float(self.prior.low), float(self.prior.high)

    def to_unit(self, value: HValue) -> float:
        low, high = self._ends()
        x = math.log(float(value)) if isinstance(self.prior, LogUniform) else float(value)
        return 0.0 if high == low else (x - low) / (high - low)

    def from_unit(self, u: float) -> HValue:
        """The prior's value at ``u`` (rounded for an integer prior), within its bounds."""
        low, high = self._ends()
        x = low + min(max(float(u), 0.0), 1.0) * (high - low)
        return self.prior.clip(math.exp(x) if isinstance(self.prior, LogUniform) else x)


def searched(space: dict[str, Prior]) -> list[Dimension]:
    """The hyperparameters PB2 searches, in the space's order: those with a uniform, log-uniform or integer prior."""
    return [Dimension(name, prior) for name, prior in space.items() if isinstance(prior, (Uniform, IntUniform))]


def window(intervals: Sequence[IntervalRow], step: int, cfg: PBTConfig) -> list[IntervalRow]:
    """The intervals the GP is fitted on for a decision at ``step``: those that started at most ``pb2_window`` ready
    intervals before it and ended at or before it, by start step and member."""
    earliest = step - cfg.pb2_window * cfg.ready_every
    kept = [iv for iv in intervals if iv.start_step >= earliest and iv.end_step <= step and iv.end_step > iv.start_step]
    return sorted(kept, key=lambda iv: (iv.start_step, iv.member))


def training_data(
    history: History, dims: Sequence[Dimension], step: int, cfg: PBTConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The GP's inputs (time in ready intervals before ``step``, then each searched hyperparameter in [0, 1]) and
    targets (fitness change per step, ``pbt.rows.oriented``: a falling loss is a gain; standardised and clipped) of
    the intervals in the window."""
    rows = [iv for iv in window(history.intervals, step, cfg) if all(d.name in iv.hparams for d in dims)]
    x = np.array(
        [[(iv.start_step - step) / cfg.ready_every, *(d.to_unit(iv.hparams[d.name]) for d in dims)] for iv in rows],
        dtype=float,
    ).reshape(len(rows), 1 + len(dims))
    change = np.array(
        [oriented(iv.end_score - iv.start_score, cfg.mode) / (iv.end_step - iv.start_step) for iv in rows], dtype=float
    )
    spread = change.std() if len(change) else 0.0
    y = np.zeros_like(change) if spread == 0.0 else np.clip((change - change.mean()) / spread, -CLIP_SD, CLIP_SD)
    return x, y


@functools.cache
def _on_columns_kernel() -> type:
    """A scikit-learn kernel that applies another to some input columns only (made on first use: scikit-learn is an
    optional extra), so time and hyperparameters get kernels of their own whose product is TV-GP-UCB's."""
    _, kernels, _ = _sklearn()

    class OnColumns(kernels.Kernel):  # type: ignore[misc, name-defined]
        def __init__(self, kernel: Any, columns: tuple[int, ...]):
            self.kernel = kernel
            self.columns = columns

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            params = {"kernel": self.kernel, "columns": self.columns}
            if deep:
                params.update((f"kernel__{k}", v) for k, v in self.kernel.get_params().items())
            return params

        @property
        def hyperparameters(self) -> list[Any]:
            return [
                kernels.Hyperparameter(f"kernel__{h.name}", h.value_type, h.bounds, h.n_elements)
                for h in self.kernel.hyperparameters
            ]

        @property
        def theta(self) -> np.ndarray:
            return self.kernel.theta

        @theta.setter
        def theta(self, theta: np.ndarray) -> None:
            self.kernel.theta = theta

        @property
        def bounds(self) -> np.ndarray:
            return self.kernel.bounds

        def __call__(self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False) -> Any:
            cols = list(self.columns)
            return self.kernel(X[:, cols], None if Y is None else Y[:, cols], eval_gradient=eval_gradient)

        def diag(self, X: np.ndarray) -> np.ndarray:
            return self.kernel.diag(X[:, list(self.columns)])

        def is_stationary(self) -> bool:
            return self.kernel.is_stationary()

        def __eq__(self, other: object) -> bool:
            return type(self) is type(other) and self.kernel == other.kernel and self.columns == other.columns

        def __repr__(self) -> str:
            return f"{self.kernel!r} on columns {list(self.columns)}"

    return OnColumns


def _kernel(dims: int) -> Any:
    """c · Matérn-½(time) · RBF(hyperparameters) + noise, with starting values for standardised targets."""
    _, kernels, _ = _sklearn()
    on_columns = _on_columns_kernel()
    signal = kernels.ConstantKernel(1.0, (1e-2, 1e2)) * on_columns(
        kernels.Matern(length_scale=10.0, length_scale_bounds=(MIN_TIME_SCALE, 1e5), nu=0.5), (0,)
    )
    if dims:
        signal = signal * on_columns(
            kernels.RBF(length_scale=0.5, length_scale_bounds=(0.05, 20.0)), tuple(range(1, dims + 1))
        )
    return signal + kernels.WhiteKernel(noise_level=0.1, noise_level_bounds=(1e-5, 2.0))


def upper_confidence_bound(x: np.ndarray, y: np.ndarray, pending: np.ndarray, kappa: float, rng: random.Random) -> Any:
    """Fit the GP to ``(x, y)`` and return ``ucb(u)``: μ + κ·σ of hyperparameter points ``u`` (rows in [0, 1]^d) at
    time 0. σ is the deviation of the function (the fitted noise left out), given also the ``pending`` points with
    their posterior mean as outcome (GP-BUCB's hallucinated observations: μ stays as it was, σ shrinks there)."""
    regressor, _, convergence_warning = _sklearn()
    gp = regressor(
        kernel=_kernel(x.shape[1] - 1),
        alpha=1e-8,
        n_restarts_optimizer=GP_RESTARTS,
        random_state=np.random.RandomState(rng.getrandbits(32)),
    )
    with warnings.catch_warnings():  # a kernel parameter at its bound is an answer here (no drift in time, say)
        warnings.simplefilter("ignore", convergence_warning)
        gp.fit(x, y)
    signal, noise = gp.kernel_.k1, gp.kernel_.k2.noise_level  # the kernel is signal + WhiteKernel
    model = regressor(kernel=signal, alpha=noise + 1e-8, optimizer=None)
    if len(pending):
        model.fit(np.vstack([x, pending]), np.concatenate([y, gp.predict(pending)]))
    else:
        model.fit(x, y)

    def ucb(u: np.ndarray) -> np.ndarray:
        mean, sd = model.predict(np.column_stack([np.zeros(len(u)), u]), return_std=True)
        return mean + kappa * sd

    return ucb


def maximise(ucb: Any, start: np.ndarray, candidates: int, rng: random.Random) -> np.ndarray:
    """The point of [0, 1]^d where ``ucb`` is highest, as found from ``candidates`` random points and ``start``,
    the best of them refined by L-BFGS-B within the box."""
    from scipy.optimize import minimize  # here, not at import: it costs every worker process half a second

    draws = np.random.default_rng(rng.getrandbits(64)).random((candidates, len(start)))
    points = np.vstack([np.clip(start, 0.0, 1.0), draws])
    values = ucb(points)
    best = int(np.argmax(values))
    evaluated: list[tuple[float, np.ndarray]] = []

    def objective(u: np.ndarray) -> float:
        if len(evaluated) == REFINE_EVALUATIONS:  # L-BFGS-B's maxfun is checked between line searches only
            raise _OutOfEvaluations
        evaluated.append((ucb(u[None, :])[0], u.copy()))
        return -evaluated[-1][0]

    try:
        refined = minimize(
            objective,
            points[best],
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * len(start),
            options={"maxiter": REFINE_ITERATIONS},
        ).x
    except _OutOfEvaluations:
        refined = max(evaluated, key=lambda seen: seen[0])[1]
    u = np.clip(refined, 0.0, 1.0)
    return u if ucb(u[None, :])[0] > values[best] else points[best]


def choose(
    hparams: HParams, space: dict[str, Prior], history: History, step: int, cfg: PBTConfig, rng: random.Random
) -> tuple[HParams, dict[str, str]]:
    """PB2's explore step for a member at ``step`` holding ``hparams`` (just copied): new values for the hyperparameters
    it searches, chosen by the GP bandit on ``history``; PBT's explore for the others (and for all of them while the
    window is empty). Returns the new hyperparameters and, per key, what was done (``"pb2"``, or PBT's ``"* 1.2"``)."""
    dims = searched(space)
    others = {name: prior for name, prior in space.items() if name not in {d.name for d in dims}}
    x, y = training_data(history, dims, step, cfg)
    if not dims or not len(y):
        return explore(hparams, space, rng, cfg.explore, cfg.perturb_factors, cfg.resample_probability, cfg.noise_std)
    new, ops = explore(hparams, others, rng, cfg.explore, cfg.perturb_factors, cfg.resample_probability, cfg.noise_std)
    pending = np.array(
        [[0.0, *(d.to_unit(p[d.name]) for d in dims)] for p in history.pending if all(d.name in p for d in dims)],
        dtype=float,
    ).reshape(-1, 1 + len(dims))
    with one_blas_thread():
        ucb = upper_confidence_bound(x, y, pending, cfg.pb2_kappa, rng)
        best = maximise(ucb, np.array([d.to_unit(hparams[d.name]) for d in dims]), cfg.pb2_candidates, rng)
    for d, u in zip(dims, best):
        new[d.name] = d.from_unit(float(u))
        ops[d.name] = OP
    return new, ops
