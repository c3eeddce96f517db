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
