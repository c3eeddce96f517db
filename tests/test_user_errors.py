"""User errors through the real CLIs: one line ``error: ...`` naming the thing and the
fix, exit code 2, no traceback on the console (it goes to OUTPUT_DIR/log.txt)."""
import os

import pytest
import torch

from fec.config import load_config
from fec.modeling import build_model
from fec.utils.checkpoint import Checkpointer
from helpers.cli import assert_user_error, run, tool

pytestmark = pytest.mark.slow  # each test starts a CLI (a few seconds of imports)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = "config/quickstart.yaml"


def test_unknown_key_suggests_the_nearest(tmp_path):
    proc = run(tool("train_net.py", "--config-file", QUICKSTART, "SOLVER.MAX_ITR", "5"), tmp_path)
    assert_user_error(proc, "SOLVER.MAX_ITR", "did you mean SOLVER.MAX_ITER", "fec/config/defaults.py")


def test_train_sh_checks_stage_2_overrides_before_stage_1(tmp_path):
    # the quickstart's stage 1 takes minutes: a wrong key for stage 2 is reported first
    proc = run(["bash", "train.sh", "SOLVER.MAX_ITR", "5"], tmp_path)
    assert_user_error(proc, "SOLVER.MAX_ITR", "SOLVER.MAX_ITER")
    assert "Start training" not in proc.stdout


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("SOLVER:\n  MAX_ITR: 5\n")
    assert_user_error(run(tool("train_net.py", "--config-file", str(f)), tmp_path),
                      "SOLVER.MAX_ITR", str(f), "SOLVER.MAX_ITER")


def test_wrong_type_names_key_and_type(tmp_path):
    proc = run(tool("train_net.py", "--config-file", QUICKSTART, "SOLVER.MAX_ITER", "abc"), tmp_path)
    assert_user_error(proc, "SOLVER.MAX_ITER", "an integer", "'abc'")


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("SOLVER:\n  MAX_ITER: 5\n    BASE_LR: 0.1\n")
    proc = run(tool("train_net.py", "--config-file", str(f)), tmp_path)
    assert_user_error(proc, str(f), "line 3", "YAML syntax error")


def test_missing_config_file(tmp_path):
    proc = run(tool("test_net.py", "--config-file", str(tmp_path / "nope.yaml")), tmp_path)
    assert_user_error(proc, "nope.yaml", "not found")


def test_flag_after_overrides(tmp_path):
    proc = run(tool("train_net.py", "--config-file", QUICKSTART, "SOLVER.MAX_ITER", "5", "--resume"), tmp_path)
    assert_user_error(proc, "--resume", "put flags first")


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "--ckpt", str(text),
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, str(text), "not a PyTorch checkpoint")
    # the traceback is kept in the log
    assert "Traceback" in (tmp_path / "out" / "log.txt").read_text()


def test_truncated_checkpoint(tmp_path, quickstart_ckpt):
    data = open(quickstart_ckpt, "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) * 2 // 3])
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "--ckpt", str(cut),
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, str(cut), "truncated")


def test_missing_checkpoint(tmp_path):
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "--ckpt", str(tmp_path / "gone.pth"),
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, "gone.pth", "not found")


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    """A checkpoint of another architecture: the FER quickstart's Deep-Emotion classifier."""
    torch.manual_seed(0)
    model = build_model(load_config(os.path.join(ROOT, "config/quickstart_fer.yaml")))
    out = tmp_path_factory.mktemp("fer")
    Checkpointer(model, save_dir=str(out)).save("model_final", 0)
    return str(out / "model_final.pth")


def test_checkpoint_of_another_architecture_is_summarised(tmp_path, classifier_ckpt):
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "--ckpt", classifier_ckpt,
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    line = assert_user_error(proc, classifier_ckpt, "does not fit this model", "missing keys", "backbone.*")
    assert len(line) < 1000  # summarised, not every key


def test_missing_model_weights(tmp_path):
    proc = run(tool("train_net.py", "--config-file", QUICKSTART, "MODEL.WEIGHTS", str(tmp_path / "pre.pth"),
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, "MODEL.WEIGHTS", "pre.pth", "does not exist")


def test_dataset_not_linked_is_checked_before_weights_download(tmp_path):
    # the FEC config wants ImageNet weights (a download) and datasets/fec; with no network
    # and no dataset the dataset is named, and nothing was downloaded first
    proc = run(["bash", "train.sh", "config/fec/resnet18_conv3x3.yaml", "DATASETS.ROOT", str(tmp_path / "none"),
                "OUTPUT_DIR", str(tmp_path / "out")], tmp_path)
    assert_user_error(proc, "fec_train", "not linked", "make link FEC=")
    assert not (tmp_path / "torch_home").exists()


def test_pretrained_weights_without_network(tmp_path):
    proc = run(tool("train_net.py", "--config-file", "config/fec/resnet18_conv3x3.yaml",
                    "DATASETS.TRAIN", "('synthetic_fec_train',)", "DATASETS.TEST", "('synthetic_fec_test',)",
                    "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, "MODEL.BACKBONE.WEIGHTS 'imagenet'", "no network?",
                      "MODEL.BACKBONE.WEIGHTS /path/to/weights.pth")


def test_unknown_dataset_name(tmp_path, quickstart_ckpt):
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "--ckpt", quickstart_ckpt,
                    "DATASETS.TEST", "('synthetic_fec_tst',)", "OUTPUT_DIR", str(tmp_path / "out")), tmp_path)
    assert_user_error(proc, "synthetic_fec_tst", "did you mean synthetic_fec_test")


def test_bad_launch_environment(tmp_path):
    proc = run(tool("test_net.py", "--config-file", QUICKSTART, "OUTPUT_DIR", str(tmp_path / "out")), tmp_path,
               env={"WORLD_SIZE": "2", "RANK": "5", "MASTER_PORT": "29555"})
    assert_user_error(proc, "rank 5", "WORLD_SIZE")


def test_inference_sh_usage(tmp_path):
    proc = run(["bash", "inference.sh", "0", QUICKSTART], tmp_path)
    assert_user_error(proc, "usage")


@pytest.mark.slow
@pytest.mark.multiprocess
def test_multi_process_error_is_printed_once(tmp_path, classifier_ckpt):
    proc = run(["bash", "inference.sh", "2", QUICKSTART, classifier_ckpt, "OUTPUT_DIR", str(tmp_path / "out")],
               tmp_path)
    assert_user_error(proc, "does not fit this model")
    assert proc.stdout.count("error:") == 0
