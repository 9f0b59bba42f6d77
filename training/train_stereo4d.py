"""Train the stereo 4D world model (the paper's joint RGB + pointmap diffusion loss over two views).

    # CPU: the committed tiny model (models/spatula_tiny; its exact recipe is in models/README.md)
    python training/train_stereo4d.py --config training/configs/spatula_tiny.yaml

    # GPU servers, several GPUs / nodes through accelerate (DDP, mixed precision):
    accelerate launch --num_processes 8 training/train_stereo4d.py --config training/configs/svd_finetune.yaml \
        model.svd_path=/models/stable-video-diffusion-img2vid data.root=data/spatula

    # continue an interrupted run exactly where its newest checkpoint left off
    python training/train_stereo4d.py --config ... --resume latest

Settings are `training/config.py::TrainConfig` fields: YAML via --config, then key=value overrides
(e.g. `max_steps=2000 max_minutes=null model.mv_attention=false`). Bad values are reported before any work.
After `--resume`, a `key=value` that is not an existing path is an override, not a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import ConfigError, TrainConfig, load_config  # noqa: E402


_OVERRIDE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")  # `key.sub=value`, as opposed to a checkpoint path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line -> Namespace(config, overrides, resume, quiet). Overrides may come before or after --resume.

    `--resume` takes an optional value, so in `--resume max_steps=10` argparse would read the override as a
    checkpoint path: a value of the form `key=value` that is not an existing path is an override, and
    `--resume` alone means `latest`.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", type=Path, help="YAML file of TrainConfig fields")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=530 max_minutes=null")
    ap.add_argument("--resume", nargs="?", const="latest", default=None,
                    help="resume from a checkpoint folder, or 'latest' (default when the flag has no value; "
                         "a following key=value that is not an existing path is an override)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i, tok in enumerate(argv[:-1]):
        if tok == "--":
            break
        if tok == "--resume" and _OVERRIDE.match(argv[i + 1]) and not Path(argv[i + 1]).exists():
            argv.insert(i + 1, "latest")
            break
    return ap.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(TrainConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"train_stereo4d: bad configuration: {e}", file=sys.stderr)
        return 2
    from training.data import DataError
    from training.stereo4d_training import train

    try:
        summary = train(cfg, resume=args.resume, progress=not args.quiet)
    except (ConfigError, DataError, FileNotFoundError) as e:
        print(f"train_stereo4d: {e}", file=sys.stderr)
        return 2
    if summary:
        brief = {k: summary[k] for k in ("steps", "train_seconds", "final_losses", "model_dir")}
        print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
