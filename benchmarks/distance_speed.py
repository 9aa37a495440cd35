"""How fast are the alignment distances, and how far is our OTDD from a straightforward one?

For each size n (samples per side; 384-dim features, 10 classes, seeded Gaussian blobs with
class structure on both sides) and each metric (OTDD with exact or Gaussian label distances
and a Sinkhorn or exact outer problem, MMD, sliced Wasserstein): fit_source time, time per
call (forward, and forward + backward; mean of --repeats after one warm-up call) and peak
memory. For OTDD, the same value computed by a straightforward reference (label distances
recomputed per call, one POT problem per class pair, explicit augmented cost, POT outer
solver with the same epsilon) gives the speed-up and the relative difference of the values.
The floor is the time of one n x n squared-distance matrix (one matmul).

    python benchmarks/distance_speed.py --sizes 1000 5000 10000
    python benchmarks/distance_speed.py --smoke         # n = 200, one repeat (seconds)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ot
import torch
from _report import write_report  # benchmarks/ is on sys.path when run as a script
from threadpoolctl import threadpool_limits

from orca_automl.alignment import EMD_MAX_ITER, class_clouds, create_metric, squared_distances

DIM = 384
CLASSES = 10
RANK = 8  # rank of each class's structured covariance (plus isotropic noise)
REG = 0.1  # our default entropic regularisation, relative to the largest source-source cost
MAX_POINTS = 200  # our default max_points_per_class for exact label distances
SINKHORN_ITER = 1000  # our default Sinkhorn iteration cap (max_iter)
SINKHORN_TOL = 1e-6  # our default tolerance: l1 error of the marginals (total mass 1)


@dataclass(frozen=True)
class Method:
    """One row's metric: registry name, its parameters, and the reference's settings."""

    name: str
    params: dict[str, object] = field(default_factory=dict)
    labels: str | None = None  # OTDD label distances: "exact" or "gaussian"; None: no reference

    @property
    def outer(self) -> str:
        return str(self.params.get("outer", "-"))


METHODS = (
    Method("otdd_exact", {"outer": "sinkhorn"}, "exact"),
    Method("otdd_exact", {"outer": "exact"}, "exact"),
    Method("otdd_gaussian", {"outer": "sinkhorn"}, "gaussian"),
    Method("otdd_gaussian", {"outer": "exact"}, "gaussian"),
    Method("mmd"),
    Method("sliced_wasserstein"),
)


def blobs(n: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """n points in DIM dims, CLASSES balanced classes: a random mean per class, a random
    rank-RANK covariance per class, isotropic noise; every coordinate shifted by `shift`."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % CLASSES)
    x = rng.normal(0.0, 0.5, (n, DIM)) + shift
    for c in range(CLASSES):
        members = labels == c
        basis = rng.normal(0.0, 0.25, (RANK, DIM))
        x[members] += rng.normal(0.0, 1.0, DIM) + rng.normal(size=(members.sum(), RANK)) @ basis
    return x.astype(np.float32), labels.astype(np.int64)


# ----------------------------------------------------------------------------- memory
_LIBC = ctypes.CDLL("libc.so.6")


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field_name + ":"))
    return int(line.split()[1])


