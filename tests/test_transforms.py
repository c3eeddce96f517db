import numpy as np
import torch
from skimage import data

from fec.data.crop import crop_face, square_box
from fec.data.transforms import EvalTransform, TrainTransform


def test_train_transform_is_a_function_of_the_generator_seed():
    img = data.astronaut()[:300, 100:400]
    t = TrainTransform(96, (0.7, 1.0), 0.5, 0.3)
    a = t(img, torch.Generator().manual_seed(3))
    b = t(img, torch.Generator().manual_seed(3))
    c = t(img, torch.Generator().manual_seed(4))
    assert a.shape == (3, 96, 96) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flip_and_no_augmentation():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :8] = 255  # a bright stripe on the left
    flip = TrainTransform(64, (1.0, 1.0), 1.0, 0.0)(img, torch.Generator().manual_seed(0))
    assert flip[:, :, -8:].float().mean() == 255 and flip[:, :, :8].float().mean() == 0
    same = TrainTransform(64, (1.0, 1.0), 0.0, 0.0)(img, torch.Generator().manual_seed(0))
    assert torch.equal(same, torch.from_numpy(img).permute(2, 0, 1))


def test_eval_transform_resizes_without_randomness():
    img = data.astronaut()
    out = EvalTransform(80)(img)
    assert out.shape == (3, 80, 80)
    assert torch.equal(out, EvalTransform(80)(img))


def test_square_crop_expands_and_clips():
    # a 100x50 box in a 400x200 image: side = 100 * 1.15 = 115 around (150, 75)
    x0, y0, x1, y1 = square_box((0.25, 0.5, 0.25, 0.5), 400, 200)
    assert (x1 - x0, y1 - y0) in {(115, 115), (116, 116)}
    assert abs((x0 + x1) / 2 - 150) <= 1 and abs((y0 + y1) / 2 - 75) <= 1
    # a box at the corner is clipped at the border
    x0, y0, x1, y1 = square_box((0.0, 0.2, 0.0, 0.2), 100, 100)
    assert (x0, y0) == (0, 0) and x1 <= 25 and y1 <= 25
    face = crop_face(data.astronaut(), (0.35, 0.55, 0.05, 0.35), 64)
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
