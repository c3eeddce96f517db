"""tools/retrieve.py and fec.predictor.retrieval: index a folder of faces, query it,
resume an interrupted index."""
import copy
import os

import cv2
import numpy as np
import pytest
import torch
from helpers.tools import load_tool
from skimage import data

from fec.data.datasets.synthetic import SyntheticTripletDataset
from fec.predictor import ExpressionPredictor
from fec.predictor import retrieval
from fec.predictor.retrieval import build_index, load_index, nearest
from helpers.cli import exit_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "config", "quickstart.yaml")
retrieve = load_tool("retrieve")




@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    """18 synthetic face crops (6 identities × 3 expressions), some in a subfolder."""
    out = tmp_path_factory.mktemp("faces")
    (out / "more").mkdir()
    ds = SyntheticTripletDataset("test", 6, 3, 40, render_size=64)
    for i in range(ds.num_faces):
        name = f"more/face_{i:02d}.png" if i % 4 == 0 else f"face_{i:02d}.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(ds.load_face(i), cv2.COLOR_RGB2BGR))
    return out


def test_query_returns_the_query_image_first_and_writes_the_grid(quickstart_ckpt, faces_dir, tmp_path, capsys):
    index_path = str(tmp_path / "faces.npz")
    rc = exit_code(retrieve.main, ["index", "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt,
                                   "--images", str(faces_dir), "--out", index_path, "--detector", "none",
                                   "--device", "cpu"])
    assert rc == 0
    index = load_index(index_path)
    assert len(index) == 18 and index.embeddings.shape == (18, 16)
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    assert "more/face_00.png" in index.paths.tolist() and index.meta["detector"] == "none"
    capsys.readouterr()
    for name in ("face_05.png", "more/face_08.png"):
        grid = tmp_path / f"grid_{os.path.basename(name)}"
        rc = exit_code(retrieve.main, ["query", index_path, str(faces_dir / name), "-k", "6", "--grid", str(grid),
                            "--device", "cpu"])
        assert rc == 0
        lines = capsys.readouterr().out.splitlines()
        ranked = [ln.split() for ln in lines if ln.strip()[:1].isdigit()]
        assert len(ranked) == 6
        assert ranked[0][0] == "1" and ranked[0][2] == name and float(ranked[0][1]) < 1e-6
        distances = [float(r[1]) for r in ranked]
        assert distances == sorted(distances) and distances[1] > 0
        picture = cv2.imread(str(grid))
        # query + 6 neighbours, 5 to a row: two rows of 128 px tiles with captions
        assert picture is not None and picture.shape[0] > 2 * 128 and picture.shape[1] == 5 * (128 + 4)


def test_index_with_a_detector_stores_boxes_and_skips_faceless_images(quickstart_ckpt, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = data.astronaut()
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "mirrored.png"), cv2.cvtColor(np.ascontiguousarray(rgb[:, ::-1]), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "wall.png"), np.full((200, 300, 3), 128, np.uint8))
    index_path = str(tmp_path / "photos.npz")
    assert exit_code(retrieve.main, ["index", "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt,
                                     "--images", str(photos), "--out", index_path, "--device", "cpu"]) == 0
    index = load_index(index_path)
    assert sorted(index.paths.tolist()) == ["astronaut.png", "mirrored.png"]
    assert len(index.done) == 3 and (index.boxes[:, 2] > index.boxes[:, 0]).all()
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert exit_code(retrieve.main, ["query", index_path, str(photos / "astronaut.png"), "--grid", str(grid)]) == 0
    out = capsys.readouterr().out
    ranked = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [r[2] for r in ranked] == ["astronaut.png", "mirrored.png"] and float(ranked[0][1]) < 1e-6
    assert cv2.imread(str(grid)).shape[1] == 3 * (128 + 4)


