"""Packaging for captum-higher-order."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    namespace: dict = {}
    with open(os.path.join(HERE, "captum_higher_order", "version.py")) as f:
        exec(f.read(), namespace)
    return namespace["__version__"]


def read_readme() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


VISION = ["torchvision"]
# to_shapiq and the Quantus adapter (captum_higher_order.interop). shapiq needs
# Python >= 3.10; on 3.9 its tests skip.
INTEROP = ["shapiq; python_version >= '3.10'", "quantus"]
# benchmarks/peers.py: the peers themselves (path-explain declares no dependencies;
# its package __init__ imports TensorFlow, the benchmark loads its torch module only).
BENCH = INTEROP + ["path-explain", "scikit-learn"]
DEV = VISION + INTEROP + ["path-explain"] + [
    "pytest",
    "pytest-timeout",
    "pytest-xdist",
    "scikit-learn",
    "ruff",
    "mypy",
    "nbclient",
    "nbformat",
    "ipykernel",
    "tqdm",
    "zennit",  # oracle for DTDRootCheck on ResNet/VGG (tests/attr/dtd)
]
# Hugging Face models and offline tokenizers (captum_higher_order.text, tests/text).
TEXT = ["transformers", "tokenizers"]
DEV = DEV + TEXT
# The documentation site (`make docs`, mkdocs.yml); tests/test_docs_site.py builds it in
# strict mode, and `make dist-check` uses build and twine, so both are in dev too.
DOCS = ["mkdocs", "mkdocs-material", "mkdocstrings[python]", "mkdocs-jupyter"]
DEV += DOCS + ["build", "twine"]

setup(
    name="captum-higher-order",
    version=read_version(),
    description=(
        "Higher-order attribution for PyTorch as a Captum plugin: Hessians, "
        "cross derivatives and feature interactions"
    ),
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=find_packages(include=["captum_higher_order", "captum_higher_order.*"]),
    package_data={"captum_higher_order": ["py.typed", "zoo/*.pt", "zoo/*.json"]},
    include_package_data=True,
    install_requires=["torch>=2.3", "captum>=0.8", "numpy", "matplotlib"],
    extras_require={"vision": VISION, "interop": INTEROP, "bench": BENCH, "dev": DEV,
                    "text": TEXT, "docs": DOCS},
    entry_points={"console_scripts": ["captum-ho=captum_higher_order.cli:main"]},
    classifiers=[
        "License :: OSI Approved :: BSD License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
