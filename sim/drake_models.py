"""Where Drake finds the `drake_models` package (Franka Panda, YCB objects, bowls, bins, shelves).

The drake wheel ships no robot models: `package://drake_models/...` is downloaded on first use, which
fails on machines without internet. When a local copy exists we map the package to it instead:

1. the folder named by the `GEO4D_DRAKE_MODELS` environment variable, if set (it must exist);
2. otherwise `../shared/drake_models` next to the repository checkout, if present;
3. otherwise Drake's own behaviour (download into its cache).

The local copy is used in place; it is never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GEO4D_DRAKE_MODELS"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def local_drake_models_dir() -> Path | None:
    """The local `drake_models` folder to use, or None to let Drake download the package.

    Raises:
        FileNotFoundError: GEO4D_DRAKE_MODELS is set but is not a folder with a package.xml.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "package.xml").is_file():
            raise FileNotFoundError(
                f"{ENV_VAR}={env} does not point to a drake_models folder (expected {path / 'package.xml'})"
            )
        return path
    shared = _REPO_ROOT.parent / "shared" / "drake_models"
    return shared if (shared / "package.xml").is_file() else None


def map_drake_models(parser) -> Path | None:
    """Point `parser`'s `drake_models` package at the local copy, if there is one.

    Call on every `pydrake.multibody.parsing.Parser` before loading `package://drake_models/...` URLs.
    Returns the folder used, or None when Drake keeps its default (download) behaviour.
    """
    path = local_drake_models_dir()
    if path is None:
        return None
    package_map = parser.package_map()
    if package_map.Contains("drake_models"):
        package_map.Remove("drake_models")
    package_map.Add("drake_models", str(path))
    return path