@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Peak resident memory (MB) above the level at entry, for the code inside the block.

    Freed memory is first handed back to the OS (gc, glibc malloc_trim) and the kernel's
    high-water mark is reset (/proc/self/clear_refs), so earlier measurements do not count
    and reused freed pages do not hide new ones. Linux only.
    """
    gc.collect()
    _LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status_kb("VmRSS")
    result: dict[str, float] = {}
    yield result
    result["peak_mb"] = (_status_kb("VmHWM") - start) / 1024


def mean_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time of `fn` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.mean(times)


# ----------------------------------------------------------------------------- ours
@dataclass
class Measured:
    fit_s: float
    value_s: float
    forward_s: float
    total_s: float
    value: float
    peak_mb: float


def measure_ours(method: Method, source: tuple[np.ndarray, np.ndarray],
                 target: tuple[np.ndarray, np.ndarray], repeats: int) -> Measured:
    """fit_source once, then forward and forward + backward per call (warm-up + repeats)."""
    xs, ys = torch.from_numpy(source[0]), torch.from_numpy(source[1])
    xt, yt = torch.from_numpy(target[0]).requires_grad_(), torch.from_numpy(target[1])
    metric = create_metric(method.name, **method.params)
    value_only: list[float] = []
    forward: list[float] = []
    total: list[float] = []
    with peak_memory() as memory:
        start = time.perf_counter()
        metric.fit_source(xs, ys)
        fit_s = time.perf_counter() - start
        with torch.no_grad():
            for _ in range(repeats + 1):
                start = time.perf_counter()
                metric(xt, yt)
                value_only.append(time.perf_counter() - start)
        for _ in range(repeats + 1):
            xt.grad = None
            start = time.perf_counter()
            loss = metric(xt, yt)
            middle = time.perf_counter()
            loss.backward()
            forward.append(middle - start)
            total.append(time.perf_counter() - start)
    return Measured(fit_s, statistics.mean(value_only[1:]), statistics.mean(forward[1:]),
                    statistics.mean(total[1:]), float(loss.detach()), memory["peak_mb"])


# ------------------------------------------------------------------------ reference
def reference_exact_labels(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """W2^2 between every pair of class clouds: one `ot.emd2` per pair, float64."""
    out = np.zeros((len(a), len(b)))
    for i, xa in enumerate(a):
        for j, xb in enumerate(b):
            cost = ot.dist(xa, xb)
            out[i, j] = ot.emd2(ot.unif(len(xa)), ot.unif(len(xb)), cost, numItermax=EMD_MAX_ITER)
    return out


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root from eigh with clamped eigenvalues (exact for rank-deficient
    covariances, where POT's bures_wasserstein_distance returns NaN)."""
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(values.clip(min=0.0))) @ vectors.T


def reference_bures_labels(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Squared Bures-Wasserstein distance between the ML Gaussians of each pair of classes.

    One BLAS thread: on 384 x 384 eigenproblems two threads ran ~7x slower here.
    """
    with threadpool_limits(1):
        return _bures_labels(a, b)


def _bures_labels(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    stats_a = [(x.mean(0), np.cov(x, rowvar=False, bias=True)) for x in a]
    stats_b = [(x.mean(0), np.cov(x, rowvar=False, bias=True)) for x in b]
    out = np.zeros((len(a), len(b)))
    for i, (mean_a, cov_a) in enumerate(stats_a):
        root = _psd_sqrt(cov_a)
        for j, (mean_b, cov_b) in enumerate(stats_b):
            middle = np.linalg.eigvalsh(root @ cov_b @ root).clip(min=0.0)
            out[i, j] = max(0.0, float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a)
                                       + np.trace(cov_b) - 2.0 * np.sqrt(middle).sum()))
    return out


def reference_otdd(method: Method, source: tuple[np.ndarray, np.ndarray],
                   target: tuple[np.ndarray, np.ndarray]) -> tuple[float, int]:
    """Straightforward OTDD value, everything recomputed: returns (value, Sinkhorn problems
    that hit the iteration cap)."""
    (xs, ys), (xt, yt) = source, target
    xs64, xt64 = xs.astype(np.float64), xt.astype(np.float64)

    def clouds(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        if method.labels == "gaussian":  # every point, as ours
            return [x[y == c] for c in range(CLASSES)]
        # the same seeded subsets of at most MAX_POINTS points per class as ours
        subsets = class_clouds(torch.from_numpy(x), torch.from_numpy(y), CLASSES, MAX_POINTS, 0)
        return [s.numpy() for s in subsets]

    labels = reference_bures_labels if method.labels == "gaussian" else reference_exact_labels
    cs, ct = clouds(xs64, ys), clouds(xt64, yt)

    def augmented(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray,
                  w: np.ndarray) -> np.ndarray:
        return ot.dist(xa, xb) + w[ya][:, yb]

    cross = augmented(xs64, ys, xt64, yt, labels(cs, ct))
    a, b = ot.unif(len(xs)), ot.unif(len(xt))
    if method.outer == "exact":
        return float(ot.emd2(a, b, cross, numItermax=EMD_MAX_ITER)), 0
    source_cost = augmented(xs64, ys, xs64, ys, labels(cs, cs))
    target_cost = augmented(xt64, yt, xt64, yt, labels(ct, ct))
    eps = REG * source_cost.max()

    def sinkhorn(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> float:
        # POT stops on the l2 marginal error; / sqrt(m) makes its l1 error <= our tolerance
        return float(ot.sinkhorn2(p, q, cost, eps, numItermax=SINKHORN_ITER,
                                  stopThr=SINKHORN_TOL / np.sqrt(len(q)), warn=True))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = (sinkhorn(a, b, cross) - 0.5 * sinkhorn(a, a, source_cost)
                 - 0.5 * sinkhorn(b, b, target_cost))
    capped = sum("did not converge" in str(w.message) for w in caught)
    return value, capped


# ----------------------------------------------------------------------------- main
def floor_seconds(n: int, repeats: int) -> float:
    """One n x n squared-distance matrix between DIM-dim float32 clouds (one matmul)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, DIM, generator=generator) for _ in range(2))
    return mean_seconds(lambda: squared_distances(a, b), repeats)


