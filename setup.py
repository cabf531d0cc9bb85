"""mixqsam2: mixed-precision SAM2 + SIS memory synthesis for Jetson/TensorRT.

The library lives in ``toolkit/mixqsam2`` (src layout). ``sam2`` itself is installed
separately (see the Makefile): its PyPI sdist must be built without build isolation and
without its declared dependencies, or pip pulls a multi-GB CUDA torch.
"""

from setuptools import find_packages, setup

setup(
    name="mixqsam2",
    version="0.1.0",
    description="Edge deployment of SAM2: importance-driven mixed precision and SIS memory synthesis",
    python_requires=">=3.10",
    package_dir={"": "toolkit"},
    packages=find_packages("toolkit"),
    package_data={"mixqsam2": ["models/configs/*.yaml", "models/weights/*.pt", "assets/*", "assets/*/*", "assets/*/*/*"]},
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pillow>=9.0",
        "tqdm>=4.60",
        "pyyaml>=6.0",
    ],
    extras_require={
        # torch==2.13.0 is the CPU wheel on the workstation image; sam2==1.1.0 is installed
        # by the Makefile (no build isolation, no deps) and cannot be listed here.
        # scikit-image: its sample photos texture the generated data (synth, recipes' synth-* sets, train-pico)
        # onnx + onnx-graphsurgeon: `mixqsam2 export`; onnxruntime: the ort backend and the export's own check
        "calib": ["torch>=2.3", "hydra-core>=1.3", "iopath>=0.1.10", "pycocotools>=2.0.7", "scipy>=1.10",
                  "matplotlib>=3.7", "scikit-image>=0.21", "onnx>=1.17", "onnxruntime>=1.20",
                  "onnx-graphsurgeon>=0.5", "ml_dtypes>=0.4"],
        # sam2's own training package (training.model.sam2, training.loss_fns) imports these
        "train": ["tensordict>=0.5", "tensorboard>=2.10", "matplotlib>=3.7", "scikit-image>=0.21"],
        # the Jetson runtime: run_stream/eval with --backend ort (numpy, opencv, pillow come with the base
        # install); no torch, no sam2
        "jetson": ["onnxruntime>=1.20", "onnx>=1.17", "pycocotools>=2.0.7"],  # onnx: --ort-kernels fast
        # the TensorRT backend: tensorrt itself comes with JetPack / NVIDIA's TensorRT containers
        "trt": ["cuda-python>=12.0"],
        "dev": ["pytest>=7", "scikit-image>=0.21", "matplotlib>=3.7"],  # matplotlib: the held-out generator's photos and fonts
    },
    entry_points={
        "console_scripts": [
            "mixqsam2=mixqsam2.cli.main:main",
            "run_stream=mixqsam2.cli.run_stream:main",
        ]
    },
)
