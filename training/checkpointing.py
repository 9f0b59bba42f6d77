"""Atomic, resumable training checkpoints.

A checkpoint is a folder `<output_dir>/checkpoints/step_NNNNNNN/` written under a temporary name and renamed
into place only when complete, so a run killed mid-save leaves every earlier checkpoint intact and never a
half-written one under a checkpoint name. `latest_checkpoint` finds the newest complete one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["CHECKPOINT_PATTERN", "write_directory_atomically", "save_checkpoint", "latest_checkpoint", "list_checkpoints", "resolve_resume"]

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{7})$")
STATE_FILE = "trainer_state.json"


def list_checkpoints(checkpoints_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with their trainer_state.json), oldest first."""
    d = Path(checkpoints_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(checkpoints_dir)
    return ckpts[-1] if ckpts else None


def write_directory_atomically(final: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary sibling folder with `write(tmp)`, then replace `final` with it (nothing half-written
    is ever visible under `final`; on any error the temporary folder is removed and `final` is untouched)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        write(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def save_checkpoint(checkpoints_dir: str | Path, step: int, write: Callable[[Path], None], state: dict,
                    keep: int = 2) -> Path:
    """Write a checkpoint atomically: `write(tmp_dir)` fills it, then trainer_state.json, then rename.

    Older checkpoints beyond `keep` are deleted after the new one is in place.
    """
    d = Path(checkpoints_dir)

    def fill(tmp: Path) -> None:
        write(tmp)
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1))

    final = write_directory_atomically(d / f"step_{step:07d}", fill)
    for old in list_checkpoints(d)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: str | Path) -> dict:
    return json.loads((Path(checkpoint) / STATE_FILE).read_text())


def resolve_resume(resume: str | None, checkpoints_dir: str | Path) -> Path | None:
    """`--resume latest` -> newest complete checkpoint (None if there is none yet); a path -> that checkpoint."""
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(checkpoints_dir)
    p = Path(resume)
    if not (p / STATE_FILE).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a complete checkpoint folder (no {STATE_FILE})")
    return p
