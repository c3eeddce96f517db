"""Expression retrieval: index a folder of faces, then find the nearest expressions.

    python tools/retrieve.py index --config-file F --ckpt P --images DIR --out INDEX.npz
        [--detector mtcnn|haar|none] [--device D] [KEY VALUE ...]
    python tools/retrieve.py query INDEX.npz IMAGE [-k 8] [--grid OUT.png] [--ckpt P]
        [--detector D] [--device D]

``index`` embeds every face found in the images under DIR (``--detector none``: the
images are face crops, such as a prepared FEC ``images/`` folder) and writes the index;
interrupted, it resumes when run again. ``query`` embeds the most confident face of
IMAGE with the model the index was built with (its config is stored in the index; its
checkpoint path too, or give ``--ckpt``), prints the k nearest faces by squared L2
distance, and with ``--grid`` writes a picture: the query beside its neighbours, with
their distances.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from yacs.config import CfgNode  # noqa: E402

from fec.predictor import DETECTOR_NAMES, ExpressionPredictor, read_image  # noqa: E402
from fec.predictor.retrieval import build_index, face_tile, load_index, make_grid, nearest, write_png  # noqa: E402
from fec.utils.logger import restores_logging, setup_logger  # noqa: E402
from fec.utils.errors import InputError, MissingFileError, run_cli  # noqa: E402

TILE = 128


def cmd_index(args):
    predictor = ExpressionPredictor.from_config(args.config_file or None, args.ckpt, args.opts,
                                                detector=args.detector, device=args.device)
    index = build_index(predictor, args.images, args.out, args.ckpt)
    print(f"indexed {len(index)} faces from {len(index.done)} images under {args.images} → {args.out}")


def cmd_query(args):
    index = load_index(args.index)
    meta = index.meta
    ckpt = args.ckpt or meta["checkpoint"]
    if not os.path.isfile(ckpt):
        raise MissingFileError(f"checkpoint {ckpt} named by the index is gone; give --ckpt")
    detector = args.detector or meta["detector"]
    # the device is this machine's choice; indexes of older versions name the one they were built on
    predictor = ExpressionPredictor.from_config(CfgNode.load_cfg(meta["config"]), ckpt, detector=detector,
                                                device=args.device or "auto")
    rgb = read_image(args.image)
    faces = predictor.predict_rgb([rgb])[0]
    if not faces:
        raise InputError(f"no face found in {args.image} (detector {detector})")
    query = faces[0]
    if query.vector.shape[0] != index.embeddings.shape[1]:
        raise InputError(f"the model gives vectors of size {query.vector.shape[0]}, the index holds "
                         f"{index.embeddings.shape[1]}: index and query with the same model")
    order, dist = nearest(index, query.vector, args.k)
    box = ", ".join(f"{v:.0f}" for v in query.box)
    print(f"query {args.image}: face at ({box}), score {query.score:.2f}; index {args.index}: {len(index)} faces")
    print(f"{'rank':>4}  {'d2':>8}  image")
    for r, (i, d) in enumerate(zip(order, dist)):
        where = "" if meta["detector"] == "none" else "  (" + ", ".join(f"{v:.0f}" for v in index.boxes[i]) + ")"
        print(f"{r + 1:>4}  {d:8.4f}  {index.paths[i]}{where}")
    if args.grid:
        tiles = [face_tile(read_image(os.path.join(meta["folder"], index.paths[i])), index.boxes[i],
                           meta["detector"], TILE) for i in order]
        grid = make_grid(face_tile(rgb, query.box, detector, TILE), os.path.basename(args.image), tiles,
                         [str(index.paths[i]) for i in order], dist)
        write_png(args.grid, grid)
        print(f"wrote {args.grid}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("index", help="embed the faces of a folder of images")
    i.add_argument("--config-file", default="", metavar="FILE")
    i.add_argument("--ckpt", required=True)
    i.add_argument("--images", required=True, help="folder of images (searched recursively)")
    i.add_argument("--out", required=True, help="index file to write (.npz)")
    i.add_argument("--detector", default="mtcnn", choices=DETECTOR_NAMES,
                   help="face detector; none: the images are face crops")
    i.add_argument("--device", default=None)
    i.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    q = sub.add_parser("query", help="the nearest expressions to the face of an image")
    q.add_argument("index")
    q.add_argument("image")
    q.add_argument("-k", type=int, default=8, help="number of neighbours")
    q.add_argument("--grid", default="", help="write the query and its neighbours to this PNG")
    q.add_argument("--ckpt", default="", help="checkpoint, if not the one the index names")
    q.add_argument("--detector", default=None, choices=DETECTOR_NAMES, help="default: the index's")
    q.add_argument("--device", default=None)
    return p.parse_args(argv)


@restores_logging
def main(argv=None):
    args = parse_args(argv)
    setup_logger("fec")
    logging.getLogger("fec.utils.checkpoint").setLevel(logging.WARNING)
    (cmd_index if args.command == "index" else cmd_query)(args)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
