"""`geo4d predict`: run the world model on one time step of a stored episode and write what it predicts.

    geo4d predict --checkpoint models/spatula_small --episode data/ep_000000.zarr \
        --view-n 12 --view-m 13 --t 20 --out out/predict

Views are camera indices into the episode's camera list (`geo4d episode info` prints it) or camera
names. When the episode holds the future frames t+1..t+h, the prediction is also scored against them
(AbsRel / delta1 of view n and of view m in camera n's frame, PSNR of both views).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `predict` subcommand to the `geo4d` CLI."""
    p = subparsers.add_parser("predict", help="forecast h frames of two views of a stored episode")
    p.add_argument("--checkpoint", required=True, type=Path, help="world-model folder (save_pretrained)")
    p.add_argument("--episode", required=True, type=Path, help="episode folder (*.zarr)")
    p.add_argument("--view-n", required=True, help="reference camera n: index or name")
    p.add_argument("--view-m", required=True, help="second camera m: index or name")
    p.add_argument("--t", type=int, default=0, help="condition frame index (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's, 25)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance weight (default: checkpoint's)")
    p.set_defaults(func=_run)


def register_init(subparsers: argparse._SubParsersAction) -> None:
    """Add the `init-model` subcommand: write a fresh or SVD-initialised world-model checkpoint."""
    p = subparsers.add_parser("init-model", help="create a world-model checkpoint (fresh, or from a local SVD checkpoint)")
    p.add_argument("--config", default="tiny", choices=["tiny", "small", "svd"], help="named configuration")
    p.add_argument("--pretrained", type=Path, default=None,
                   help="local diffusers-format Stable Video Diffusion folder (unet/, vae/, image_encoder/)")
    p.add_argument("--no-mv-attention", action="store_true", help='the "w/o MV attn" ablation')
    p.add_argument("--context", choices=["learned", "clip"], default=None, help="cross-attention context")
    p.add_argument("--height", type=int, default=None, help="image height the model runs at (pixels)")
    p.add_argument("--width", type=int, default=None, help="image width the model runs at (pixels)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh weights")
    p.add_argument("--out", required=True, type=Path, help="checkpoint folder to write")
    p.set_defaults(func=_init_model)


def _init_model(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError
    from geo4d_core.model import WorldModel, WorldModelConfig

    overrides = {k: v for k, v in (("height", args.height), ("width", args.width), ("context", args.context))
                 if v is not None}
    try:
        config = WorldModelConfig.preset(args.config, mv_attention=not args.no_mv_attention, **overrides)
        if args.pretrained is not None:
            model = WorldModel.from_svd(args.pretrained, config)
        else:
            model = WorldModel.from_config(config, seed=args.seed)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as err:
        raise CommandError(str(err)) from None
    path = model.save_pretrained(args.out)
    counts = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in model.num_parameters().items())
    source = f"from {args.pretrained}" if args.pretrained else f"fresh weights (seed {args.seed})"
    print(f"geo4d init-model: wrote {path} ({args.config}, {source}; parameters: {counts})")
    return 0


def _camera(reader, value: str, flag: str) -> str:
    from geo4d_core.cli import CommandError

    names = reader.camera_names
    if value in names:
        return value
    try:
        index = int(value)
    except ValueError:
        raise CommandError(f"{flag} {value!r}: not a camera of this episode; cameras are {names}") from None
    if not 0 <= index < len(names):
        raise CommandError(f"{flag} {index}: index out of range, the episode has {len(names)} cameras (0..{len(names) - 1})")
    return names[index]


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from geo4d_core.cli import CommandError
    from geo4d_core.data import EpisodeError, EpisodeReader
    from geo4d_core.model.export import save_prediction
    from geo4d_core.model.world_model import Observation, WorldModel

    try:
        model = WorldModel.from_pretrained(args.checkpoint)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise CommandError(f"--checkpoint {args.checkpoint}: {err}") from None
    try:
        reader = EpisodeReader(args.episode)
    except EpisodeError as err:
        raise CommandError(f"--episode {args.episode}: {err}") from None
    cam_n, cam_m = _camera(reader, args.view_n, "--view-n"), _camera(reader, args.view_m, "--view-m")
    if cam_n == cam_m:
        raise CommandError("--view-n and --view-m must be different cameras")
    if not 0 <= args.t < reader.num_frames:
        raise CommandError(f"--t {args.t}: the episode has frames 0..{reader.num_frames - 1}")

    def observe(cam: str, t: int) -> Observation:
        return Observation(reader.color(cam, t), reader.depth(cam, t), reader.cameras[cam].K)

    steps = args.steps or model.config.steps
    with tqdm(total=steps, desc="denoising", unit="step") as bar:
        pred = model.predict(observe(cam_n, args.t), observe(cam_m, args.t), steps=steps, seed=args.seed,
                             guidance_scale=args.guidance, progress=lambda i, n: bar.update(1))
    extra = {"episode": str(args.episode), "view_n": cam_n, "view_m": cam_m, "t": args.t,
             "checkpoint": str(args.checkpoint)}
    h = pred.horizon
    if args.t + h < reader.num_frames:
        extra["metrics"] = score_against_episode(model, pred, reader, cam_n, cam_m, args.t)
    files = save_prediction(pred, args.out, extra=extra)
    timings = ", ".join(f"{k} {v:.3f}" for k, v in pred.timings.items())
    print(f"geo4d predict: {cam_n} + {cam_m} at t={args.t}, {h} frames, {steps} steps ({timings})")
    for metric, value in extra.get("metrics", {}).items():
        print(f"  {metric:12s} {value:.4f}" if np.isfinite(value) else f"  {metric:12s} n/a")
    for name, path in files.items():
        print(f"  {name:12s} {path}")
    return 0


def score_against_episode(model, pred, reader, cam_n: str, cam_m: str, t: int) -> dict[str, float]:
    """Table 1 depth and image metrics of `pred` against the episode's true frames t+1..t+h."""
    import numpy as np

    from geo4d_core.geometry.pointmap import depth_to_pointmap, pointmap_m_to_n
    from geo4d_core.metrics import abs_rel, delta1, psnr
    from geo4d_core.model.world_model import Observation

    h = pred.horizon
    true = {cam: [model.prepare(Observation(reader.color(cam, k), reader.depth(cam, k), reader.cameras[cam].K), cam)
                  for k in range(t + 1, t + h + 1)] for cam in (cam_n, cam_m)}
    depth_n = np.stack([o.depth for o in true[cam_n]])
    pts_m, valid_m = depth_to_pointmap(np.stack([o.depth for o in true[cam_m]]), true[cam_m][0].K)
    X_WCn, X_WCm = reader.cameras[cam_n].X_WC, reader.cameras[cam_m].X_WC
    z_m_in_n = pointmap_m_to_n(pts_m, X_WCn, X_WCm, valid_m)[..., 2]
    z_m_in_n = np.where(valid_m & (z_m_in_n > 0), z_m_in_n, 0.0)
    pred_z_m = np.where(pred.valid_m, pred.points_m_in_n[..., 2], 0.0)
    return {
        "AbsRel-n": float(abs_rel(pred.depth_n, depth_n)),
        "AbsRel-m": float(abs_rel(pred_z_m, z_m_in_n)),
        "delta1-n": float(delta1(pred.depth_n, depth_n)),
        "delta1-m": float(delta1(pred_z_m, z_m_in_n)),
        "PSNR-n": float(psnr(pred.rgb_n, np.stack([o.rgb for o in true[cam_n]]))),
        "PSNR-m": float(psnr(pred.rgb_m, np.stack([o.rgb for o in true[cam_m]]))),
    }
