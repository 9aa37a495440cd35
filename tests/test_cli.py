"""orca-train / orca-predict as a user runs them: exit codes, one-line errors, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orca_automl.cli import predict_main, train_main


def run(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "no_such_task"], "unknown task"),
        (["--task", "missing.npz"], "missing.npz"),
        (["--task", "gunpoint", "--config", "nope.yaml"], "does not exist"),
        (["--task", "gunpoint", "--set", "refine.lr"], "KEY=VALUE"),
        (["--task", "gunpoint", "--set", "refine.stepz=3"], "unknown config key"),
        (["--task", "gunpoint", "--set", "refine.steps=abc"], "must be an integer"),
        (["--task", "gunpoint", "--set", "model.embedder=stem_conv"], "does not fit 1d inputs"),
        (["--task", "gunpoint", "--set", "align.metric=wasserstein9"], "alignment metric"),
        (["--task", "gunpoint", "--set", "model.backbone=bert9"], "unknown backbone"),
    ],
)
def test_train_bad_input(argv: list[str], message: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "model"
    code, _, err = run(train_main, [*argv, "--output", str(out_dir)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not out_dir.exists()


def test_train_refuses_nan_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = np.random.default_rng(0).normal(size=(40, 1, 20)).astype(np.float32)
    X[3, 0, 5] = np.nan
    np.savez(tmp_path / "d.npz", X_train=X, y_train=np.arange(40) % 2)
    code, _, err = run(train_main, ["--task", str(tmp_path / "d.npz"),
                                    "--output", str(tmp_path / "m")], capsys)
    assert code == 2 and "NaN" in err and not (tmp_path / "m").exists()


@pytest.mark.integration
def test_train_then_predict(tiny_bert_dir: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    argv = ["--task", "italy_power_demand", "--output", str(model), "--quiet",
            "--set", "model.backbone=hf", "--set", f"model.backbone_args={{name_or_path: {tiny_bert_dir}}}",
            "--set", "align.steps=5", "--set", "refine.steps=40", "--set", "refine.eval_every=20"]
    code, out, err = run(train_main, argv, capsys)
    assert code == 0, err
    assert "validation accuracy" in out and "test accuracy" in out
    assert (model / "meta.json").is_file()

    from sktime.datasets import load_italy_power_demand

    X, _ = load_italy_power_demand(split="test", return_type="numpy3D")
    np.savez(tmp_path / "new.npz", X=X[:7])
    code, out, err = run(predict_main, ["--model", str(model), "--input", str(tmp_path / "new.npz")],
                         capsys)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 7
    code, _, err = run(predict_main, ["--model", str(model), "--input", str(tmp_path / "new.npz"),
                                      "--output", str(tmp_path / "p.npy"), "--proba"], capsys)
    assert code == 0 and np.load(tmp_path / "p.npy").shape == (7, 2)
    np.save(tmp_path / "wrong.npy", X[:3, :, :10])
    code, _, err = run(predict_main, ["--model", str(model), "--input", str(tmp_path / "wrong.npy")],
                       capsys)
    assert code == 2 and "per-sample shape" in err


def test_predict_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(predict_main, ["--model", str(tmp_path), "--input", "x.npy"], capsys)
    assert code == 2 and "not a saved model folder" in err


@pytest.mark.integration
def test_predict_with_an_ensemble_folder(tiny_bert_dir: Path, toy_task, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """orca-predict serves an ensemble folder like a model folder: same flags, same outputs."""
    from orca_automl.config import OrcaConfig
    from orca_automl.cycle import evaluate, load_model, run_cycle, save_ensemble, save_model

    task = toy_task()
    members = []
    for seed in (0, 1):
        cfg = OrcaConfig().with_overrides({
            "seed": seed, "model.backbone": "hf",
            "model.backbone_args": {"name_or_path": str(tiny_bert_dir)},
            "model.embedder_args": {"target_seq_len": 8}, "align.steps": 5,
            "align.source_samples": 100, "refine.steps": 20, "refine.eval_every": 10,
        })
        result = run_cycle(task, cfg)
        members.append(save_model(result.model, task, cfg, tmp_path / f"m{seed}",
                                  scores=result.scores(evaluate(result.model, task))))
    ensemble = save_ensemble(members, tmp_path / "ensemble", weights=[2, 1])
    X = task.test.X[:7]
    np.save(tmp_path / "new.npy", X)
    expected = load_model(ensemble).predict_proba(X)

    argv = ["--model", str(ensemble), "--input", str(tmp_path / "new.npy")]
    code, out, err = run(predict_main, argv, capsys)
    assert code == 0, err
    assert out.split() == [str(c) for c in expected.argmax(axis=1)]
    code, _, err = run(predict_main, [*argv, "--proba", "--output", str(tmp_path / "p.npy")], capsys)
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)
    code, _, err = run(predict_main, [*argv, "--proba", "--output", str(tmp_path / "p.json")], capsys)
    assert code == 0 and np.allclose(json.loads((tmp_path / "p.json").read_text()), expected)
    code, _, err = run(predict_main, [*argv, "--output", str(tmp_path / "p.csv")], capsys)
    assert code == 0 and len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 7
    np.save(tmp_path / "wrong.npy", X[:, :1])
    code, _, err = run(predict_main, ["--model", str(ensemble), "--input",
                                      str(tmp_path / "wrong.npy")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "per-sample shape" in err
