"""Fine-tune the pointmap VAE (initialised from the RGB VAE) on pointmaps; or train the RGB VAE itself.

    # the RGB VAE from scratch (CPU machines without SVD weights), then the pointmap VAE from it:
    python training/train_pointmap_vae.py --config training/configs/vae_tiny.yaml modality=rgb
    python training/train_pointmap_vae.py --config training/configs/vae_tiny.yaml modality=pointmap \
        init=runs/vae/rgb_vae

    # GPU servers: fine-tune a copy of SVD's VAE
    python training/train_pointmap_vae.py modality=pointmap preset=svd init=SVD_DIR/vae data.root=data/spatula

Writes <output_dir>/<modality>_vae (diffusers save_pretrained) and <modality>_vae_metrics.json with the
reconstruction error on the test cameras of held-out episodes (millimetres for pointmaps, PSNR for RGB),
before and after training. Settings: `training/config.py::VaeTrainConfig` (key=value overrides).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import ConfigError, VaeTrainConfig, load_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", type=Path, help="YAML file of VaeTrainConfig fields")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=500 data.root=data/spatula")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(VaeTrainConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"train_pointmap_vae: bad configuration: {e}", file=sys.stderr)
        return 2
    from training.vae_training import train_vae

    metrics = train_vae(cfg, progress=not args.quiet)
    print(json.dumps({k: metrics[k] for k in ("modality", "steps", "train_seconds", "scaling_factor", "heldout")},
                     indent=1))
    print(f"saved {Path(cfg.output_dir) / (cfg.modality + '_vae')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
