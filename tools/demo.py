"""Run a trained model on a video, a camera or images: boxes and labels drawn per face.

    python tools/demo.py --config-file F --ckpt P --input VIDEO|CAMERA_INDEX|IMAGE_DIR|IMAGE
        [--output OUT.mp4|OUT_DIR|OUT.jpg] [--show] [--reference FACE.jpg]
        [--detector mtcnn|haar] [--min-face-size 20] [--device auto|cpu|cuda] [--max-frames N]
        [KEY VALUE ...]

Labels: the most probable expression and its probability (classifiers), valence and
arousal (regressors), the two strongest intensities (intensity regressors), the squared distance to the face of ``--reference`` (embeddings;
0 same expression, 4 opposite). Headless by default: ``--output`` writes the annotated
video (same frame count and rate as the input), or for an image folder a folder of
annotated images; ``--show`` opens a window (q or Esc quits) and needs an OpenCV with
GUI support. At the end it prints frames per second and the time per stage. Ctrl-C
stops a camera or a long video and still finishes the output.
"""
import os
import sys
import time
from collections import defaultdict

import cv2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fec.engine.defaults import default_argument_parser  # noqa: E402
from fec.predictor import DETECTOR_NAMES, ExpressionPredictor, list_images, read_image  # noqa: E402
from fec.predictor.draw import draw_faces, face_label  # noqa: E402
from fec.predictor.images import IMAGE_EXTENSIONS  # noqa: E402
from fec.utils.io import atomic_write  # noqa: E402
from fec.utils.errors import InputError, MissingFileError, UserError, run_cli  # noqa: E402

STAGES = ("decode", "detect", "crop", "model", "draw", "write")
WINDOW = "fec demo"


def open_capture(spec):
    """(cv2.VideoCapture, kind) for a camera index or a video file; a clear error when
    there is no such camera or the file cannot be read as a video."""
    if spec.isdigit() and not os.path.exists(spec):
        cap = cv2.VideoCapture(int(spec))
        if not cap.isOpened():
            raise InputError(f"no camera at index {spec}: OpenCV could not open it (is one connected, and free?)")
        return cap, "camera"
    cap = cv2.VideoCapture(spec)
    if not cap.isOpened():
        raise InputError(f"cannot read video {spec}: not a video, or in a format this OpenCV cannot decode")
    return cap, "video"


def video_frames(cap, spec, kind, stats):
    first = True
    while True:
        start = time.perf_counter()
        ok, frame = cap.read()
        stats["decode"] += time.perf_counter() - start
        if not ok:
            if first:
                what = f"camera {spec} gave no frame" if kind == "camera" else f"cannot read a frame from video {spec}"
                raise InputError(what)
            return
        first = False
        yield None, frame


def image_frames(paths, root, stats):
    for rel in paths:
        start = time.perf_counter()
        try:
            rgb = read_image(os.path.join(root, rel) if root else rel)
        except UserError as e:  # an unreadable image among many: the others still run
            print(f"skipping {rel}: {e}", file=sys.stderr)
            continue
        frame = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        stats["decode"] += time.perf_counter() - start
        yield rel, frame


class VideoSink:
    """Writes to a temporary file beside ``path``, renamed when closed: an interrupted
    run leaves the previous output, or a complete new one."""

    def __init__(self, path, fps, size):
        base, ext = os.path.splitext(path)
        self.path, self.tmp = path, f"{base}.tmp{os.getpid()}{ext}"
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if ext.lower() == ".avi" else "mp4v"))
        self.writer = cv2.VideoWriter(self.tmp, fourcc, fps, size)
        if not self.writer.isOpened():
            raise InputError(f"cannot write video {path}: no encoder for {ext or 'that name'}; use .mp4 or .avi")

    def write(self, name, frame):
        self.writer.write(frame)

    def close(self, complete=True):
        self.writer.release()
        if complete:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)


class ImageSink:
    """Annotated images under a folder (image-folder input) or one image file."""

    def __init__(self, path, is_dir):
        self.path, self.is_dir = path, is_dir
        if is_dir:
            os.makedirs(path, exist_ok=True)

    def write(self, name, frame):
        target = os.path.join(self.path, name) if self.is_dir else self.path
        ext = os.path.splitext(target)[1].lower()
        ok, buf = cv2.imencode(ext if ext in IMAGE_EXTENSIONS else ".png", frame)
        if not ok:
            raise InputError(f"cannot encode {target}")
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        atomic_write(target, buf.tobytes())

    def close(self, complete=True):
        pass


