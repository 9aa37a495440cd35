"""Label-to-label distances for OTDD: W2^2 between class-conditional feature clouds.

Two ways, as in Alvarez-Melis & Fusi (2020):

- Gaussian: each class is summarised by its mean and (maximum-likelihood) covariance and two
  classes are compared with the Bures-Wasserstein formula
  ||mu - mu'||^2 + tr S + tr S' - 2 tr (S^1/2 S' S^1/2)^1/2.
  With factors S = F^T F (F from a QR of the centred class, min(n_c, d) rows), the last trace is
  the nuclear norm of F F'^T, read from the clamped eigenvalues of a small Gram matrix. This is
  exact for rank-deficient classes (fewer points than dims, where matrix square roots of the
  covariance give NaN in POT), costs min(n_c, d)^3 per pair instead of d^3, and runs batched
  over class pairs.
- Exact: W2^2 between the empirical class clouds, one network-simplex problem per class pair,
  solved in a thread pool (POT's solver releases the GIL). Classes larger than `max_points`
  are compared on a seeded random subset: the solver's time grows about cubically with the
  cloud size (at 384 dims, ~8 ms per pair of 200-point clouds, ~80 ms at 500 points). The
  price is some upward bias: W2 between empirical clouds grows as the clouds shrink.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from orca_automl.alignment._common import squared_distances
from orca_automl.alignment._transport import exact_cost

#: Upper bound on the bytes of one batch of pair Gram matrices.
_PAIR_BATCH_BYTES = 2**27

Item = TypeVar("Item")
Result = TypeVar("Result")


@contextmanager
def _one_thread_per_task(device: torch.device) -> Iterator[int]:
    """Run torch ops on one thread each and yield how many tasks to run side by side.

    MKL's threaded eigvalsh and QR on few-hundred-dim matrices are slower than one thread,
    and 10-50x slower when other processes share the cores; independent problems (class
    pairs, classes) are instead spread over a thread pool with `parallel_map`. Off the CPU
    nothing changes and tasks run one after the other.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu":
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def parallel_map(fn: Callable[[Item], Result], items: Sequence[Item], workers: int) -> list[Result]:
    """`map` over a thread pool: torch ops and POT's solver release the GIL.

    Each pool thread is set to one torch thread: OpenMP's thread count is per thread, so a
    fresh thread would otherwise run with the machine's default, and two concurrent QRs or
    eigensolvers then get thread teams whose size depends on timing. Their rounding differs,
    and a seeded alignment run would not repeat bit for bit.
    """
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(items)), initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        return list(pool.map(fn, items))


@dataclass(frozen=True)
class GaussianClasses:
    """Per-class means (k, d), covariance factors (k, r, d) with S_c = F_c^T F_c
    (zero rows pad the smaller classes), and covariance traces (k,)."""

    means: torch.Tensor
    factors: torch.Tensor
    traces: torch.Tensor

    def to(self, like: torch.Tensor) -> GaussianClasses:
        """The same summaries on `like`'s device and dtype (no copy when they match)."""
        return GaussianClasses(self.means.to(like), self.factors.to(like), self.traces.to(like))


def gaussian_classes(
    features: torch.Tensor, index: torch.Tensor, n_classes: int
) -> GaussianClasses:
    """Summarise each class 0..n_classes-1 of `features` (n, d) by its mean and covariance factor."""
    with _one_thread_per_task(features.device) as workers:
        members = split_classes(features, index, n_classes)
        means = [m.mean(0) for m in members]

        def factor(c: int) -> torch.Tensor:
            centred = (members[c] - means[c]) / len(members[c]) ** 0.5
            return torch.linalg.qr(centred, mode="r").R

        factors = parallel_map(factor, range(n_classes), workers)
        rank = max(len(f) for f in factors)
        padded = torch.stack(
            [torch.nn.functional.pad(f, (0, 0, 0, rank - len(f))) for f in factors]
        )
        return GaussianClasses(torch.stack(means), padded, padded.square().sum((1, 2)))


def split_classes(
    features: torch.Tensor, index: torch.Tensor, n_classes: int
) -> tuple[torch.Tensor, ...]:
    """The rows of each class 0..n_classes-1, with one sort instead of a mask per class."""
    counts = torch.bincount(index, minlength=n_classes).tolist()
    return torch.split(features[index.argsort(stable=True)], counts)


