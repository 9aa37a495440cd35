"""Every benchmark script runs end to end with --smoke and writes its table as .md and .csv."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from orca_automl.cycle import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[2]

DISTANCE_COLUMNS = [
    "n per side", "metric", "outer", "fit_source s", "value s", "forward s", "fwd+bwd s",
    "peak MB", "floor s", "fwd+bwd / floor", "value", "ref. s", "ref. peak MB",
    "ref. / ours (value)", "ref. / ours (fwd+bwd)", "ref. value", "rel. diff",
    "ref. Sinkhorn capped",
]
ABLATION_COLUMNS = [
    "task", "metric", "align + refine", "refine only (no alignment)",
    "random body (align + refine)", "1-NN Euclidean", "s / run (align + refine)",
]
ORCHESTRATION_COLUMNS = [
    "run", "workers", "trials (short + full)", "wall s", "startup s", "shutdown s",
    "in-process s / trial", "ask->tell s / trial", "device s / trial", "overhead s / trial",
    "overhead %", "tell->next ask s", "trials / min", "throughput vs 1 worker",
    "peak RSS sum GB", "peak PSS sum GB",
]

QUALITY_COLUMNS = [
    "task", "data", "metric", "orca-search auto (40s)", "auto, baselines may win",
    "auto, ORCA models only", "ORCA default", "no alignment",
    "random body", "classical method", "classical", "1-NN", "classical, refit on train + val",
    "1-NN, refit on train + val", "neural seeds", "auto: per seed",
    "auto - default (seeds better / worse)", "auto: trials (short+full)", "s / default run",
    "winning configuration (seed 0)",
]
NORMALISATION_COLUMNS = [
    "task", "normalisation", "MiniRocket (test)", "1-NN (test)",
    "1-NN leave-one-out on training", "chosen on seeds",
]
SEARCH_EFFICIENCY_COLUMNS = [
    "task", "search", "best full val score", "its test score",
    "configs explored / completed / pruned (alignment) / pruned (median) / full",
    "device s spent", "Spearman rho (alignment loss vs val score)",
]

FIDELITY_COLUMNS = [
    "task", "seed", "configurations", "fold protocol", "rho (short hold-out vs full test)",
    "picked by short hold-out: test", "rho (short folds vs full test)",
    "picked by short folds: test", "best test", "default's test", "s per configuration",
]
WINNER_FORM_COLUMNS = [
    "task", "metric", "folds", "bag of fold models: test", "refit on all data: test",
    "train split only: test", "refit - bag (seeds better / worse)",
    "bag of fold models: device s", "refit on all data: device s", "train split only: device s",
    "bag of fold models: GFLOPs", "refit on all data: GFLOPs", "train split only: GFLOPs",
]

OPTIONS_COLUMNS = ["option", "gunpoint", "device s / trial vs default"]

TRIAL_PROFILE_COLUMNS = [
    "precision", "build + reference s", "align s", "refine s", "trial s",
    "refine speed-up vs fp32", "test score",
]


@pytest.mark.parametrize(
    ("script", "extra", "table", "columns", "n_rows"),
    [
        pytest.param("normalisation", ["--tasks", "japanese_vowels", "--seeds", "0"],
                     "normalisation", NORMALISATION_COLUMNS, 2, id="normalisation"),
        pytest.param("distance_speed", [], "distance_speed", DISTANCE_COLUMNS, 6,
                     id="distance_speed"),
        pytest.param("ablation", ["--tasks", "gunpoint", "--seeds", "0"], "ablation",
                     ABLATION_COLUMNS, 1, id="ablation"),
        pytest.param("ablation", ["--winner-forms", "--tasks", "gunpoint", "--seeds", "0"],
                     "winner_form", WINNER_FORM_COLUMNS, 1, id="winner_form"),
        pytest.param("ablation", ["--options", "--tasks", "gunpoint", "--seeds", "0",
                                  "--stage", "short", "--only", "scope: LoRA r8", "augment 0.5"],
                     "ablation_options", OPTIONS_COLUMNS, 3, id="ablation_options"),
        # one worker count: the in-process replay and one search (two workers: the same code)
        pytest.param("orchestration_overhead", ["--workers", "1"], "orchestration_overhead",
                     ORCHESTRATION_COLUMNS, 2, id="orchestration_overhead",
                     marks=pytest.mark.integration),
        pytest.param("quality", ["--tasks", "gunpoint", "--seeds", "0"], "quality",
                     QUALITY_COLUMNS, 1, id="quality", marks=pytest.mark.integration),
        pytest.param("search_efficiency", ["--tasks", "gunpoint", "--seeds", "0"], "search_efficiency",
                     SEARCH_EFFICIENCY_COLUMNS, 1, id="search_efficiency",
                     marks=pytest.mark.integration),
        pytest.param("search_efficiency", ["--fidelity", "3", "--tasks", "gunpoint", "--seeds",
                                           "0"], "search_fidelity", FIDELITY_COLUMNS, 1,
                     id="search_fidelity"),
        # bf16 only where the CPU has it natively (emulated, it is ~15x fp32; see the script)
        pytest.param("trial_profile", [], "trial_profile_phases", TRIAL_PROFILE_COLUMNS,
                     2 if cpu_has_native_bf16() else 1, id="trial_profile"),
    ],
)
def test_smoke_run_writes_markdown_and_csv(
    tmp_path: Path, script: str, extra: list[str], table: str, columns: list[str], n_rows: int
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--smoke",
         "--out", str(tmp_path), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with open(tmp_path / f"{table}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == columns
    assert len(rows) == n_rows
    markdown = (tmp_path / f"{table}.md").read_text()
    assert markdown.startswith("# ") and "| " + " | ".join(columns) + " |" in markdown
    if script == "quality":  # --resume reuses every logged run and rebuilds the same table
        logged = [(tmp_path / f"{log}_runs.jsonl").read_text() for log in ("quality", "search")]
        # baselines, refitted baselines, 3 variants; the search
        assert [len(text.splitlines()) for text in logged] == [5, 1]
        again = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--smoke",
             "--out", str(tmp_path), "--resume", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert [(tmp_path / f"{log}_runs.jsonl").read_text() for log in ("quality", "search")] == logged
        with open(tmp_path / "quality.csv", newline="") as f:
            assert list(csv.DictReader(f)) == rows


def test_candidate_spaces_extend_a_shipped_space() -> None:
    """benchmarks/spaces/*.yaml load as search spaces, each a shipped space plus options."""
    from orca_automl.search import load_space

    shipped = {p.name for p in load_space("cpu-small").params}
    for path in sorted((ROOT / "benchmarks" / "spaces").glob("*.yaml")):
        names = {p.name for p in load_space(str(path)).params}
        assert shipped < names, path.name
