"""How much of a search's best result is luck: PBO by CSCV and the deflated Sharpe ratio.

Both are pure numpy functions of the trials' per-period (daily) returns.

- Bailey, Borwein, López de Prado, Zhu, "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4), 2017: combinatorially symmetric cross-validation
  (CSCV). The T × N matrix of N trials' returns is cut into S equal row blocks; for each of
  the C(S, S/2) ways to pick half of the blocks as in-sample (the rest, out-of-sample), take
  the trial n* with the best in-sample Sharpe, its out-of-sample relative rank
  ω̄ = rank(R̄[n*]) / (N + 1) (rank 1 = worst) and the logit λ = ln(ω̄ / (1 − ω̄)).
  PBO = the share of combinations with λ ≤ 0: how often the in-sample best is at or below
  the out-of-sample median.
- Bailey, López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 2014:
  DSR = Φ[(SR̂ − SR₀) √(T − 1) / √(1 − γ̂₃ SR̂ + (γ̂₄ − 1)/4 · SR̂²)] with the expected
  maximum Sharpe of N unskilled trials
  SR₀ = √V[SR̂ₙ] · ((1 − γ) Φ⁻¹[1 − 1/N] + γ Φ⁻¹[1 − 1/(N e)]), γ the Euler–Mascheroni
  constant, SR̂ the chosen trial's per-period Sharpe over T returns, γ̂₃ its skewness and
  γ̂₄ its (non-excess) kurtosis. DSR is the probability that the true Sharpe is above zero
  after the selection; 0.95 is the usual bar for "significant".

Conventions here: Sharpe = mean / sample std (ddof = 1) of the per-period returns, not
annualised, and 0 where the std is 0; skewness and kurtosis are the population moments (as
scipy.stats with bias=True). V[SR̂ₙ] is the sample variance across trials, but never less
than 1 / (T − 1), the variance of a Sharpe estimate from T normal returns when the true
Sharpe is 0 (Lo 2002; the paper's eq. for V[SR̂] at SR = 0). The paper assumes independent
trials; an adaptive sampler proposes near-copies of its best, whose narrow spread would
understate what luck alone reaches. The floor keeps the deflation conservative.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
EULER_GAMMA = 0.5772156649015329
SIGNIFICANT = 0.95
_NORMAL = NormalDist()


def sharpe_columns(returns: F64) -> F64:
    """Per-period Sharpe of each column (mean / sample std), 0 where the std is 0."""
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[0] < 2:
        return np.zeros(r.shape[1] if r.ndim == 2 else 1)
    mean = r.mean(axis=0)
    std = r.std(axis=0, ddof=1)
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, mean / safe, 0.0)


@dataclass(frozen=True)
class Pbo:
    pbo: float
    logits: list[float]
    splits: int
    combinations: int


def choose_splits(n_obs: int, wanted: int = 16) -> int | None:
    """The even block count S ≤ ``wanted`` that leaves at least two returns per block."""
    s = min(wanted, n_obs // 2)
    s -= s % 2
    return s if s >= 2 else None


def _relative_rank(values: F64, j: int) -> float:
    """ω̄: the 1-based ascending rank of values[j] (ties share the average) over N + 1."""
    less = int(np.sum(values < values[j]))
    equal = int(np.sum(values == values[j]))
    return (less + (equal + 1) / 2.0) / (len(values) + 1)


def cscv_pbo(returns: F64, splits: int = 16) -> Pbo:
    """Probability of backtest overfitting of a T × N matrix of trials' returns (CSCV).

    The oldest ``T mod S`` rows are dropped so the S blocks are equal. Needs N ≥ 2.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError("CSCV needs a T x N matrix with at least two trials")
    if splits < 2 or splits % 2:
        raise ValueError("the number of blocks must be even and at least 2")
    t = r.shape[0] - r.shape[0] % splits
    if t < 2 * splits:
        raise ValueError(f"{r.shape[0]} returns are too few for {splits} blocks")
    blocks = r[r.shape[0] - t :].reshape(splits, t // splits, r.shape[1])
    logits = []
    for chosen in itertools.combinations(range(splits), splits // 2):
        rest = [b for b in range(splits) if b not in chosen]
        ins = sharpe_columns(blocks[list(chosen)].reshape(-1, r.shape[1]))
        oos = sharpe_columns(blocks[rest].reshape(-1, r.shape[1]))
        omega = _relative_rank(oos, int(np.argmax(ins)))
        logits.append(math.log(omega / (1.0 - omega)))
    pbo = sum(1 for lam in logits if lam <= 0.0) / len(logits)
    return Pbo(pbo=pbo, logits=logits, splits=splits, combinations=len(logits))


def expected_max_sharpe(trial_sharpes: F64, n_obs: int | None = None) -> float:
    """SR₀: the Sharpe the best of N unskilled trials reaches by luck (0 for one trial).

    With ``n_obs`` (T), the variance across trials is floored at 1 / (T − 1).
    """
    srs = np.asarray(trial_sharpes, dtype=np.float64)
    n = len(srs)
    if n < 2:
        return 0.0
    variance = float(np.var(srs, ddof=1))
    if n_obs is not None and n_obs > 1:
        variance = max(variance, 1.0 / (n_obs - 1))
    spread = math.sqrt(variance)
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return spread * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


@dataclass(frozen=True)
class Deflated:
    sharpe: float  # per period
    sharpe0: float  # expected maximum under no skill
    skewness: float
    kurtosis: float
    n_obs: int
    n_trials: int
    probability: float | None  # DSR; None when the returns are too few or degenerate

    @property
    def significant(self) -> bool:
        return self.probability is not None and self.probability >= SIGNIFICANT


def moments(returns: F64) -> tuple[float, float]:
    """Population skewness and (non-excess) kurtosis; (0, 3) for a constant series."""
    r = np.asarray(returns, dtype=np.float64)
    dev = r - r.mean()
    m2 = float(np.mean(dev**2))
    if m2 == 0.0:
        return 0.0, 3.0
    return float(np.mean(dev**3)) / m2**1.5, float(np.mean(dev**4)) / m2**2


def deflated_sharpe(returns: F64, trial_sharpes: F64) -> Deflated:
    """DSR of the chosen trial's per-period ``returns`` given all trials' Sharpe ratios."""
    r = np.asarray(returns, dtype=np.float64)
    sr = float(sharpe_columns(r.reshape(-1, 1))[0]) if len(r) >= 2 else 0.0
    sr0 = expected_max_sharpe(trial_sharpes, len(r))
    skew, kurt = moments(r) if len(r) else (0.0, 3.0)
    n = len(r)
    prob: float | None = None
    if n >= 2:
        denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
        if denom > 0.0:
            prob = _NORMAL.cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(denom))
    return Deflated(sr, sr0, skew, kurt, n, len(np.asarray(trial_sharpes)), prob)
