"""The Burgers solver against closed forms, and the cached data set behind `burgers1d`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orca_automl._cache import CACHE_ENV
from orca_automl.tasks import _pde
from orca_automl.tasks._pde import burgers_dataset, random_initial_conditions, solve_burgers

GRID = 128
X = 2 * np.pi * np.arange(GRID) / GRID


def test_tiny_amplitude_matches_the_heat_equation() -> None:
    """At amplitude 1e-6 the u u_x term is negligible: each mode decays as exp(-nu k^2 t)."""
    nu, t = 0.1, 0.7
    u0 = 1e-6 * random_initial_conditions(
        3, np.random.default_rng(0), grid=GRID, modes=8, amplitude=1.0, mean_std=0.0
    )
    k = np.arange(GRID // 2 + 1)
    heat = np.fft.irfft(np.fft.rfft(u0) * np.exp(-nu * k**2 * t), n=GRID)
    u = solve_burgers(u0, t, nu)
    assert np.linalg.norm(u - heat) / np.linalg.norm(heat) < 1e-4
    modes = slice(1, 9)
    ratio = np.abs(np.fft.rfft(u)[:, modes]) / np.abs(np.fft.rfft(u0)[:, modes])
    assert np.allclose(ratio, np.exp(-nu * k[modes] ** 2 * t), rtol=1e-4)


def test_matches_the_cole_hopf_solution() -> None:
    """u = -2 nu phi_x / phi with phi = 1 + a exp(-nu t) cos x solves Burgers exactly."""
    nu, a = 0.1, 0.9

    def exact(t: float) -> np.ndarray:
        decay = a * np.exp(-nu * t)
        u: np.ndarray = 2 * nu * decay * np.sin(X) / (1 + decay * np.cos(X))
        return u

    scale = np.max(np.abs(exact(2.0)))
    u = solve_burgers(exact(0.0)[None], 2.0, nu)[0]
    assert np.max(np.abs(u - exact(2.0))) < 1e-5 * scale
    k = np.arange(GRID // 2 + 1)
    heat_only = np.fft.irfft(np.fft.rfft(exact(0.0)) * np.exp(-nu * k**2 * 2.0), n=GRID)
    assert np.max(np.abs(heat_only - exact(2.0))) > 1e-2 * scale, "u u_x must matter here"


def test_mass_is_conserved() -> None:
    u0 = random_initial_conditions(
        16, np.random.default_rng(1), grid=GRID, modes=4, amplitude=1.0, mean_std=0.5
    )
    u = solve_burgers(u0, 1.0, 0.1)
    assert np.max(np.abs(u.mean(axis=1) - u0.mean(axis=1))) < 1e-12
    assert np.max(np.abs(u - u0)) > 0.1


def test_dataset_is_seeded_and_cached_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    u0, u_t = burgers_dataset(6, seed=3)
    assert u0.shape == u_t.shape == (6, GRID) and u0.dtype == np.float32
    files = list((tmp_path / "pde").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz", "one file, no temporary leftovers"

    def no_solving(*_args: object, **_kwargs: object) -> np.ndarray:
        raise AssertionError("a cached data set must not be solved again")

    monkeypatch.setattr(_pde, "solve_burgers", no_solving)
    cached = burgers_dataset(6, seed=3)
    assert np.array_equal(cached[0], u0) and np.array_equal(cached[1], u_t)

    files[0].write_bytes(b"truncated")  # a broken cache file is regenerated, not trusted
    monkeypatch.undo()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    again = burgers_dataset(6, seed=3)
    assert np.array_equal(again[1], u_t)
    assert not np.array_equal(burgers_dataset(6, seed=4)[0], u0)


def test_unwritable_cache_still_returns_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    u0, u_t = burgers_dataset(4, seed=0)
    assert u0.shape == u_t.shape == (4, GRID)
