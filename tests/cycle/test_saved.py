"""Saved model and ensemble folders: one prediction path, ensembles average members'
predictions, refusals write nothing, loading never unpickles."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_task

from orca_automl.config import OrcaConfig
from orca_automl.cycle import (
    SavedEnsemble,
    SavedModel,
    build_model,
    evaluate,
    load_model,
    run_cycle,
    save_ensemble,
    save_model,
)
from orca_automl.cycle._saved import SavedPredictor
from orca_automl.errors import OrcaInputError


def tiny_config(bert: Path, seed: int) -> OrcaConfig:
    return OrcaConfig().with_overrides({
        "seed": seed,
        "model.backbone": "hf",
        "model.backbone_args": {"name_or_path": str(bert)},
        "model.embedder_args": {"target_seq_len": 8},
        "align.steps": 5, "align.source_samples": 100,
        "refine.steps": 20, "refine.eval_every": 10, "refine.batch_size": 8,
    })


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Real tiny models: three for a classification task, two for a regression task."""
    folders: dict[str, list[Path]] = {}
    root = tmp_path_factory.mktemp("members")
    for task_type, seeds in (("classification", (0, 1, 2)), ("regression", (0, 1))):
        task = make_task(task_type)
        for seed in seeds:
            cfg = tiny_config(tiny_bert_dir, seed)
            result = run_cycle(task, cfg)
            folder = root / f"{task_type}-{seed}"
            save_model(result.model, task, cfg, folder,
                       scores=result.scores(evaluate(result.model, task, "test")))
            folders.setdefault(task_type, []).append(folder)
    return folders


def untrained(bert: Path, task_type: str, folder: Path, seed: int = 0, task_seed: int = 0) -> Path:
    """A model folder without training: enough where only the arithmetic matters."""
    task = make_task(task_type, seed=task_seed)
    cfg = tiny_config(bert, seed)
    model = build_model(task, cfg.model, seed=seed).eval()
    return save_model(model, task, cfg, folder, scores={"gflops_per_sample": 0.5})


