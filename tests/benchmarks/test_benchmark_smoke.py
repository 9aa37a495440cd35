"""Every benchmark script runs end to end with --smoke and writes its table as .md and .csv."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

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
    "task", "data", "metric", "orca-search auto (40s)", "ORCA default", "no alignment",
    "random body", "classical method", "classical", "1-NN", "neural seeds", "auto: per seed",
    "auto - default (seeds better / worse)", "auto: trials (short+full)", "s / default run",
    "winning configuration (seed 0)",
]
SEARCH_EFFICIENCY_COLUMNS = [
    "task", "search", "best full val score", "its test score",
    "configs explored / completed / pruned (alignment) / pruned (median) / full",
    "device s spent", "Spearman rho (alignment loss vs val score)",
]

TRIAL_PROFILE_COLUMNS = [
    "precision", "build + reference s", "align s", "refine s", "trial s",
    "refine speed-up vs fp32", "test score",
]


@pytest.mark.parametrize(
    ("script", "extra", "columns", "n_rows"),
    [
        pytest.param("distance_speed", [], DISTANCE_COLUMNS, 6, id="distance_speed"),
        pytest.param("ablation", ["--tasks", "gunpoint", "--seeds", "0"], ABLATION_COLUMNS, 1,
                     id="ablation"),
        pytest.param("orchestration_overhead", [], ORCHESTRATION_COLUMNS, 3,
                     id="orchestration_overhead", marks=pytest.mark.integration),
        pytest.param("quality", ["--tasks", "gunpoint", "--seeds", "0"], QUALITY_COLUMNS, 1,
                     id="quality", marks=pytest.mark.integration),
        pytest.param("search_efficiency", ["--tasks", "gunpoint"], SEARCH_EFFICIENCY_COLUMNS, 2,
                     id="search_efficiency", marks=pytest.mark.integration),
        pytest.param("trial_profile", [], TRIAL_PROFILE_COLUMNS, 2, id="trial_profile"),
    ],
)
def test_smoke_run_writes_markdown_and_csv(
    tmp_path: Path, script: str, extra: list[str], columns: list[str], n_rows: int
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), "--smoke",
         "--out", str(tmp_path), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    name = "trial_profile_phases" if script == "trial_profile" else script
    with open(tmp_path / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == columns
    assert len(rows) == n_rows
    markdown = (tmp_path / f"{name}.md").read_text()
    assert markdown.startswith("# ") and "| " + " | ".join(columns) + " |" in markdown
    if script == "quality":  # --resume reuses every logged run and rebuilds the same table
        logged = [(tmp_path / f"{log}_runs.jsonl").read_text() for log in ("quality", "search")]
        assert [len(text.splitlines()) for text in logged] == [4, 1]  # baselines, 3 variants; search
        again = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--smoke",
             "--out", str(tmp_path), "--resume", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert again.returncode == 0, again.stderr[-3000:]
        assert [(tmp_path / f"{log}_runs.jsonl").read_text() for log in ("quality", "search")] == logged
        with open(tmp_path / "quality.csv", newline="") as f:
            assert list(csv.DictReader(f)) == rows
