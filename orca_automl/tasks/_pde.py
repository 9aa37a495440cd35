"""Viscous Burgers' equation: a pseudo-spectral solver and the `burgers1d` data it generates.

u_t + u u_x = nu u_xx on the periodic interval [0, 2 pi). The state is the Fourier spectrum
on the de-aliased band (2/3 rule), the nonlinear term is evaluated on the grid with real
FFTs, and scipy's `solve_ivp` integrates every sample at once, so a whole data set is one
ODE system and costs a few seconds. Generated arrays are cached on disk (atomic writes),
because the same data set is rebuilt by every search trial and every resumed study.
"""

from __future__ import annotations

import json

import numpy as np
from scipy.integrate import solve_ivp

from orca_automl._cache import cache_key, load_arrays, save_arrays

# What `burgers_dataset` generates; part of the cache key, so changing any value regenerates.
BURGERS_DEFAULTS: dict[str, float | int] = {
    "grid": 128,  # points on [0, 2 pi)
    "nu": 0.1,  # viscosity: shocks stay a few grid cells wide at this resolution
    "t_final": 1.0,
    "modes": 4,  # initial conditions: random Fourier modes 1..modes
    "amplitude": 1.0,  # mode k has standard deviation amplitude / k per coefficient
    "mean_std": 0.25,  # random mean (constant mode): adds advection
}


def _resolved_modes(n_grid: int) -> int:
    """Wavenumbers 0..K-1 with K - 1 < L / 3: u^2 of such a state has no aliasing onto them."""
    return (n_grid - 1) // 3 + 1


def burgers_rhs(u_hat: np.ndarray, nu: float, n_grid: int) -> np.ndarray:
    """d(u_hat)/dt for a batch of truncated spectra u_hat (n, K) of states on an L-point grid."""
    k = np.arange(u_hat.shape[-1])
    u = np.fft.irfft(u_hat, n=n_grid, axis=-1)
    flux_hat = np.fft.rfft(0.5 * u * u, axis=-1)[:, : len(k)]
    du_hat: np.ndarray = -1j * k * flux_hat - nu * k**2 * u_hat
    return du_hat


def solve_burgers(u0: np.ndarray, t_final: float, nu: float, *, rtol: float = 1e-6) -> np.ndarray:
    """Integrate Burgers' equation from each row of `u0` (shape (n, L)) to time `t_final`.

    The state is the Fourier spectrum truncated to the de-aliased band (wavenumbers below
    L / 3; finer content of `u0` is dropped): the discarded modes would only add stiffness
    (nu k^2) and force smaller steps. The absolute tolerance scales with the initial
    amplitude, so tiny states (the heat-equation limit) are solved as accurately as large ones.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    n, n_grid = u0.shape
    modes = _resolved_modes(n_grid)
    u0_hat = np.fft.rfft(u0, axis=-1)[:, :modes]
    scale = max(float(np.abs(u0_hat).max()), 1e-300)

    def rhs(_t: float, flat: np.ndarray) -> np.ndarray:
        du_hat = burgers_rhs(flat.view(np.complex128).reshape(n, modes), nu, n_grid)
        return du_hat.ravel().view(np.float64)

    sol = solve_ivp(
        rhs,
        (0.0, t_final),
        u0_hat.ravel().view(np.float64),
        method="RK45",
        t_eval=[t_final],
        rtol=rtol,
        atol=rtol * scale,
    )
    if not sol.success:
        raise RuntimeError(f"Burgers solver failed: {sol.message}")
    u_hat = np.ascontiguousarray(sol.y[:, -1]).view(np.complex128).reshape(n, modes)
    return np.fft.irfft(u_hat, n=n_grid, axis=-1)


def random_initial_conditions(
    n: int, rng: np.random.Generator, *, grid: int, modes: int, amplitude: float, mean_std: float
) -> np.ndarray:
    """Smooth periodic states: a random mean plus Fourier modes 1..modes with ~1/k decay."""
    x = 2 * np.pi * np.arange(grid) / grid
    k = np.arange(1, modes + 1)
    a = rng.normal(size=(n, modes)) * amplitude / k
    b = rng.normal(size=(n, modes)) * amplitude / k
    waves = a @ np.cos(np.outer(k, x)) + b @ np.sin(np.outer(k, x))
    u0: np.ndarray = rng.normal(size=(n, 1)) * mean_std + waves
    return u0


def burgers_dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(u(x, 0), u(x, T)), each (n, grid) float32, generated once and cached on disk."""
    params = {**BURGERS_DEFAULTS, "n": n, "seed": seed}
    key = cache_key(json.dumps(params, sort_keys=True))
    cached = load_arrays("pde", f"burgers1d-{key}")
    if cached is not None:
        return cached["u0"], cached["uT"]
    u0 = random_initial_conditions(
        n,
        np.random.default_rng(seed),
        grid=int(params["grid"]),
        modes=int(params["modes"]),
        amplitude=float(params["amplitude"]),
        mean_std=float(params["mean_std"]),
    )
    u_t = solve_burgers(u0, float(params["t_final"]), float(params["nu"]))
    u0, u_t = u0.astype(np.float32), u_t.astype(np.float32)
    save_arrays("pde", f"burgers1d-{key}", {"u0": u0, "uT": u_t})
    return u0, u_t
