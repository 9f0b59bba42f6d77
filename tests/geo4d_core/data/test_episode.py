"""Tests of the geo4d episode format: round trip, integrity (truncation, corruption), validation."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr

from geo4d_core.data import (
    CameraFrame,
    CameraSpec,
    EpisodeCorruptError,
    EpisodeError,
    EpisodeFormatError,
    EpisodeIncompleteError,
    EpisodeMetadata,
    EpisodeNotFoundError,
    EpisodeReader,
    EpisodeWriter,
    list_episodes,
)

H, W = 24, 32
LABEL_PARTS = {"left_finger": [5], "right_finger": [6], "hand": [4], "robot": [1, 2, 3], "background": [32766]}


def random_pose(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A random rigid transform (4, 4) float64."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    R = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    X = np.eye(4)
    X[:3, :3] = R
    X[:3, 3] = rng.normal(size=3) * scale
    return X


def make_cameras(rng: np.random.Generator, splits=("train", "test", "train")) -> list[CameraSpec]:
    cams = []
    for i, split in enumerate(splits):
        K = np.array([[30.0 + i, 0.0, W / 2 + 0.25], [0.0, 31.0 + i, H / 2 - 0.5], [0.0, 0.0, 1.0]])
        cams.append(CameraSpec(name=f"cam{i}", K=K, X_WC=random_pose(rng), height=H, width=W, split=split))
    return cams


def make_frame(rng: np.random.Generator, h: int = H, w: int = W) -> CameraFrame:
    color = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    mm = rng.integers(0, 65536, size=(h, w)).astype(np.uint16)
    mm[rng.random((h, w)) < 0.2] = 0  # invalid pixels
    depth = mm.astype(np.float32) / np.float32(1000.0)  # on the millimetre grid
    label = rng.choice(np.array([1, 2, 3, 4, 5, 6, 32766], dtype=np.int32), size=(h, w))
    return CameraFrame(color=color, depth=depth, label=label)


@dataclass
class Recorded:
    """What was written, to compare against what is read back."""

    path: Path
    cameras: list[CameraSpec]
    t: np.ndarray
    X_WE: np.ndarray
    gripper: np.ndarray
    frames: list[dict[str, CameraFrame]]


def write_episode(path: Path, *, num_frames: int = 6, num_arms: int = 2, seed: int = 0, success: bool = True,
                  extra: dict | None = None) -> Recorded:
    rng = np.random.default_rng(seed)
    cams = make_cameras(rng)
    ts, poses, grips, frames = [], [], [], []
    with EpisodeWriter(path, task="stack_blocks", seed=seed, cameras=cams, num_arms=num_arms, fps=10.0,
                       label_parts=LABEL_PARTS, extra=extra if extra is not None else {"note": "synthetic"}) as w:
        for i in range(num_frames):
            t = 0.1 * i + 0.013
            X = np.stack([random_pose(rng) for _ in range(num_arms)])
            g = rng.uniform(0, 0.08, size=num_arms)
            fr = {c.name: make_frame(rng) for c in cams}
            w.append(t, X, g, fr)
            ts.append(t)
            poses.append(X)
            grips.append(g)
            frames.append(fr)
        final = w.close(success=success)
    return Recorded(final, cams, np.array(ts), np.stack(poses), np.stack(grips).astype(np.float32), frames)


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    return write_episode(tmp_path / "episode_000000.zarr")


def writer_for(path: Path, rng: np.random.Generator, num_arms: int = 1, **kw) -> tuple[EpisodeWriter, list[CameraSpec]]:
    cams = make_cameras(rng, splits=("train", "test"))
    return EpisodeWriter(path, task="t", seed=1, cameras=cams, num_arms=num_arms, **kw), cams


def chunk(path: Path, cam: str, kind: str, t: int) -> Path:
    p = path / "cameras" / cam / kind / "c" / str(t) / "0" / "0"
    return p / "0" if kind == "color" else p


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_reproduces_every_array(recorded: Recorded) -> None:
    r = EpisodeReader(recorded.path)
    assert r.path == recorded.path
    assert not Path(str(recorded.path) + ".partial").exists()
    T = len(recorded.t)
    assert r.num_frames == T == 6
    assert r.metadata == EpisodeMetadata(
        task="stack_blocks", seed=0, success=True, num_frames=T, fps=10.0, num_arms=2,
        label_parts=LABEL_PARTS, extra={"note": "synthetic"}, format_version=1,
    )
    assert r.camera_names == ["cam0", "cam1", "cam2"]
    assert r.train_cameras == ["cam0", "cam2"]
    assert r.test_cameras == ["cam1"]
    for spec in recorded.cameras:
        got = r.cameras[spec.name]
        assert got == spec
        np.testing.assert_array_equal(got.K, spec.K)
        np.testing.assert_array_equal(got.X_WC, spec.X_WC)
        assert (got.height, got.width, got.split) == (H, W, spec.split)
    np.testing.assert_array_equal(r.timestamps, recorded.t)
    assert r.timestamps.dtype == np.float64
    np.testing.assert_array_equal(r.X_WE, recorded.X_WE)
    assert r.X_WE.shape == (T, 2, 4, 4) and r.X_WE.dtype == np.float64
    np.testing.assert_array_equal(r.gripper_width, recorded.gripper)
    assert r.gripper_width.dtype == np.float32
    for i, frames in enumerate(recorded.frames):
        for name, fr in frames.items():
            c, d, l = r.color(name, i), r.depth(name, i), r.label(name, i)
            assert c.dtype == np.uint8 and d.dtype == np.float32 and l.dtype == np.int32
            np.testing.assert_array_equal(c, fr.color)
            np.testing.assert_array_equal(d, fr.depth)
            np.testing.assert_array_equal(l, fr.label)
            f = r.frame(name, i)
            np.testing.assert_array_equal(f.depth, fr.depth)
    r.verify()
    r.verify(progress=True)


def test_int_slice_and_list_indexing(recorded: Recorded) -> None:
    r = EpisodeReader(recorded.path)
    want = np.stack([f["cam1"].color for f in recorded.frames])
    np.testing.assert_array_equal(r.color("cam1", -1), want[-1])
    np.testing.assert_array_equal(r.color("cam1", np.int64(2)), want[2])
    np.testing.assert_array_equal(r.color("cam1", slice(1, 4)), want[1:4])
    np.testing.assert_array_equal(r.color("cam1", slice(None, None, 2)), want[::2])
    np.testing.assert_array_equal(r.color("cam1", slice(None, None, -1)), want[::-1])
    np.testing.assert_array_equal(r.color("cam1", [4, 0, 0, 5]), want[[4, 0, 0, 5]])
    np.testing.assert_array_equal(r.color("cam1", np.array([3, 1])), want[[3, 1]])
    assert r.color("cam1", []).shape == (0, H, W, 3)
    depths = np.stack([f["cam0"].depth for f in recorded.frames])
    np.testing.assert_array_equal(r.depth("cam0", [5, 2]), depths[[5, 2]])
    fr = r.frame("cam2", slice(0, 3))
    assert fr.color.shape == (3, H, W, 3) and fr.depth.shape == (3, H, W) and fr.label.shape == (3, H, W)


def test_label_mask(recorded: Recorded) -> None:
    r = EpisodeReader(recorded.path)
    lab = recorded.frames[3]["cam0"].label
    np.testing.assert_array_equal(r.label_mask("cam0", 3, "robot"), np.isin(lab, [1, 2, 3]))
    np.testing.assert_array_equal(r.label_mask("cam0", 3, "left_finger"), lab == 5)
    m = r.label_mask("cam0", [3, 4], "hand")
    assert m.dtype == bool and m.shape == (2, H, W)
    np.testing.assert_array_equal(m[1], recorded.frames[4]["cam0"].label == 4)
    with pytest.raises(KeyError, match="left_finger"):
        r.label_mask("cam0", 0, "gripper")


def test_bad_index_and_camera_errors(recorded: Recorded) -> None:
    r = EpisodeReader(recorded.path)
    with pytest.raises(IndexError, match=r"0\.\.5"):
        r.color("cam0", 6)
    with pytest.raises(IndexError, match="out of range"):
        r.depth("cam0", -7)
    with pytest.raises(IndexError):
        r.label("cam0", [0, 9])
    with pytest.raises(KeyError, match="cam0"):
        r.color("nope", 0)
    with pytest.raises(TypeError):
        r.color("cam0", 1.5)


def test_reader_is_picklable_and_close_is_harmless(recorded: Recorded) -> None:
    r = EpisodeReader(recorded.path)
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2.color("cam2", 4), r.color("cam2", 4))
    np.testing.assert_array_equal(r2.X_WE, r.X_WE)
    with r2:
        pass
    r2.close()
    np.testing.assert_array_equal(r2.label("cam2", 4), recorded.frames[4]["cam2"].label)


def test_single_arm_accepts_4x4_pose_and_float_width(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w, cams = writer_for(tmp_path / "e.zarr", rng)
    X = random_pose(rng)
    w.append(0.0, X, 0.04, {c.name: make_frame(rng) for c in cams})
    # Drake-style (H, W, 1) depth / label images are accepted too.
    fr = make_frame(rng)
    w.append(0.1, X[None], np.array([0.02]), {cams[0].name: make_frame(rng),
                                              cams[1].name: CameraFrame(fr.color, fr.depth[..., None],
                                                                        fr.label[..., None].astype(np.int16))})
    r = EpisodeReader(w.close(success=False))
    assert r.metadata.success is False
    assert r.X_WE.shape == (2, 1, 4, 4)
    np.testing.assert_array_equal(r.X_WE[0, 0], X)
    np.testing.assert_array_equal(r.gripper_width, np.array([[0.04], [0.02]], dtype=np.float32))
    np.testing.assert_array_equal(r.label(cams[1].name, 1), fr.label)


def test_many_frames_grow_capacity_and_trim(tmp_path: Path) -> None:
    """More frames than the initial capacity: arrays grow, then are trimmed to exactly num_frames."""
    rng = np.random.default_rng(4)
    cams = [CameraSpec("c", np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]), np.eye(4), 6, 8, "train")]
    colors = []
    with EpisodeWriter(tmp_path / "e.zarr", task="t", seed=0, cameras=cams) as w:
        for i in range(37):
            fr = make_frame(rng, 6, 8)
            colors.append(fr.color)
            w.append(i * 0.1, np.eye(4), 0.0, {"c": fr})
        path = w.close(success=True)
    assert zarr.open_array(str(path / "cameras/c/color"), mode="r").shape == (37, 6, 8, 3)
    r = EpisodeReader(path)
    assert r.num_frames == 37
    np.testing.assert_array_equal(r.color("c", slice(None)), np.stack(colors))
    assert sorted(int(p.name) for p in (path / "cameras/c/color/c").iterdir()) == list(range(37))
    r.verify()


def test_list_episodes(tmp_path: Path) -> None:
    write_episode(tmp_path / "episode_000002.zarr", num_frames=2)
    write_episode(tmp_path / "episode_000001.zarr", num_frames=2)
    rng = np.random.default_rng(0)
    w, cams = writer_for(tmp_path / "episode_000003.zarr", rng)
    w.append(0.0, np.eye(4), 0.0, {c.name: make_frame(rng) for c in cams})  # left unfinished
    (tmp_path / "notes").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    assert list_episodes(tmp_path) == [tmp_path / "episode_000001.zarr", tmp_path / "episode_000002.zarr"]


# ------------------------------------------------------------------------------------------ depth


def test_depth_conversion(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    w, cams = writer_for(tmp_path / "e.zarr", rng)
    base = make_frame(rng)
    arbitrary = rng.uniform(0.0, 65.5, size=(H, W)).astype(np.float32)
    arbitrary[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    arbitrary[1, :3] = [0.0004, 0.0006, 65.535]
    grid = base.depth.copy()
    grid[0, 0] = np.float32(65535) / np.float32(1000)  # largest value
    w.append(0.0, np.eye(4), 0.0, {cams[0].name: CameraFrame(base.color, arbitrary, base.label),
                                   cams[1].name: CameraFrame(base.color, grid.astype(np.float64), base.label)})
    r = EpisodeReader(w.close(success=True))
    d = r.depth(cams[0].name, 0)
    assert d.dtype == np.float32
    assert list(d[0, :4]) == [0.0, 0.0, 0.0, 0.0]  # non-finite -> 0 (invalid)
    assert d[1, 0] == 0.0 and d[1, 1] == np.float32(0.001) and d[1, 2] == np.float32(65.535)
    finite = np.isfinite(arbitrary)
    assert np.max(np.abs(d[finite] - arbitrary[finite])) <= 0.0005 + 1e-6
    np.testing.assert_array_equal(r.depth(cams[1].name, 0), grid)  # on the mm grid: exact
    np.testing.assert_array_equal(r.depth_mm(cams[1].name, 0), np.rint(grid.astype(np.float64) * 1000))


def test_every_millimetre_value_round_trips_exactly() -> None:
    """The writer's float->mm conversion inverts the reader's mm->float32 conversion for all 65536 values."""
    mm = np.arange(65536, dtype=np.uint16)
    metres = mm.astype(np.float32) / np.float32(1000.0)  # what EpisodeReader.depth returns
    np.testing.assert_array_equal(np.rint(metres.astype(np.float64) * 1000.0).astype(np.uint16), mm)


# ------------------------------------------------------------------------------------------ integrity


def test_exception_inside_writer_leaves_partial_only(tmp_path: Path) -> None:
    path = tmp_path / "episode_000007.zarr"
    partial = tmp_path / "episode_000007.zarr.partial"
    rng = np.random.default_rng(6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        with writer_for(path, rng)[0] as w:
            for i in range(3):
                w.append(i * 0.1, np.eye(4), 0.0, {c: make_frame(rng) for c in w.cameras})
            raise RuntimeError("simulated crash")
    assert not path.exists() and partial.is_dir()
    with pytest.raises(EpisodeIncompleteError, match=r"(?s)episode_000007\.zarr.*3 frame"):
        EpisodeReader(path)
    with pytest.raises(EpisodeIncompleteError, match=r"episode_000007\.zarr\.partial.*3 frame"):
        EpisodeReader(partial)
    with pytest.raises(EpisodeError, match="unusable"):
        w.append(1.0, np.eye(4), 0.0, {c: make_frame(rng) for c in w.cameras})
    # a new writer on the same path removes the stale .partial and starts over
    w2, cams = writer_for(path, rng)
    w2.append(0.0, np.eye(4), 0.0, {c.name: make_frame(rng) for c in cams})
    assert EpisodeReader(w2.close(success=True)).num_frames == 1
    assert not partial.exists()


def test_leaving_with_block_without_close_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(EpisodeError, match="without close"):
        with writer_for(tmp_path / "e.zarr", rng)[0]:
            pass
    assert not (tmp_path / "e.zarr").exists()


def test_missing_chunk_is_corrupt_on_read_and_verify(recorded: Recorded) -> None:
    victim = chunk(recorded.path, "cam1", "depth", 3)
    assert victim.is_file()
    victim.unlink()
    r = EpisodeReader(recorded.path)  # metadata is fine; the damage shows on reading that frame
    np.testing.assert_array_equal(r.depth("cam1", 2), recorded.frames[2]["cam1"].depth)
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        r.depth("cam1", 3)
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        r.depth("cam1", slice(0, 6))
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        r.frame("cam1", [5, 3])
    with pytest.raises(EpisodeCorruptError, match=str(victim)) as ei:
        r.verify()
    assert len(ei.value.problems) == 1


def test_missing_chunk_not_read_as_zeros_even_without_precheck(recorded: Recorded, monkeypatch) -> None:
    """The strict store is a safety net behind the existence check (e.g. a file deleted in between)."""
    from pathlib import Path as _P

    victim = chunk(recorded.path, "cam0", "label", 1)
    r = EpisodeReader(recorded.path)
    victim.unlink()
    monkeypatch.setattr(_P, "is_file", lambda self: True)
    with pytest.raises(EpisodeCorruptError, match="missing chunk"):
        r.label("cam0", 1)


@pytest.mark.parametrize("kind", ["color", "depth", "label"])
def test_truncated_chunk_is_corrupt(recorded: Recorded, kind: str) -> None:
    victim = chunk(recorded.path, "cam2", kind, 4)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    r = EpisodeReader(recorded.path)
    with pytest.raises(EpisodeCorruptError, match=rf"(?s){victim}.*checksum"):
        getattr(r, kind)("cam2", 4)
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        getattr(r, kind)("cam2", [0, 4])
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        r.verify()


def test_bit_flip_and_empty_chunk_are_corrupt(recorded: Recorded) -> None:
    a = chunk(recorded.path, "cam0", "color", 0)
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 0x10
    a.write_bytes(bytes(data))
    b = chunk(recorded.path, "cam1", "label", 5)
    b.write_bytes(b"")
    r = EpisodeReader(recorded.path)
    with pytest.raises(EpisodeCorruptError, match=str(a)):
        r.color("cam0", 0)
    with pytest.raises(EpisodeCorruptError, match=str(b)):
        r.label("cam1", 5)
    with pytest.raises(EpisodeCorruptError) as ei:
        r.verify()
    assert len(ei.value.problems) == 2
    assert str(a) in str(ei.value) and str(b) in str(ei.value)


def test_damaged_small_array_fails_on_open(recorded: Recorded) -> None:
    victim = recorded.path / "robot" / "X_WE" / "c" / "0" / "0" / "0" / "0"
    victim.unlink()
    with pytest.raises(EpisodeCorruptError, match=str(victim)):
        EpisodeReader(recorded.path)


def test_truncated_root_metadata_is_format_error(recorded: Recorded) -> None:
    zj = recorded.path / "zarr.json"
    text = zj.read_text()
    zj.write_text(text[: len(text) // 2])
    with pytest.raises(EpisodeFormatError, match=rf"{zj}.*JSON"):
        EpisodeReader(recorded.path)
    zj.unlink()
    with pytest.raises(EpisodeFormatError, match=str(zj)):
        EpisodeReader(recorded.path)


def test_truncated_array_metadata_is_format_error(recorded: Recorded) -> None:
    zj = recorded.path / "cameras" / "cam1" / "color" / "zarr.json"
    zj.write_text(zj.read_text()[:40])
    with pytest.raises(EpisodeFormatError, match=str(zj)):
        EpisodeReader(recorded.path)


def edit_root_attrs(path: Path, **changes) -> None:
    zj = path / "zarr.json"
    meta = json.loads(zj.read_text())
    meta["attributes"].update(changes)
    zj.write_text(json.dumps(meta))


def test_incomplete_flag_is_incomplete_error(recorded: Recorded) -> None:
    edit_root_attrs(recorded.path, complete=False)
    with pytest.raises(EpisodeIncompleteError, match=rf"{recorded.path}.*complete=False.*6 frame"):
        EpisodeReader(recorded.path)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": "something-else"}, "format"),
        ({"format_version": 2}, "unsupported format_version 2.*upgrade"),
        ({"num_frames": "six"}, "num_frames"),
        ({"camera_names": ["cam0", "cam9"]}, "cam9"),
    ],
)
def test_bad_root_attributes_are_format_errors(recorded: Recorded, changes: dict, match: str) -> None:
    edit_root_attrs(recorded.path, **changes)
    with pytest.raises(EpisodeFormatError, match=match):
        EpisodeReader(recorded.path)


def test_array_shorter_than_num_frames_is_format_error(recorded: Recorded) -> None:
    a = zarr.open_array(str(recorded.path / "cameras" / "cam2" / "depth"), mode="r+")
    a.resize((4, H, W))
    with pytest.raises(EpisodeFormatError, match=r"cam2/depth/zarr\.json.*4 frames.*num_frames=6"):
        EpisodeReader(recorded.path)


def test_time_array_shorter_than_num_frames_is_format_error(recorded: Recorded) -> None:
    a = zarr.open_array(str(recorded.path / "time" / "t"), mode="r+")
    a.resize((5,))
    with pytest.raises(EpisodeFormatError, match=r"time/t"):
        EpisodeReader(recorded.path)


def test_missing_and_non_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(EpisodeNotFoundError, match="nope.zarr"):
        EpisodeReader(tmp_path / "nope.zarr")
    with pytest.raises(FileNotFoundError):
        EpisodeReader(tmp_path / "nope.zarr")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(EpisodeFormatError, match="not a directory"):
        EpisodeReader(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(EpisodeFormatError, match="zarr.json"):
        EpisodeReader(tmp_path / "empty.zarr")


# ------------------------------------------------------------------------------------------ validation


def test_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "e.zarr"
    write_episode(path, num_frames=2, seed=1)
    with pytest.raises(FileExistsError, match=r"e\.zarr.*overwrite=True"):
        write_episode(path, num_frames=2, seed=2)
    assert EpisodeReader(path).metadata.seed == 1
    rng = np.random.default_rng(0)
    w, cams = writer_for(path, rng, overwrite=True)
    assert EpisodeReader(path).metadata.seed == 1  # the old episode stays until close
    w.append(0.0, np.eye(4), 0.0, {c.name: make_frame(rng) for c in cams})
    w.close(success=True)
    r = EpisodeReader(path)
    assert r.metadata.seed == 1 and r.num_frames == 1 and r.metadata.task == "t"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.zarr"]


def test_input_validation(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    w, cams = writer_for(tmp_path / "e.zarr", rng)
    a, b = cams[0].name, cams[1].name

    def frames(**over):
        fr = {a: make_frame(rng), b: make_frame(rng)}
        fr.update(over)
        return fr

    good = make_frame(rng)
    with pytest.raises(ValueError, match=r"missing \['cam1'\].*unexpected \['camX'\]"):
        w.append(0.0, np.eye(4), 0.0, {a: good, "camX": good})
    with pytest.raises(ValueError, match="exactly the declared cameras"):
        w.append(0.0, np.eye(4), 0.0, {a: good})
    with pytest.raises(ValueError, match=r"cam1.*color.*\(24, 32, 3\)"):
        w.append(0.0, np.eye(4), 0.0, frames(cam1=CameraFrame(good.color[:-1], good.depth, good.label)))
    with pytest.raises(ValueError, match=r"alpha"):
        w.append(0.0, np.eye(4), 0.0, frames(cam1=CameraFrame(np.zeros((H, W, 4), np.uint8), good.depth, good.label)))
    with pytest.raises(ValueError, match=r"cam0.*uint8"):
        w.append(0.0, np.eye(4), 0.0, frames(cam0=CameraFrame(good.color / 255.0, good.depth, good.label)))
    with pytest.raises(ValueError, match=r"cam0.*depth.*shape"):
        w.append(0.0, np.eye(4), 0.0, frames(cam0=CameraFrame(good.color, good.depth.T, good.label)))
    with pytest.raises(ValueError, match=r"cam0.*depth.*floating"):
        w.append(0.0, np.eye(4), 0.0, frames(cam0=CameraFrame(good.color, np.zeros((H, W), np.uint16), good.label)))
    big = good.depth.copy()
    big[3, 4] = 70.0
    with pytest.raises(ValueError, match=r"cam1.*65\.535"):
        w.append(0.0, np.eye(4), 0.0, frames(cam1=CameraFrame(good.color, big, good.label)))
    neg = good.depth.copy()
    neg[0, 0] = -0.01
    with pytest.raises(ValueError, match=r"cam0.*negative"):
        w.append(0.0, np.eye(4), 0.0, frames(cam0=CameraFrame(good.color, neg, good.label)))
    with pytest.raises(ValueError, match=r"label.*integer"):
        w.append(0.0, np.eye(4), 0.0, frames(cam0=CameraFrame(good.color, good.depth, good.label.astype(float))))
    with pytest.raises(ValueError, match=r"X_WE.*shape"):
        w.append(0.0, np.eye(4)[None].repeat(2, 0), 0.0, frames())
    bad_pose = np.eye(4)
    bad_pose[0, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        w.append(0.0, bad_pose, 0.0, frames())
    with pytest.raises(ValueError, match="rotation"):
        w.append(0.0, np.diag([2.0, 1.0, 1.0, 1.0]), 0.0, frames())
    with pytest.raises(ValueError, match="gripper_width"):
        w.append(0.0, np.eye(4), [0.0, 0.1], frames())
    with pytest.raises(ValueError, match="finite"):
        w.append(float("nan"), np.eye(4), 0.0, frames())
    assert w.num_frames == 0  # nothing was written by the failed calls
    w.append(0.5, np.eye(4), 0.0, frames())
    with pytest.raises(ValueError, match="strictly increasing"):
        w.append(0.5, np.eye(4), 0.0, frames())
    with pytest.raises(ValueError, match="strictly increasing"):
        w.append(0.4, np.eye(4), 0.0, frames())
    w.append(0.6, np.eye(4), 0.0, frames())
    with pytest.raises(TypeError, match="success"):
        w.close(success="yes")
    r = EpisodeReader(w.close(success=True))
    np.testing.assert_array_equal(r.timestamps, [0.5, 0.6])
    with pytest.raises(EpisodeError, match="closed"):
        w.append(0.7, np.eye(4), 0.0, frames())


def test_writer_construction_validation(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    cams = make_cameras(rng)
    with pytest.raises(ValueError, match="duplicate"):
        EpisodeWriter(tmp_path / "a.zarr", task="t", seed=0, cameras=[cams[0], cams[0]])
    with pytest.raises(ValueError, match="extra"):
        EpisodeWriter(tmp_path / "a.zarr", task="t", seed=0, cameras=cams, extra={"x": object()})
    with pytest.raises(ValueError, match="partial"):
        EpisodeWriter(tmp_path / "a.zarr.partial", task="t", seed=0, cameras=cams)
    with pytest.raises(ValueError, match="label_parts"):
        EpisodeWriter(tmp_path / "a.zarr", task="t", seed=0, cameras=cams, label_parts={"hand": [1.5]})
    with pytest.raises(ValueError, match="split"):
        CameraSpec("c", np.eye(3), np.eye(4), 4, 4, split="val")
    with pytest.raises(ValueError, match="K"):
        CameraSpec("c", np.zeros((3, 3)), np.eye(4), 4, 4)
    with pytest.raises(ValueError, match="X_WC"):
        CameraSpec("c", np.eye(3), np.eye(3), 4, 4)
    with pytest.raises(ValueError, match="name"):
        CameraSpec("a/b", np.eye(3), np.eye(4), 4, 4)
    with pytest.raises(ValueError, match="height"):
        CameraSpec("c", np.eye(3), np.eye(4), 0, 4)
    assert not any(tmp_path.iterdir())


def test_geo4d_core_data_does_not_import_ros_or_drake() -> None:
    import subprocess
    import sys

    code = "import sys, geo4d_core.data; assert 'rclpy' not in sys.modules and 'pydrake' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_killed_writer_process_leaves_incomplete_partial(tmp_path: Path) -> None:
    """A writer process that dies without cleanup (os._exit) never produces a readable episode."""
    import subprocess
    import sys

    path = tmp_path / "episode_000009.zarr"
    code = f"""
