import os

import pytest

from fec.config import cfg, load_config


def test_defaults_importable_and_override_from_file_and_list(tmp_path):
    assert cfg.MODEL.HEAD.EMBEDDING_DIM == 16
    f = tmp_path / "exp.yaml"
    f.write_text("MODEL:\n  HEAD:\n    NAME: dense\nSOLVER:\n  MAX_ITER: 7\n")
    c = load_config(str(f), ["SOLVER.MAX_ITER", "9", "MODEL.LOSS.MARGINS", "[0.1, 0.3, 0.4]"])
    assert c.MODEL.HEAD.NAME == "dense"
    assert c.SOLVER.MAX_ITER == 9  # the command line wins over the file
    assert list(c.MODEL.LOSS.MARGINS) == [0.1, 0.3, 0.4]
    assert c.is_frozen()
    assert cfg.SOLVER.MAX_ITER == 20000  # the defaults are untouched


def test_unknown_key_is_named():
    with pytest.raises(KeyError, match="SOLVER.MAX_ITERS"):
        load_config(None, ["SOLVER.MAX_ITERS", "10"])


def test_unknown_key_in_file_is_named(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("MODEL:\n  HEDA:\n    NAME: dense\n")
    with pytest.raises(KeyError, match="MODEL.HEDA"):
        load_config(str(f))


def test_wrong_type_is_named():
    with pytest.raises(ValueError, match="SOLVER.MAX_ITER"):
        load_config(None, ["SOLVER.MAX_ITER", "'many'"])


def test_odd_number_of_overrides_and_bad_values():
    with pytest.raises(ValueError, match="KEY VALUE"):
        load_config(None, ["SOLVER.MAX_ITER"])
    with pytest.raises(ValueError, match="INPUT.SIZE"):
        load_config(None, ["INPUT.SIZE", "8"])


def test_shipped_configs_load():
    import glob

    files = glob.glob("config/**/*.yaml", recursive=True)
    assert len(files) >= 4
    for f in files:
        load_config(f)


# The tasks each meta-architecture trains on (the catalog's "task" argument; triplet
# datasets have none).
META_TASKS = {"TripletEmbeddingNet": {"triplet"}, "Classifier": {"classification", "affect"},
              "ValenceArousalRegressor": {"regression", "affect"}, "AffectRegressor": {"regression", "affect"},
              "ClassifierRegressor": {"affect"}, "IntensityRegressor": {"intensity"}}


def _shipped_configs():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {os.path.relpath(f, root): load_config(f) for f in glob.glob(os.path.join(root, "config", "**", "*.yaml"),
                                                                         recursive=True)}


def test_shipped_configs_name_parts_that_exist_and_fit_together():
    from fec.config import paths_catalog
    from fec.modeling.registry import BACKBONES, HEADS, META_ARCHITECTURES

    configs = _shipped_configs()
    assert len(configs) >= 10
    outputs = {c.OUTPUT_DIR: (name, c) for name, c in configs.items()}
    assert len(outputs) == len(configs), "two shipped configs write into one OUTPUT_DIR"
    for name, c in configs.items():
        meta = c.MODEL.META_ARCHITECTURE
        assert meta in META_ARCHITECTURES and meta in META_TASKS, (name, meta)
        assert c.MODEL.BACKBONE.NAME in BACKBONES, (name, c.MODEL.BACKBONE.NAME)
        if meta == "TripletEmbeddingNet":
            assert c.MODEL.HEAD.NAME in HEADS, (name, c.MODEL.HEAD.NAME)
        assert c.DATASETS.TRAIN and c.DATASETS.TEST, name
        for dataset in (*c.DATASETS.TRAIN, *c.DATASETS.TEST):
            factory, args = paths_catalog.get(dataset, c.DATASETS.ROOT)
            task = args.get("task", "triplet" if "Triplet" in factory else "classification")
            assert task in META_TASKS[meta], (name, dataset, task, meta)
        if meta in ("Classifier", "ClassifierRegressor") and len(c.MODEL.CLASSIFIER.CLASS_NAMES):
            assert len(c.MODEL.CLASSIFIER.CLASS_NAMES) == c.MODEL.CLASSIFIER.NUM_CLASSES, name
        assert c.SOLVER.IMS_PER_BATCH > 0 and c.SOLVER.MAX_ITER > c.SOLVER.WARMUP_ITERS, name
        # real runs (not the quickstarts) evaluate while they train
        if not os.path.basename(name).startswith("quickstart"):
            assert 0 < c.TEST.EVAL_PERIOD < c.SOLVER.MAX_ITER, name
        # a start from another run's checkpoint: that run is shipped, with the same backbone
        if c.MODEL.WEIGHTS.startswith("output/"):
            source = os.path.dirname(c.MODEL.WEIGHTS)
            assert source in outputs and c.MODEL.WEIGHTS.endswith("/model_final.pth"), (name, c.MODEL.WEIGHTS)
            assert outputs[source][1].MODEL.BACKBONE.NAME == c.MODEL.BACKBONE.NAME, (name, outputs[source][0])
