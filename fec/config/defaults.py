"""Every option of fec, with its default and meaning.

An experiment file under config/ changes some of these; command-line ``KEY VALUE``
pairs change them again; then the config is frozen. A key that is not defined here is
an error, and so is a value of another type.
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------- #
_C.MODEL = CN()
# Meta-architecture by registry name: what the model computes from a batch and which
# loss it trains with. "TripletEmbeddingNet" is the FEC expression embedding;
# "Classifier" (expression classes, MODEL.CLASSIFIER), "ValenceArousalRegressor"
# (valence and arousal, MODEL.REGRESSOR; "AffectRegressor" is its former name) and "ClassifierRegressor" (both heads on one backbone)
# train on FER2013 / AffectNet style datasets; "IntensityRegressor" (MODEL.INTENSITY)
# on per-face intensities such as action units.
_C.MODEL.META_ARCHITECTURE = "TripletEmbeddingNet"
# "auto" picks cuda when a GPU is visible, else cpu; or "cpu", "cuda", "cuda:1".
_C.MODEL.DEVICE = "auto"
# A checkpoint (fec .pth) or plain state_dict to start training from. Empty: none.
_C.MODEL.WEIGHTS = ""
# Key prefixes that MODEL.WEIGHTS does not load: checkpoint keys under them are
# dropped and the model's keys under them keep their initialisation (both named in the
# log); every other key must match. ["heads."] starts a regressor from a classifier
# (or a classifier with other classes) with the backbone only; ["heads.regressor."]
# starts a ClassifierRegressor from a Classifier. Not used by --resume.
_C.MODEL.WEIGHTS_SKIP = []
# Per-channel mean and std (0-255 scale, RGB) subtracted/divided inside the model.
# Empty: the backbone's own (ImageNet statistics for resnet18 and mobilenet_v2,
# FaceNet's for the Inception nets, 127.5 / 127.5 for deep_emotion). Images reach the
# model as uint8, so exports take raw pixels.
_C.MODEL.PIXEL_MEAN = []
_C.MODEL.PIXEL_STD = []
# Memory layout of the model's 4-D weights and of its input: channels_last (NHWC) or
# contiguous (NCHW). Outputs are the same within float tolerance; only speed differs.
# The predictor and exports follow the training config. Training step on a shared
# 2-core CPU (tools/benchmark.py train --compare MODEL.CHANNELS_LAST=False,True
# --parts model, paired medians of 3 alternating repeats; README, "Speed"): resnet18
# 160 px x1.77 and x1.10 (two runs), inception_nn2 112 px x1.34, convnet 64 px x1.08,
# mobilenet_v2 112 px x1.13, inception_resnet_v1 (frozen) 112 px x0.98, deep_emotion
# 48 px x0.88. The gain depends on the backbone, so the default stays NCHW and
# config/fec/resnet18_conv3x3.yaml and inception_nn2_dense.yaml turn it on.
_C.MODEL.CHANNELS_LAST = False
# torch.compile the model for training and evaluation (the first iterations compile;
# checkpoints keep the plain module's keys).
_C.MODEL.COMPILE = False

_C.MODEL.BACKBONE = CN()
# Backbone by registry name: "resnet18", "inception_nn2", "inception_resnet_v1",
# "mobilenet_v2", "deep_emotion" (Deep-Emotion's spatial transformer and conv net,
# made for 48x48 faces), "convnet" (a small plain conv net for the CPU quickstart).
_C.MODEL.BACKBONE.NAME = "resnet18"
# Where the backbone is cut: the name of its last kept stage. Empty: its default
# (resnet18 "layer4"; inception_nn2 "inception_4e", as in the FEC paper;
# inception_resnet_v1 "repeat_2"; mobilenet_v2 "last_conv", 1280 channels;
# deep_emotion "fc", its 50-d hidden layer; convnet "stage3").
_C.MODEL.BACKBONE.CUT_AT = ""
# Pretrained weights: "" (random init), "imagenet" (resnet18, mobilenet_v2), "vggface2" or
# "casia-webface" (inception_resnet_v1); these download, so they need the network.
# Or a local state_dict file (.pth) of the uncut backbone, which needs none.
_C.MODEL.BACKBONE.WEIGHTS = ""
# Freeze the first FREEZE_AT stages of the backbone, the stem counting as the first
# (0: train everything; 2: stem and layer1 of resnet18; -1: the whole backbone, as
# the FEC paper does with its pretrained FaceNet).
_C.MODEL.BACKBONE.FREEZE_AT = 0
# Width of the first stage of "convnet" (later stages 2x and 4x); other backbones
# ignore it.
_C.MODEL.BACKBONE.WIDTH = 32

_C.MODEL.HEAD = CN()
# Embedding head by registry name: "dense" (DenseNet block) or "conv3x3".
_C.MODEL.HEAD.NAME = "conv3x3"
# Width of the 1x1 reduction conv and of the hidden fully connected layer.
_C.MODEL.HEAD.HIDDEN_DIM = 512
# Size of the L2-normalised embedding (the paper's is 16).
_C.MODEL.HEAD.EMBEDDING_DIM = 16
# "dense" head: number of layers of the DenseNet block and its growth rate.
_C.MODEL.HEAD.DENSE_LAYERS = 5
_C.MODEL.HEAD.GROWTH_RATE = 64
# Dropout before the last fully connected layer (off in eval mode).
_C.MODEL.HEAD.DROPOUT = 0.0

_C.MODEL.LOSS = CN()
# Triplet margin per triplet type: one-class, two-class, three-class (paper: 0.1,
# 0.2, 0.2), on squared L2 distances of unit-norm embeddings.
_C.MODEL.LOSS.MARGINS = [0.1, 0.2, 0.2]

# Expression classification ("Classifier", "ClassifierRegressor"): global average pool
# of the backbone's map → dropout → linear layer to NUM_CLASSES logits.
_C.MODEL.CLASSIFIER = CN()
_C.MODEL.CLASSIFIER.NUM_CLASSES = 7
# One name per class, in label order; what predictions are reported as. Default:
# FER2013's. AffectNet's eight: neutral, happy, sad, surprise, fear, disgust, anger,
# contempt.
_C.MODEL.CLASSIFIER.CLASS_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
_C.MODEL.CLASSIFIER.DROPOUT = 0.0
# Cross-entropy weight of each class, in label order (e.g. inverse frequencies for an
# imbalanced training set); empty: all 1.
_C.MODEL.CLASSIFIER.CLASS_WEIGHTS = []
# Label smoothing of the cross-entropy, 0 to <1 (0: none).
_C.MODEL.CLASSIFIER.LABEL_SMOOTHING = 0.0
# Weight of loss_cls in the total loss (matters beside loss_va).
_C.MODEL.CLASSIFIER.LOSS_WEIGHT = 1.0

# Valence/arousal regression ("ValenceArousalRegressor", "ClassifierRegressor"): global
# average pool → dropout → linear layer to 2 outputs (valence, arousal; targets in
# [-1, 1]).
_C.MODEL.REGRESSOR = CN()
# "mse" (mean squared error over both dimensions) or "ccc" (1 − concordance correlation
# coefficient, averaged over the two, computed over the batch).
_C.MODEL.REGRESSOR.LOSS = "mse"
_C.MODEL.REGRESSOR.DROPOUT = 0.0
# Weight of loss_va in the total loss.
_C.MODEL.REGRESSOR.LOSS_WEIGHT = 1.0

# Intensity regression ("IntensityRegressor"): global average pool → dropout → linear
# layer with one output per name, mean squared error. The default names are the
# synthetic faces' expression dimensions (catalog synthetic_intensity_*), which the
# quickstart's backbone is pretrained on.
_C.MODEL.INTENSITY = CN()
_C.MODEL.INTENSITY.NAMES = ["smile", "mouth_open", "brow_raise", "brow_tilt", "eye_open", "nose_wrinkle"]
_C.MODEL.INTENSITY.DROPOUT = 0.0

# ---------------------------------------------------------------------------- #
# Input
# ---------------------------------------------------------------------------- #
_C.INPUT = CN()
# Side of the square face crop fed to the model, in pixels (16 to 299; each backbone
# also checks that its cut fits: deep_emotion needs 18, FER2013 faces are 48).
_C.INPUT.SIZE = 224
# Training augmentation. Random crop of CROP_SCALE[0]..CROP_SCALE[1] of the area
# with aspect ratio in 3/4..4/3, resized to SIZE; [1.0, 1.0] turns it off.
_C.INPUT.CROP_SCALE = [0.85, 1.0]
# Probability of a horizontal flip.
_C.INPUT.FLIP_PROB = 0.5
# Brightness, contrast and saturation jitter: factors drawn from [1-x, 1+x].
_C.INPUT.COLOR_JITTER = 0.2
# Where training augmentation runs: "loader" (NumPy/OpenCV in the loader workers) or
# "device" (the loader yields uint8 faces at SIZE plus each face's random draws; crop,
# flip and jitter then run batched on the model's device, fec/data/device_augment.py).
# The draws are the same either way, so both follow the same distributions.
_C.INPUT.AUGMENT_ON = "loader"
# How the faces are cut and coloured, recorded with the training config so the
# predictor cuts new faces the same way (never guessed from dataset names).
# FACE_BOX_EXPANSION: the face box is grown by this fraction of its longer side, then
# squared (fec.data.crop): datasets that crop at load time (AffectNet) use it; ready-made
# crops were cut with it (prepare_fec: 0.15). FACE_COLOR: "rgb", or "grey" (the face
# turned grey, replicated to three channels, before the transforms; FER2013 is grey).
_C.INPUT.FACE_BOX_EXPANSION = 0.15
_C.INPUT.FACE_COLOR = "rgb"

# ---------------------------------------------------------------------------- #
# Datasets
# ---------------------------------------------------------------------------- #
_C.DATASETS = CN()
# Folder holding the datasets that the catalog (fec/config/paths_catalog.py) names;
# `make link FEC=/path` puts a symlink there.
_C.DATASETS.ROOT = "datasets"
# Catalog names of the training and test datasets.
_C.DATASETS.TRAIN = ("synthetic_fec_train",)
_C.DATASETS.TEST = ("synthetic_fec_test",)
# Read faces from packed stores (tools/pack_faces.py: every face decoded and cropped
# once, at INPUT.SIZE, into one memory-mapped uint8 file) instead of decoding images.
# A store that is missing or was made from other data or another size is an error that
# says how to rebuild it. Synthetic datasets render on the fly and need none.
_C.DATASETS.PACKED = False
# Folder of the stores; "" is <DATASETS.ROOT>/packed.
_C.DATASETS.PACKED_DIR = ""

# The synthetic expression dataset, rendered on the fly (fec/data/datasets/synthetic.py).
_C.DATASETS.SYNTHETIC = CN()
_C.DATASETS.SYNTHETIC.SEED = 0
# Identities per split (train and test never share one) and faces per identity.
_C.DATASETS.SYNTHETIC.TRAIN_IDENTITIES = 400
_C.DATASETS.SYNTHETIC.TEST_IDENTITIES = 100
_C.DATASETS.SYNTHETIC.FACES_PER_IDENTITY = 8
# Triplets per split; about six per test face, as in FEC.
_C.DATASETS.SYNTHETIC.TRAIN_TRIPLETS = 20000
_C.DATASETS.SYNTHETIC.TEST_TRIPLETS = 1600
# Keep only triplets whose closest pair is closer than the next pair by at least this
# (Euclidean expression distance); 0 keeps every sampled triplet, near-ties included.
_C.DATASETS.SYNTHETIC.MIN_GAP = 0.0
# Std of the noise each simulated annotator adds to expression distances.
_C.DATASETS.SYNTHETIC.ANNOTATOR_NOISE = 0.1
# Side of the rendered image in pixels; 0 renders at INPUT.SIZE.
_C.DATASETS.SYNTHETIC.RENDER_SIZE = 0

# Synthetic faces labelled for classification and valence/arousal, rendered on the fly
# (fec/data/datasets/synthetic_expression.py; catalog synthetic_fer_*, synthetic_affectnet_*,
# synthetic_affectnet_va_*, synthetic_affect_*). Faces per split (train and test never
# share an identity) and faces per identity.
_C.DATASETS.SYNTHETIC_AFFECT = CN()
_C.DATASETS.SYNTHETIC_AFFECT.SEED = 0
_C.DATASETS.SYNTHETIC_AFFECT.TRAIN_IMAGES = 4000
_C.DATASETS.SYNTHETIC_AFFECT.TEST_IMAGES = 1000
_C.DATASETS.SYNTHETIC_AFFECT.IMAGES_PER_IDENTITY = 8
# Side of the AffectNet-style colour faces in pixels; 0 renders at INPUT.SIZE.
# FER2013-style faces are always 48x48 grey, as in FER2013.
_C.DATASETS.SYNTHETIC_AFFECT.RENDER_SIZE = 0

# FER2013 (fec/data/datasets/fer2013.py). The parsed CSV is cached as a uint8 array:
# "" writes <csv>.cache.npz beside the CSV; a folder puts it there instead (for a
# read-only dataset folder). The cache is rebuilt when the CSV's size or mtime changes.
_C.DATASETS.FER2013 = CN()
_C.DATASETS.FER2013.CACHE_DIR = ""

# FER+ (fec/data/datasets/ferplus.py; catalog ferplus_*): FER2013's faces with ten
# annotators' votes each. Faces are kept by the FERPlus reference rule (a majority of
# the votes, single votes ignored, not unknown or not-a-face). "majority": train on the
# majority emotion; "probability": cross-entropy to the vote distribution over the 8
# emotions. Evaluation always scores against the majority emotion.
_C.DATASETS.FERPLUS = CN()
_C.DATASETS.FERPLUS.LABEL_MODE = "majority"

# ---------------------------------------------------------------------------- #
# Data loader
# ---------------------------------------------------------------------------- #
_C.DATALOADER = CN()
# Loader worker processes per training process (0: load in the main process).
_C.DATALOADER.NUM_WORKERS = 2
# Keep the workers alive between passes over a loader (with NUM_WORKERS > 0); batches
# each worker prepares ahead.
_C.DATALOADER.PERSISTENT_WORKERS = False
_C.DATALOADER.PREFETCH_FACTOR = 2

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()
# "sgd", "adam" or "adamw".
_C.SOLVER.OPTIMIZER = "sgd"
_C.SOLVER.BASE_LR = 0.01
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.BETAS = [0.9, 0.999]
_C.SOLVER.WEIGHT_DECAY = 0.0001
# Weight decay of normalisation layers and of biases (usually none).
_C.SOLVER.WEIGHT_DECAY_NORM = 0.0
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0
# Training length in iterations, and the global batch in triplets (split across
# processes in distributed training).
_C.SOLVER.MAX_ITER = 20000
_C.SOLVER.IMS_PER_BATCH = 32
# Learning-rate schedule after warm-up: "multistep" (times GAMMA at each of STEPS)
# or "cosine" (down to BASE_LR * COSINE_FINAL_FACTOR at MAX_ITER). Stepped per iteration.
_C.SOLVER.SCHEDULER = "multistep"
_C.SOLVER.STEPS = (15000,)
_C.SOLVER.GAMMA = 0.1
_C.SOLVER.COSINE_FINAL_FACTOR = 0.0
# Linear warm-up from BASE_LR * WARMUP_FACTOR over WARMUP_ITERS iterations.
_C.SOLVER.WARMUP_ITERS = 500
_C.SOLVER.WARMUP_FACTOR = 0.001
# Save a checkpoint every CHECKPOINT_PERIOD iterations (and at the end).
_C.SOLVER.CHECKPOINT_PERIOD = 2500
# Keep only the newest CHECKPOINT_KEEP periodic checkpoints (model_NNNNNNN.pth) besides
# model_final; 0 keeps them all. Older ones are removed after each new one is complete.
_C.SOLVER.CHECKPOINT_KEEP = 0
# Clip the gradient norm to this value; 0 disables clipping.
_C.SOLVER.CLIP_GRAD_NORM = 0.0
# Mixed precision: torch.autocast around the model's forward in training and
# evaluation, DTYPE "bfloat16" or "float16"; embeddings and losses stay float32.
# float16 scales the loss (torch.amp.GradScaler, checkpointed for an exact --resume);
# a step with inf/nan gradients is skipped and the scale lowered, not an error.
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False
_C.SOLVER.AMP.DTYPE = "bfloat16"

# ---------------------------------------------------------------------------- #
# Test
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Images per batch at inference, global (split across processes).
_C.TEST.IMS_PER_BATCH = 64
# Evaluate on DATASETS.TEST every EVAL_PERIOD iterations during training (0: only
# at the end).
_C.TEST.EVAL_PERIOD = 0

# ---------------------------------------------------------------------------- #
# Distributed (read only when launched with several processes: torchrun,
# python -m torch.distributed.launch, or SLURM's srun)
# ---------------------------------------------------------------------------- #
_C.DIST = CN()
# Process-group backend: "auto" (nccl on CUDA, gloo on CPU), "nccl" or "gloo".
_C.DIST.BACKEND = "auto"
# Seconds a collective may wait for the other ranks before the job fails with an
# error, instead of hanging when a rank died or got stuck.
_C.DIST.TIMEOUT = 1800
# Convert BatchNorm layers to SyncBatchNorm, so statistics are computed over the
# global batch. CUDA (nccl) only.
_C.DIST.SYNC_BN = False

# ---------------------------------------------------------------------------- #
# CUDA (read only when MODEL.DEVICE resolves to a GPU; both forced off when
# DETERMINISTIC is True)
# ---------------------------------------------------------------------------- #
_C.CUDA = CN()
# cudnn.benchmark: try the convolution algorithms once per input shape and keep the
# fastest (inputs are fixed-size squares, so it pays off after the first iteration).
_C.CUDA.CUDNN_BENCHMARK = True
# TensorFloat-32 for float32 matmuls and convolutions (Ampere and later): about 10
# mantissa bits instead of 23, several times faster.
_C.CUDA.TF32 = True

# ---------------------------------------------------------------------------- #
# Misc
# ---------------------------------------------------------------------------- #
# Logs, checkpoints, metrics.json, TensorBoard events and results go here.
_C.OUTPUT_DIR = "output"
# Seed of model initialisation and of the training data stream.
_C.SEED = 0
# Deterministic mode: cuDNN's deterministic algorithms without autotuning,
# torch.use_deterministic_algorithms (an op with no deterministic CUDA kernel is an
# error: deep_emotion's grid_sample backward), no TF32; it overrides CUDA settings that
# would allow those. With it, --resume on a GPU reaches the same bits as an
# uninterrupted run on that GPU, at some cost in speed. CPU runs are deterministic
# without it (README, Determinism).
_C.DETERMINISTIC = False
# Log training metrics every LOG_PERIOD iterations.
_C.LOG_PERIOD = 20
