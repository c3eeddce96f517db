from setuptools import find_packages, setup

setup(
    name="fec",
    version="0.1.0",
    description="Training framework for facial-expression models: the FEC expression-similarity "
                "embedding, expression classifiers and valence/arousal regressors",
    packages=find_packages(include=["fec", "fec.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",  # device_id binding of the process group from 2.3, skipped on 2.7.0 (see README)
        "torchvision>=0.16",
        "numpy",
        "pillow",  # decoding checks in prepare_fec, PIL inputs of the predictor
        "pyyaml",
        "yacs",
        "tqdm",
        "opencv-python-headless<5",  # 5.x ships no Haar cascades
        "facenet-pytorch==2.5.3",  # 2.6 pins an old torch
        "tensorboard",
    ],
    extras_require={
        # tools/export.py --format onnx: torch's ONNX exporter needs onnx + onnxscript;
        # onnxruntime runs the parity check and the latency.
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "dev": ["pytest", "pytest-random-order", "scikit-image", "onnx", "onnxscript", "onnxruntime"],
    },
)