def test_model_predictions_keep_todays_forms(trained: dict[str, list[Path]], tiny_bert_dir: Path,
                                              tmp_path: Path) -> None:
    """predict/predict_proba go through `predictions` and give what the raw outputs gave."""
    X = make_task().test.X
    clf = load_model(trained["classification"][0])
    assert isinstance(clf, SavedModel)
    raw = clf.predict_raw(X)
    np.testing.assert_array_equal(clf.predict(X), raw.argmax(axis=1))
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, torch.from_numpy(raw).softmax(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(clf.predictions(X), proba, atol=1e-6)

    reg = load_model(trained["regression"][0])
    assert isinstance(reg, SavedModel)
    raw = reg.predict_raw(X)
    np.testing.assert_array_equal(reg.predict(X), reg.normalizer.denormalize_y(raw))
    with pytest.raises(OrcaInputError, match="probabilities exist for classification tasks"):
        reg.predict_proba(X)

    multi = load_model(untrained(tiny_bert_dir, "multilabel", tmp_path / "m"))
    assert isinstance(multi, SavedModel)
    X = make_task("multilabel").test.X
    raw = multi.predict_raw(X)
    np.testing.assert_array_equal(multi.predict(X), (raw > 0).astype(np.int64))
    np.testing.assert_allclose(multi.predict_proba(X), torch.from_numpy(raw).sigmoid().numpy(),
                               atol=1e-6)


def test_classification_ensemble_is_the_weighted_average(trained: dict[str, list[Path]],
                                                         tmp_path: Path) -> None:
    members = trained["classification"]
    folder = save_ensemble(members, tmp_path / "ens", weights=[3, 1, 0], scores={"val": 0.9},
                           notes=["greedy selection"])
    ens = load_model(folder)
    assert isinstance(ens, SavedEnsemble)
    X = make_task().test.X
    loaded = [load_model(m) for m in members]
    expected = 0.75 * loaded[0].predictions(X) + 0.25 * loaded[1].predictions(X)
    np.testing.assert_allclose(ens.predictions(X), expected, rtol=1e-12)
    np.testing.assert_array_equal(ens.predict(X), expected.argmax(axis=1))
    np.testing.assert_allclose(ens.predict_proba(X), expected, atol=1e-6)
    assert ens.task_type == "classification" and ens.input_shape == loaded[0].input_shape

    record = json.loads((folder / "ensemble.json").read_text())
    assert record == ens.meta
    costs = [m.meta["scores"]["gflops_per_sample"] for m in loaded]
    assert all(c > 0 for c in costs)
    assert record["gflops_per_sample"] == pytest.approx(sum(costs))
    assert record["scores"] == {"gflops_per_sample": pytest.approx(sum(costs)), "val": 0.9}
    assert record["weights"] == [0.75, 0.25, 0.0]
    assert record["members"] == ["members/0", "members/1", "members/2"]
    assert record["task"] == loaded[0].meta["task"] and record["notes"] == ["greedy selection"]
    assert record["format_version"] == 1


def test_regression_bag_averages_values(trained: dict[str, list[Path]], tmp_path: Path) -> None:
    members = trained["regression"]
    ens = load_model(save_ensemble(members, tmp_path / "bag"))
    X = make_task("regression").test.X
    expected = np.mean([load_model(m).predictions(X).astype(np.float64) for m in members], axis=0)
    np.testing.assert_allclose(ens.predictions(X), expected, rtol=1e-6)
    np.testing.assert_array_equal(ens.predict(X), ens.predictions(X))
    assert ens.meta["weights"] == [0.5, 0.5]
    with pytest.raises(OrcaInputError, match="probabilities exist for classification tasks"):
        ens.predict_proba(X)


def test_multilabel_ensemble_labels_are_averaged_probabilities(tiny_bert_dir: Path,
                                                               tmp_path: Path) -> None:
    members = [untrained(tiny_bert_dir, "multilabel", tmp_path / str(s), seed=s) for s in (0, 1)]
    ens = load_model(save_ensemble(members, tmp_path / "ens", weights=[1, 2]))
    X = make_task("multilabel").test.X
    expected = sum(w * load_model(m).predictions(X) for w, m in zip((1 / 3, 2 / 3), members, strict=True))
    np.testing.assert_allclose(ens.predict_proba(X), expected, atol=1e-6)
    np.testing.assert_array_equal(ens.predict(X), (expected > 0.5).astype(np.int64))
    assert ens.meta["gflops_per_sample"] == 1.0


def test_fold_models_of_one_task_form_a_bag(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Folds move rows between training and validation: another task fingerprint, the same
    data fingerprint, so their models may form a bag."""
    task = make_task()
    cfg = tiny_config(tiny_bert_dir, 0)
    folds = []
    for i in range(3):
        fold = task.fold(i, 3, seed=0)
        model = build_model(fold, cfg.model, seed=i).eval()
        folds.append(save_model(model, fold, cfg, tmp_path / f"fold-{i}"))
    tasks = [load_model(f).meta["task"] for f in folds]
    assert len({t["fingerprint"] for t in tasks}) == 3
    assert len({t["data_fingerprint"] for t in tasks}) == 1
    bag = load_model(save_ensemble(folds, tmp_path / "bag"))
    assert isinstance(bag, SavedEnsemble) and len(bag.members) == 3
    assert bag.meta["gflops_per_sample"] is None  # the members' costs were not recorded

    for folder in folds[1:]:  # folders saved before the data fingerprint: the task fingerprint
        meta = json.loads((folder / "meta.json").read_text())
        del meta["task"]["data_fingerprint"]
        (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(OrcaInputError, match="in data: ensemble models of one task"):
        save_ensemble(folds[1:], tmp_path / "bag")
    assert load_model(tmp_path / "bag").meta["members"] == ["members/0", "members/1", "members/2"]


def test_inputs_are_checked_once_with_the_usual_messages(trained: dict[str, list[Path]],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ens = load_model(save_ensemble(trained["classification"], tmp_path / "ens"))
    X = make_task().test.X
    calls: list[int] = []
    original = SavedPredictor._checked

    def spy(self: SavedPredictor, X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return original(self, X)

    monkeypatch.setattr(SavedPredictor, "_checked", spy)
    ens.predict(X)
    assert calls == [len(X)]
    with pytest.raises(OrcaInputError, match="per-sample shape"):
        ens.predict(X[:, :1])
    bad = X.copy()
    bad[2, 0, 0] = np.inf
    with pytest.raises(OrcaInputError, match="1 input samples contain NaN"):
        ens.predict(bad)
    with pytest.raises(OrcaInputError, match="no samples"):
        ens.predict(X[:0])


def test_moved_ensemble_still_loads(trained: dict[str, list[Path]], tmp_path: Path) -> None:
    folder = save_ensemble(trained["classification"][:2], tmp_path / "a" / "ens", weights=[1, 2])
    X = make_task().test.X
    before = load_model(folder).predictions(X)
    moved = Path(shutil.move(str(folder), str(tmp_path / "elsewhere")))
    shutil.rmtree(tmp_path / "a")
    np.testing.assert_array_equal(load_model(moved).predictions(X), before)


def test_save_replaces_a_model_or_ensemble_folder(trained: dict[str, list[Path]],
                                                  tmp_path: Path) -> None:
    target = tmp_path / "winner"
    shutil.copytree(trained["classification"][0], target)
    save_ensemble(trained["classification"][:2], target)
    assert sorted(p.name for p in target.iterdir()) == ["ensemble.json", "members"]
    save_ensemble(trained["classification"][1:], target, weights=[2, 1])
    assert json.loads((target / "ensemble.json").read_text())["weights"][0] == pytest.approx(2 / 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["winner"]  # no temporary folder left


def _refusal_cases(trained: dict[str, list[Path]], tmp: Path, bert: Path) -> dict[str, tuple]:  # type: ignore[type-arg]
    clf = trained["classification"]
    other = untrained(bert, "classification", tmp / "other-task", task_seed=7)
    nested = save_ensemble(clf[:2], tmp / "nested")
    (tmp / "stuff").mkdir()
    (tmp / "stuff" / "notes.txt").write_text("mine")
    return {
        "no members": (([], tmp / "out"), {}, "at least one member"),
        "weight count": ((clf[:2], tmp / "out"), {"weights": [1.0]}, "1 ensemble weights for 2"),
        "negative weight": ((clf[:2], tmp / "out"), {"weights": [1, -1]}, "non-negative"),
        "zero weights": ((clf[:2], tmp / "out"), {"weights": [0, 0]}, "all zero"),
        "nan weight": ((clf[:2], tmp / "out"), {"weights": [1, float("nan")]}, "finite"),
        "not a model": (([clf[0], tmp / "stuff"], tmp / "out"), {}, "not a saved model folder"),
        "other task": (([clf[0], other], tmp / "out"), {}, "different tasks: .* in data: ensemble models"),
        "regression member": (([clf[0], trained["regression"][0]], tmp / "out"), {},
                              "in data, task type, output shape"),
        "nested": (([clf[0], nested], tmp / "out"), {}, "itself an ensemble"),
        "foreign folder": ((clf[:2], tmp / "stuff"), {}, "holds files that are not a saved"),
    }


@pytest.mark.parametrize("case", [
    "no members", "weight count", "negative weight", "zero weights", "nan weight", "not a model",
    "other task", "regression member", "nested", "foreign folder",
])
def test_refusals_are_one_line_and_write_nothing(case: str, trained: dict[str, list[Path]],
                                                 tmp_path: Path, tiny_bert_dir: Path) -> None:
    (members, directory), kwargs, message = _refusal_cases(trained, tmp_path, tiny_bert_dir)[case]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(OrcaInputError, match=message) as info:
        save_ensemble(members, directory, **kwargs)
    assert "\n" not in str(info.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_loading_refuses_bad_ensemble_files(trained: dict[str, list[Path]], tmp_path: Path) -> None:
    folder = save_ensemble(trained["classification"][:2], tmp_path / "ens")
    record = json.loads((folder / "ensemble.json").read_text())

    def rewrite(**changes: object) -> None:
        (folder / "ensemble.json").write_text(json.dumps({**record, **changes}))

    rewrite(members=["members/0", "../../elsewhere"])
    with pytest.raises(OrcaInputError, match="outside the ensemble folder"):
        load_model(folder)
    rewrite(members=["members/0", "."])
    with pytest.raises(OrcaInputError, match="outside the ensemble folder"):
        load_model(folder)
    rewrite(format_version=99)
    with pytest.raises(OrcaInputError, match="not a valid ensemble file"):
        load_model(folder)
    rewrite(weights=[1.0])
    with pytest.raises(OrcaInputError, match="1 ensemble weights for 2"):
        load_model(folder)
    (folder / "ensemble.json").write_text("{not json")
    with pytest.raises(OrcaInputError, match="not a valid ensemble file"):
        load_model(folder)
    inner = save_ensemble(trained["classification"][:2], tmp_path / "inner")
    shutil.copytree(inner, folder / "members" / "2")
    rewrite(members=["members/0", "members/2"])
    with pytest.raises(OrcaInputError, match="itself an ensemble"):
        load_model(folder)
    with pytest.raises(OrcaInputError, match="not a saved model folder"):
        load_model(tmp_path)


def test_loading_never_unpickles(trained: dict[str, list[Path]], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = save_ensemble(trained["classification"], tmp_path / "ens", weights=[1, 1, 2])
    loads: list[object] = []
    original = torch.load

    def checked_load(*args: object, **kwargs: object) -> object:
        loads.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a saved folder was unpickled")

    monkeypatch.setattr(torch, "load", checked_load)
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    ens = load_model(folder)
    assert loads == [True, True, True]
    assert ens.predict(make_task().test.X).shape == (24,)