import os, numpy as np
from geo4d_core.data import CameraFrame, CameraSpec, EpisodeWriter
cam = CameraSpec("c", np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]), np.eye(4), 6, 8)
w = EpisodeWriter({str(path)!r}, task="t", seed=0, cameras=[cam])
for i in range(2):
    w.append(0.1 * i, np.eye(4), 0.0, {{"c": CameraFrame(np.zeros((6, 8, 3), np.uint8),
                                                        np.ones((6, 8), np.float32), np.zeros((6, 8), np.int32))}})
os._exit(3)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 3
    assert not path.exists()
    with pytest.raises(EpisodeIncompleteError, match="2 frame"):
        EpisodeReader(path)
    assert list_episodes(tmp_path) == []


def test_abort_removes_partial(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    w, cams = writer_for(tmp_path / "e.zarr", rng)
    w.append(0.0, np.eye(4), 0.0, {c.name: make_frame(rng) for c in cams})
    w.abort()
    assert not any(tmp_path.iterdir())
    with pytest.raises(EpisodeError):
        w.close(success=True)


def test_list_episodes_warns_about_unreadable_metadata(tmp_path: Path) -> None:
    write_episode(tmp_path / "episode_000001.zarr", num_frames=1)
    bad = tmp_path / "episode_000002.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text('{"attributes": {"format": "geo4d-')
    with pytest.warns(UserWarning, match=r"episode_000002\.zarr"):
        assert list_episodes(tmp_path) == [tmp_path / "episode_000001.zarr"]
    with pytest.raises(NotADirectoryError):
        list_episodes(tmp_path / "missing")
