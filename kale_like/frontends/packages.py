"""Which pip packages a step needs, from the modules its code imports.

The import name and the distribution name differ for many popular packages (`sklearn` is
`scikit-learn`). Known differences are listed here; any other non-standard-library module is
assumed to be published under its own name. Users add or override with `packages:` tags,
`@step(packages=...)` or `--packages`.
"""

from __future__ import annotations

import sys

IMPORT_TO_DISTRIBUTION: dict[str, str] = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "cv2": "opencv-python-headless",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "google.cloud": "google-cloud-storage",
    "jwt": "pyjwt",
    "Crypto": "pycryptodome",
    "serial": "pyserial",
    "attr": "attrs",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "magic": "python-magic",
    "lightgbm": "lightgbm",
    "tensorflow_datasets": "tensorflow-datasets",
    "torchvision": "torchvision",
    "sentence_transformers": "sentence-transformers",
    "umap": "umap-learn",
    "mpl_toolkits": "matplotlib",
    "pytorch_lightning": "pytorch-lightning",
    "OpenSSL": "pyopenssl",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "zmq": "pyzmq",
    "git": "gitpython",
}

# Modules that are importable in a notebook but are never what a step should install.
NEVER_INSTALL = frozenset({"kfp", "IPython", "ipykernel", "__future__", "kale_like"})


def distributions_for(modules: frozenset[str] | set[str]) -> tuple[str, ...]:
    """Sorted pip requirement names for the top-level modules a step imports."""
    found = set()
    for module in modules:
        if not module or module in sys.stdlib_module_names or module in NEVER_INSTALL:
            continue
        found.add(IMPORT_TO_DISTRIBUTION.get(module, module))
    return tuple(sorted(found))
