from setuptools import find_packages, setup

# the command table lives in the package (python -m nnocc uses it too); read it without importing nnocc
_namespace: dict = {}
exec(open("nnocc/cli/commands.py", encoding="utf-8").read(), _namespace)
COMMANDS = {f"nnocc_{name}": module for name, module in _namespace["COMMANDS"].items()}

setup(
    name="nnocc",
    version="0.1.0",
    description="Self-configuring 3D medical image segmentation with occupancy networks",
    long_description=open("readme.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["nnocc", "nnocc.*"]),
    python_requires=">=3.9",
    # torch is required but never pinned to a release: an installed torch (CPU or CUDA) is kept.
    install_requires=[
        "torch>=2.1",
        "dynamic-network-architectures>=0.3.1,<0.4",  # 0.4 pulls timm -> torchvision -> a new CUDA torch
        "batchgenerators>=0.25",
        "acvl-utils>=0.2",
        "SimpleITK>=2.2",
        "nibabel>=5.0",
        "numpy>=1.24",
        "scipy>=1.10",
        "tqdm>=4.60",
        "matplotlib>=3.6",  # progress.png and overlay pictures, as in nnU-Net
        # imported directly, not only through acvl-utils: compressed preprocessed arrays, connected
        # components (postprocessing, overlays), marching cubes (surface metrics, meshes)
        "blosc2>=2.0",
        "connected-components-3d>=3.10",
        "scikit-image>=0.19",
    ],
    # surface-distance is DeepMind's reference implementation (KiTS23's official metric): the tests
    # check nnocc's own surface metrics against it.  ruff and mypy are pinned so that CI's verdict
    # does not change with a new release's rules.
    extras_require={"test": ["pytest>=7", "surface-distance>=0.1", "ruff==0.17.6", "mypy==2.4.1"]},
    entry_points={"console_scripts": [f"{cmd}=nnocc.cli.{module}:main" for cmd, module in COMMANDS.items()]},
)
