"""Run every benchmark in this folder (`bench_*.py`) in turn; each prints its own table.

Usage: python benchmarks/run_all.py [NAME_SUBSTRING ...]   (or `make bench`)
"""

from __future__ import annotations

import platform
import runpy
import sys
from pathlib import Path

import torch


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(p for p in here.glob("bench_*.py") if not argv or any(a in p.name for a in argv))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"python {platform.python_version()}, torch {torch.__version__}")
    for script in scripts:
        print(f"\n== {script.name} ==")
        runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