def bures_distances(a: GaussianClasses, b: GaussianClasses | None = None) -> torch.Tensor:
    """Squared Bures-Wasserstein distances (ka, kb) between Gaussian class summaries.

    With `b` None, `a` is compared with itself: only the pairs i < j are solved and the
    diagonal is exactly 0.
    """
    same = b is None
    other = a if b is None else b
    ka, kb = len(a.means), len(other.means)
    device = a.means.device
    with _one_thread_per_task(device) as workers:
        if same:
            rows, cols = torch.triu_indices(ka, ka, offset=1, device=device)
        else:
            grid = torch.cartesian_prod(
                torch.arange(ka, device=device), torch.arange(kb, device=device)
            )
            rows, cols = grid[:, 0], grid[:, 1]
        fidelity = _nuclear_norms(a.factors, other.factors, rows, cols, workers)
        distances = torch.zeros(ka, kb, dtype=a.means.dtype, device=device)
        distances[rows, cols] = (
            (a.means[rows] - other.means[cols]).square().sum(1)
            + a.traces[rows]
            + other.traces[cols]
            - 2.0 * fidelity
        ).clamp_min(0.0)
        if same:
            distances[cols, rows] = distances[rows, cols]
        return distances


def _nuclear_norms(
    factors_a: torch.Tensor,
    factors_b: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    workers: int,
) -> torch.Tensor:
    """||F_a[i] F_b[j]^T||_* = tr (S_i^1/2 S_j S_i^1/2)^1/2 for each pair (rows[p], cols[p])."""
    if len(rows) == 0:
        return factors_a.new_zeros(0)
    ra, rb = factors_a.shape[1], factors_b.shape[1]
    pair_bytes = factors_a.element_size() * (ra * rb + min(ra, rb) ** 2)
    size = min(max(1, _PAIR_BATCH_BYTES // pair_bytes), -(-len(rows) // workers))

    def batch_norms(pairs: slice) -> torch.Tensor:
        cross = factors_a[rows[pairs]] @ factors_b[cols[pairs]].mT
        gram = cross @ cross.mT if ra <= rb else cross.mT @ cross
        # float64: float32 eigh fails to converge on near-singular grams (tiny classes)
        eig = torch.linalg.eigvalsh(gram.double()).clamp_min(0.0).sqrt().sum(-1)
        return eig.to(gram.dtype)

    batches = [slice(start, start + size) for start in range(0, len(rows), size)]
    return torch.cat(parallel_map(batch_norms, batches, workers))


def class_clouds(
    features: torch.Tensor, index: torch.Tensor, n_classes: int, max_points: int, seed: int
) -> list[torch.Tensor]:
    """Each class's points as float64 CPU tensors, seeded subsets of at most `max_points`."""
    generator = torch.Generator().manual_seed(seed)
    clouds = []
    for members in split_classes(features.detach().double().cpu(), index.cpu(), n_classes):
        if len(members) > max_points:
            members = members[torch.randperm(len(members), generator=generator)[:max_points]]
        clouds.append(members)
    return clouds


def exact_distances(a: list[torch.Tensor], b: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Exact W2^2 (float64, CPU) between each pair of clouds; `b` None compares `a` with itself."""
    same = b is None
    other = a if b is None else b
    pairs = [(i, j) for i in range(len(a)) for j in range(len(other)) if not same or i < j]
    # Every pair's cost matrix is a block of one matmul between the stacked clouds: one
    # large multi-threaded product instead of one small one per pair.
    costs = squared_distances(torch.cat(a), torch.cat(other)).numpy()
    starts_a = [0, *itertools.accumulate(len(cloud) for cloud in a)]
    starts_b = [0, *itertools.accumulate(len(cloud) for cloud in other)]

    def solve(pair: tuple[int, int]) -> float:
        i, j = pair
        block = costs[starts_a[i] : starts_a[i + 1], starts_b[j] : starts_b[j + 1]]
        return exact_cost(np.ascontiguousarray(block))

    with _one_thread_per_task(torch.device("cpu")) as workers:
        values = parallel_map(solve, pairs, workers)
    distances = torch.zeros(len(a), len(other), dtype=torch.float64)
    for (i, j), value in zip(pairs, values, strict=True):
        distances[i, j] = value
        if same:
            distances[j, i] = value
    return distances
