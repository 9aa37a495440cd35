"""Extending orca-automl from outside the package, as a plugin would: the backbone, embedder,
distance and task of `tests/extension_example.py` run one cycle through the console commands
and a search through Ray, whose workers import the plugin themselves.

Each check runs in a fresh process, so this test session's registries stay as shipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "tests.extension_example"
PARTS = ["--set", "model.backbone=tiny_encoder", "--set", "model.embedder=linear_patches",
         "--set", "align.metric=mean_gap"]


def _python(code: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _command(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    main = {"orca-train": "train_main", "orca-predict": "predict_main"}[name]
    return _python(f"import sys; from orca_automl.cli import {main}; sys.exit({main}())", *args)


def test_a_plugin_trains_saves_and_predicts_through_the_commands(tmp_path: Path) -> None:
    model = tmp_path / "model"
    train = _command("orca-train", "--plugin", PLUGIN, "--task", "sine_or_square", *PARTS,
                     "--set", "align.steps=10", "--set", "align.source_samples=200",
                     "--set", "refine.steps=40", "--set", "refine.eval_every=20",
                     "--output", str(model), "--quiet")
    assert train.returncode == 0, train.stderr
    assert "alignment (mean_gap)" in train.stdout and "test accuracy" in train.stdout
    saved = yaml.safe_load((model / "config.yaml").read_text())
    assert saved["model"]["backbone"] == "tiny_encoder"

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(5, 1, 48)).astype(np.float32))
    predict = ["--model", str(model), "--input", str(tmp_path / "x.npy")]
    found = _command("orca-predict", "--plugin", PLUGIN, *predict)
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.split()) == 5
    missing = _command("orca-predict", *predict)  # a plugin's model needs the plugin
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "unknown backbone 'tiny_encoder'" in missing.stderr


def test_an_unknown_plugin_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = _command("orca-train", "--plugin", "no_such_plugin_module", "--task", "gunpoint",
                   "--output", str(tmp_path / "m"))
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "--plugin no_such_plugin_module: importing it failed" in run.stderr
    assert not (tmp_path / "m").exists()


SEARCH = """
import json, sys
import tests.extension_example  # registers the plugin's entries in this process only
from orca_automl.cycle import load_model
from orca_automl.search import SearchOptions, run_search
from orca_automl.tasks import load_task

result = run_search(SearchOptions(task="sine_or_square", budget="25s", workers=1,
                                  storage=sys.argv[1], search_space=sys.argv[2],
                                  validation="holdout"))
task = load_task("sine_or_square")
winner = result.winners[0]
print(json.dumps({
    "trials": [[r.plan.stage, r.state.name, r.result.error, r.plan.config.model.backbone,
                r.plan.config.model.embedder, r.plan.config.align.metric,
                r.result.final_align_loss] for r in result.records
               if r.plan.stage in ("short", "full")],
    "baselines": sorted(r.plan.baseline for r in result.baselines),
    "predicted": len(load_model(winner.result.model_dir).predict(task.test.X[:4])),
}))
"""


def test_a_plugin_search_runs_in_ray_workers_that_import_the_plugin(tmp_path: Path) -> None:
    space = tmp_path / "plugin.yaml"
    space.write_text(yaml.safe_dump({
        "description": "the plugin's backbone, embedder and distance",
        "base": {
            "short_fraction": 0.5,
            "model": {"backbone": "tiny_encoder", "embedder": "linear_patches"},
            "align": {"metric": "mean_gap", "steps": 10, "source_samples": 200},
            "refine": {"steps": 40, "eval_every": 20},
        },
        "promotion": {"top_k": 1, "share": 0.4},
        "params": {"model.embedder_args.patch": {"choices": [6, 8]},
                   "refine.lr": {"float": [1e-4, 1e-3], "log": True}},
    }))
    run = _python(SEARCH, f"sqlite:///{tmp_path}/study.db", str(space))
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    trials = found["trials"]
    assert [t for t in trials if t[1] == "FAIL"] == []
    assert {tuple(t[3:6]) for t in trials} == {("tiny_encoder", "linear_patches", "mean_gap")}
    assert any(t[0] == "short" and t[1] == "COMPLETE" and t[6] is not None for t in trials)
    assert any(t[0] == "full" and t[1] == "COMPLETE" for t in trials)
    assert found["predicted"] == 4
    assert found["baselines"] == ["minirocket", "one_nn"]  # scored beside the plugin's trials


def test_entries_registered_in_a_script_are_refused_before_the_search_starts(
    tmp_path: Path,
) -> None:
    script = (
        "from orca_automl.errors import OrcaInputError\n"
        "from orca_automl.search import SearchOptions, run_search\n"
        "from orca_automl.tasks import TASKS\n"
        "import tests.extension_example as plugin\n"
        "@TASKS.register('scripted')\n"
        "def scripted(seed, val_fraction=None):\n"
        "    return plugin.sine_or_square(seed, val_fraction)\n"
        "try:\n"
        "    run_search(SearchOptions(task='scripted', budget='30s', storage='sqlite:///s.db'))\n"
        "except OrcaInputError as exc:\n"
        "    print(exc)\n"
    )
    run = _python(script, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "task scripted registered in the script itself (__main__)" in run.stdout
    assert list(tmp_path.iterdir()) == []