def test_an_interrupted_index_resumes_to_the_same_index(quickstart_ckpt, faces_dir, tmp_path):
    p = ExpressionPredictor.from_config(QUICKSTART, quickstart_ckpt, detector="none", device="cpu", batch_size=4)
    full = build_index(p, str(faces_dir), str(tmp_path / "full.npz"), quickstart_ckpt, progress=False)

    out = str(tmp_path / "resumed.npz")
    calls = []
    predict = p.predict_rgb

    def interrupted(rgbs, keep_crops=False):
        calls.append(len(rgbs))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return predict(rgbs, keep_crops)

    p.predict_rgb = interrupted
    with pytest.raises(KeyboardInterrupt):
        build_index(p, str(faces_dir), out, quickstart_ckpt, save_every_s=0, progress=False)
    partial = load_index(out + ".partial")
    assert len(partial.done) == 8 and len(partial) == 8 and not os.path.exists(out)

    calls.clear()
    p.predict_rgb = predict
    resumed = build_index(p, str(faces_dir), out, quickstart_ckpt, progress=False)
    assert not os.path.exists(out + ".partial")
    assert resumed.paths.tolist() == full.paths.tolist()
    np.testing.assert_allclose(resumed.embeddings, full.embeddings, atol=1e-6)
    order, dist = nearest(resumed, full.embeddings[3], k=3)
    assert order[0] == 3 and dist[0] < 1e-9


def test_errors_name_the_problem(quickstart_ckpt, faces_dir, tmp_path, capsys):
    assert exit_code(retrieve.main, ["query", str(tmp_path / "none.npz"), str(faces_dir / "face_01.png")]) == 2
    assert "index not found" in capsys.readouterr().err
    not_index = tmp_path / "x.npz"
    not_index.write_bytes(b"garbage")
    assert exit_code(retrieve.main, ["query", str(not_index), str(faces_dir / "face_01.png")]) == 2
    assert "not a fec retrieval index" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert exit_code(retrieve.main, ["index", "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt,
                                     "--images", str(empty), "--out", str(tmp_path / "e.npz")]) == 2
    assert "no images under" in capsys.readouterr().err


def test_the_index_does_not_tie_the_model_to_a_device(quickstart_ckpt, faces_dir, tmp_path, capsys):
    """Built with --device cpu, resumed without it, queried where the index says cuda:
    the device is where a model runs, not part of what it is."""
    out = str(tmp_path / "faces.npz")
    p = ExpressionPredictor.from_config(QUICKSTART, quickstart_ckpt, detector="none", device="cpu", batch_size=4)
    p.predict_rgb = lambda rgbs, keep_crops=False: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        build_index(p, str(faces_dir), out, quickstart_ckpt, save_every_s=0, progress=False)
    assert "DEVICE: auto" in load_index(out + ".partial").meta["config"]
    # the same model and folder through MODEL.DEVICE auto: the partial index is continued
    assert retrieve.main(["index", "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt, "--images",
                          str(faces_dir), "--out", out, "--detector", "none", "MODEL.DEVICE", "auto"]) == 0
    index = load_index(out)
    assert len(index) == 18 and not os.path.exists(out + ".partial")

    # an index that names a GPU (as older versions wrote one built there), queried on a CPU machine
    index.meta["config"] = index.meta["config"].replace("DEVICE: auto", "DEVICE: cuda")
    retrieval._save(index, out)
    capsys.readouterr()
    rc = retrieve.main(["query", out, str(faces_dir / "face_05.png"), "-k", "2"])
    assert rc == 0, capsys.readouterr().err
    ranked = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.strip()[:1].isdigit()]
    assert ranked[0][2] == "face_05.png" and len(ranked) == 2


def test_a_predictor_runs_its_model_where_the_model_is(quickstart_model):
    # the meta device stands in for a GPU: the model must not be moved to the CPU
    model = copy.deepcopy(quickstart_model).to("meta")
    p = ExpressionPredictor(model, 64, detector="none")
    assert p.device == torch.device("meta") and next(p.model.parameters()).device.type == "meta"
    assert ExpressionPredictor(copy.deepcopy(quickstart_model), 64, detector="none").device == torch.device("cpu")