NOTES = """\
- Data: n points per side, {dim} dims, {classes} balanced classes; each class a random mean, a
  random rank-{rank} covariance plus isotropic noise (source seed 0; target seed 1, shifted by
  0.3 in every coordinate). float32 torch tensors for ours, float64 numpy for the reference.
- Ours: `create_metric(name, outer=...)` with default parameters (reg {reg} x the largest
  source-source augmented cost, Sinkhorn max_iter {iters}, tol {tol:g} on the l1 marginal error,
  exact label distances on at most {max_points} seeded points per class). `fit_source s`: one
  call. `value s`: the value alone (under `torch.no_grad()`, as alignment curves and the
  pruner read it: no transport matmuls); `forward s` / `fwd+bwd s`: the differentiable call
  and the call plus `loss.backward()` into the target features. Each is the mean over
  {repeats} call(s) after one warm-up call.
- Peak MB: the process's peak resident memory (kernel VmHWM) above its level just before the
  measurement, after releasing freed memory (gc, malloc_trim) and resetting the high-water mark
  (/proc/self/clear_refs). Ours: fit_source and every call; reference: its one call. Input data
  is allocated before, so it is not counted.
- Reference (OTDD only; one call, value only, no gradient): label distances recomputed per
  call (source-source, source-target, target-target as needed); exact ones with one
  `ot.emd2(numItermax=1e7)` per class pair on THE SAME seeded subsets of at most {max_points}
  points per class as ours (so the inner values agree and the difference isolates the outer
  problem); Gaussian ones with the Bures formula per class pair (numpy eigh square roots with
  clamped eigenvalues: POT's `bures_wasserstein_distance` returns NaN for classes with fewer
  points than dims); the explicit n x n augmented cost `ot.dist + W[y, y']`; outer `ot.emd2`
  (exact) or the debiased Sinkhorn divergence OT(S,T) - OT(S,S)/2 - OT(T,T)/2 with three
  `ot.sinkhorn2` calls (linear cost <P, C> of the entropic plan, as ours) at the same epsilon,
  iteration cap {iters} and stopThr = {tol:g} / sqrt(m) on POT's l2 marginal error.
  `ref. Sinkhorn capped`: how many of the three problems hit the cap. `ref. / ours (value)`
  compares value with value; `ref. / ours (fwd+bwd)` sets the reference's value against our
  value plus gradient. Reference above {skip} points per side, and the exact outer problem
  (ours and the reference's) above {skip_exact}: skipped.
- Floor: one n x n float32 squared-distance matrix (`addmm`, one matmul), mean of the same
  repeats. The machine may be shared: timings are wall-clock.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 5000, 10000],
                        help="samples per side")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up")
    parser.add_argument("--skip-reference-above", type=int, default=10000, metavar="N",
                        help="no reference for sizes above N")
    parser.add_argument("--skip-exact-outer-above", type=int, default=5000, metavar="N",
                        help="no exact (network simplex) outer problem above N, ours or the "
                             "reference's: 12 s per call at 5k, and it grows about cubically")
    parser.add_argument("--smoke", action="store_true", help="n = 200, one repeat")
    parser.add_argument("--out", default=None, help="output folder (default docs/benchmarks)")
    args = parser.parse_args()
    sizes, repeats = ([200], 1) if args.smoke else (args.sizes, args.repeats)

    rows: list[dict[str, object]] = []
    for n in sizes:
        source, target = blobs(n, seed=0, shift=0.0), blobs(n, seed=1, shift=0.3)
        floor = floor_seconds(n, repeats)
        for method in METHODS:
            if method.outer == "exact" and n > args.skip_exact_outer_above:
                rows.append({"n per side": n, "metric": method.name, "outer": method.outer,
                             "fit_source s": "skipped"})
                continue
            ours = measure_ours(method, source, target, repeats)
            row: dict[str, object] = {
                "n per side": n, "metric": method.name, "outer": method.outer,
                "fit_source s": f"{ours.fit_s:.3f}", "value s": f"{ours.value_s:.3f}",
                "forward s": f"{ours.forward_s:.3f}",
                "fwd+bwd s": f"{ours.total_s:.3f}", "peak MB": f"{ours.peak_mb:.0f}",
                "floor s": f"{floor:.4f}", "fwd+bwd / floor": f"{ours.total_s / floor:.3g}x",
                "value": f"{ours.value:.5g}",
            }
            row.update(dict.fromkeys(("ref. s", "ref. peak MB", "ref. / ours (value)",
                                      "ref. / ours (fwd+bwd)", "ref. value", "rel. diff",
                                      "ref. Sinkhorn capped"), "-"))
            if method.labels is not None and n > args.skip_reference_above:
                row["ref. s"] = "skipped"
            elif method.labels is not None:
                with peak_memory() as memory:
                    start = time.perf_counter()
                    ref_value, capped = reference_otdd(method, source, target)
                    ref_s = time.perf_counter() - start
                row.update({
                    "ref. s": f"{ref_s:.3f}", "ref. peak MB": f"{memory['peak_mb']:.0f}",
                    "ref. / ours (value)": f"{ref_s / ours.value_s:.1f}x",
                    "ref. / ours (fwd+bwd)": f"{ref_s / ours.total_s:.1f}x",
                    "ref. value": f"{ref_value:.5g}",
                    "rel. diff": f"{(ours.value - ref_value) / abs(ref_value):+.2e}",
                    "ref. Sinkhorn capped": f"{capped}/3" if method.outer == "sinkhorn" else "-",
                })
            rows.append(row)
            print(row, flush=True)

    write_report(
        "distance_speed",
        "Alignment distances: time per call, peak memory, OTDD against a straightforward reference",
        rows,
        notes=NOTES.format(dim=DIM, classes=CLASSES, rank=RANK, reg=REG, max_points=MAX_POINTS,
                           repeats=repeats, iters=SINKHORN_ITER, tol=SINKHORN_TOL,
                           skip=args.skip_reference_above,
                           skip_exact=args.skip_exact_outer_above),
        out_dir=Path(args.out) if args.out else None,
    )


if __name__ == "__main__":
    main()