def check_gui():
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise InputError("--show needs OpenCV with GUI support (pip install 'opencv-python<5'); this one is "
                        "headless: use --output instead") from None


def make_source(args, stats):
    """(frames iterator of (name, BGR frame), sink factory(first frame) or None)."""
    spec = args.input
    if os.path.isdir(spec):
        paths = list_images(spec)
        if not paths:
            raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {spec}")
        sink = (lambda frame: ImageSink(args.output, True)) if args.output else None
        return image_frames(paths, spec, stats), sink
    if os.path.isfile(spec) and spec.lower().endswith(IMAGE_EXTENSIONS):
        sink = (lambda frame: ImageSink(args.output, False)) if args.output else None
        return image_frames([spec], "", stats), sink
    if not spec.isdigit() and not os.path.exists(spec):
        raise MissingFileError(f"input not found: {spec}; give a video, an image, an image folder or a camera index")
    cap, kind = open_capture(spec)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if 0 < fps < 1000 else 30.0  # cameras often report 0
    sink = (lambda frame: VideoSink(args.output, fps, (frame.shape[1], frame.shape[0]))) if args.output else None
    return video_frames(cap, spec, kind, stats), sink


def reference_embedding(predictor, path):
    faces = predictor(path)
    if not faces:
        raise InputError(f"no face found in the reference image {path}")
    if faces[0].embedding is None:
        raise InputError("--reference needs a model that outputs an embedding")
    return faces[0].embedding


def run(args):
    stats = defaultdict(float)
    frames, make_sink = make_source(args, stats)  # input errors before the model loads
    if args.show:
        check_gui()
    predictor = ExpressionPredictor.from_config(args.config_file or None, args.ckpt, args.opts,
                                                detector=args.detector, device=args.device,
                                                min_face_size=args.min_face_size)
    reference = reference_embedding(predictor, args.reference) if args.reference else None
    predictor.reset_timings()
    sink, count, num_faces, complete = None, 0, 0, True
    start = time.perf_counter()
    try:
        for name, frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            faces = predictor.predict_rgb([rgb])[0]
            t = time.perf_counter()
            draw_faces(frame, faces, [face_label(f, reference) for f in faces])
            stats["draw"] += time.perf_counter() - t
            t = time.perf_counter()
            if make_sink is not None:
                sink = sink or make_sink(frame)
                sink.write(name, frame)
            stats["write"] += time.perf_counter() - t
            count, num_faces = count + 1, num_faces + len(faces)
            if args.show:
                cv2.imshow(WINDOW, frame)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            if args.max_frames and count >= args.max_frames:
                break
    except KeyboardInterrupt:
        print("interrupted: finishing the output", file=sys.stderr)
    except BaseException:
        complete = False
        raise
    finally:
        if sink is not None:
            sink.close(complete)
        if args.show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - start
    stats.update({k: predictor.seconds[k] for k in ("detect", "crop", "model")})
    report(count, num_faces, elapsed, stats, args.output if sink is not None else None)


def report(count, num_faces, elapsed, stats, output):
    if count == 0:
        raise InputError("no frame was processed")
    print(f"frames: {count} in {elapsed:.2f} s: {count / elapsed:.2f} frames/s; faces: {num_faces} "
          f"({num_faces / count:.2f} per frame)")
    print("per frame (ms): " + " | ".join(f"{s} {1000 * stats[s] / count:.1f}" for s in STAGES))
    if output:
        print(f"wrote {output}")


def parse_args(argv=None):
    p = default_argument_parser(__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="checkpoint (.pth) of the model the config describes")
    p.add_argument("--input", required=True, help="video file, camera index (0, 1 ...), image folder or image")
    p.add_argument("--output", default="", help="annotated video (.mp4, .avi), image folder, or image")
    p.add_argument("--show", action="store_true", help="show the frames in a window")
    p.add_argument("--reference", default="", help="image of a face: label embeddings by distance to it")
    p.add_argument("--detector", default="mtcnn", choices=DETECTOR_NAMES)
    p.add_argument("--min-face-size", type=int, default=20,
                   help="smallest face to look for, pixels (larger: faster detection)")
    p.add_argument("--device", default=None, help="cpu, cuda, auto (default: MODEL.DEVICE)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: at the end)")
    return p.parse_args(argv)


def main(argv=None):
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
