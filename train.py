"""The seed project's entry point: `python train.py` trains the seed recipe.

It prints the per-epoch table in the seed's format and saves the training-vs-validation plot
as outputs/output.png, as the seed did. Any `python -m cifar_utils train` flag works here too.
"""

import sys
from pathlib import Path

from cifar_utils.cli import main

OUTPUT_PNG = Path("outputs") / "output.png"

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(
        a == "--name" or a.startswith("--name=") or a == "--out" or a.startswith("--out=") or a == "--resume"
        for a in args
    ):
        args = ["--name", "seed_baseline", *args]
    sys.exit(main(["train", *args], curves_copy=OUTPUT_PNG))
