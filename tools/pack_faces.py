"""Pack datasets' faces into memory-mapped stores for DATASETS.PACKED training:

    python tools/pack_faces.py --config-file F [--datasets NAME ...] [--workers N] [--force] [KEY VALUE ...]

Each face is decoded and cropped once, as the dataset's loader does, resized to
INPUT.SIZE and written to <DATASETS.PACKED_DIR>/<NAME>.faces (PACKED_DIR "" is
<DATASETS.ROOT>/packed). Without --datasets: every dataset of DATASETS.TRAIN and
DATASETS.TEST that has files (synthetic ones need no store). A store that is already
up to date is kept; an interrupted pack leaves no store, run it again."""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.config import load_config  # noqa: E402
from fec.data.pack import pack_dataset  # noqa: E402
from fec.utils.errors import run_cli  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Trailing KEY VALUE pairs override the config, e.g. INPUT.SIZE 224")
    parser.add_argument("--config-file", default="", metavar="FILE", help="YAML experiment file")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME", help="catalog names to pack")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="decoding processes (0: in this process); default: one per CPU")
    parser.add_argument("--force", action="store_true", help="rewrite stores that are up to date")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.config_file or None, args.opts)
    names = args.datasets or list(dict.fromkeys([*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]))
    for name in names:
        path = pack_dataset(cfg, name, workers=args.workers, progress=not args.quiet, force=args.force)
        print(f"{name}: {path}" if path else f"{name}: needs no store (rendered on the fly)")


if __name__ == "__main__":
    run_cli(main)
