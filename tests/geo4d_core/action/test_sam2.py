"""Tests for geo4d_core.action.sam2 with a fake `sam2.build_sam` module (SAM2 is not installable here).

The fake video predictor mirrors SAM2's documented calls (`build_sam2_video_predictor(model_cfg,
checkpoint, device=...)`, `init_state(video_path=...)`, `add_new_points_or_box(inference_state=...,
frame_idx=..., obj_id=..., points=..., labels=..., box=...)` returning (frame_idx, obj_ids, mask_logits)
with logits of shape (num_objects, 1, H, W)) and returns positive logits exactly inside the prompted box
(or on the prompted points), so the tests can check that the prompt arrived.
"""

from __future__ import annotations

import os
import sys
import types

import cv2
import numpy as np
import pytest
import torch

from geo4d_core.action.sam2 import (
    LabelMaskProvider,
    MaskProviderUnavailableError,
    Sam2Config,
    Sam2MaskProvider,
    prompt_from_pose,
)
from geo4d_core.action.tracking import TrackerUnavailableError
from geo4d_core.geometry import make_pose, project_points

H, W = 60, 80


class FakeVideoPredictor:
    def __init__(self, config_file, ckpt_path, device):
        self.build_args = (config_file, ckpt_path, device)
        self.prompts: list[dict] = []
        self.frames_seen: list[np.ndarray] = []

    def init_state(self, video_path, offload_video_to_cpu=False, offload_state_to_cpu=False):
        names = sorted(os.listdir(video_path))
        assert names == ["00000.jpg"], names
        bgr = cv2.imread(os.path.join(video_path, names[0]))
        self.frames_seen.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return {"video_height": bgr.shape[0], "video_width": bgr.shape[1]}

    def add_new_points_or_box(self, inference_state, frame_idx, obj_id, points=None, labels=None,
                              clear_old_points=True, normalize_coords=True, box=None):
        self.prompts.append(dict(frame_idx=frame_idx, obj_id=obj_id, points=points, labels=labels, box=box))
        h, w = inference_state["video_height"], inference_state["video_width"]
        vv, uu = np.mgrid[0:h, 0:w]
        inside = np.zeros((h, w), dtype=bool)
        if box is not None:
            u0, v0, u1, v1 = np.asarray(box)
            inside |= (uu >= u0) & (uu <= u1) & (vv >= v0) & (vv <= v1)
        if points is not None:
            for u, v in np.asarray(points):
                inside |= (np.abs(uu - u) <= 1) & (np.abs(vv - v) <= 1)
        logits = torch.where(torch.from_numpy(inside), 5.0, -5.0)[None, None]  # (1 object, 1, H, W)
        return frame_idx, [obj_id], logits


@pytest.fixture
def fake_sam2(monkeypatch):
    built: list[FakeVideoPredictor] = []

    def build_sam2_video_predictor(config_file, ckpt_path=None, device="cuda", mode="eval",
                                   hydra_overrides_extra=[], apply_postprocessing=True, **kwargs):  # noqa: B006
        predictor = FakeVideoPredictor(config_file, ckpt_path, device)
        built.append(predictor)
        return predictor

    sam2 = types.ModuleType("sam2")
    build_sam = types.ModuleType("sam2.build_sam")
    build_sam.build_sam2_video_predictor = build_sam2_video_predictor
    sam2.build_sam = build_sam
    monkeypatch.setitem(sys.modules, "sam2", sam2)
    monkeypatch.setitem(sys.modules, "sam2.build_sam", build_sam)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return built


@pytest.fixture
def config(tmp_path) -> Sam2Config:
    ckpt = tmp_path / "sam2.1_hiera_small.pt"
    ckpt.write_bytes(b"fake")
    return Sam2Config(model_cfg="configs/sam2.1/sam2.1_hiera_s.yaml", checkpoint=str(ckpt), device="cuda:0")


def _image() -> np.ndarray:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[..., 0] = np.linspace(0, 250, W, dtype=np.uint8)[None]  # red ramp along u: checks RGB order
    img[..., 2] = 40
    return img


def test_box_prompt_reaches_sam2_and_mask_comes_back(fake_sam2, config):
    provider = Sam2MaskProvider(config)
    (pred,) = fake_sam2
    assert pred.build_args == ("configs/sam2.1/sam2.1_hiera_s.yaml", config.checkpoint, "cuda:0")
    mask = provider.first_frame_mask(_image(), box_px=np.array([10, 20, 29, 34]))
    assert mask.shape == (H, W) and mask.dtype == bool
    expected = np.zeros((H, W), bool)
    expected[20:35, 10:30] = True
    np.testing.assert_array_equal(mask, expected)
    (prompt,) = pred.prompts
    assert prompt["frame_idx"] == 0 and prompt["obj_id"] == 1
    assert prompt["points"] is None and prompt["labels"] is None
    np.testing.assert_array_equal(prompt["box"], [10, 20, 29, 34])
    # The frame written for SAM2 is the RGB image (JPEG, so nearly equal), not BGR.
    seen = pred.frames_seen[0].astype(int)
    assert np.abs(seen - _image().astype(int)).mean() < 3.0
    assert seen[:, -1, 0].mean() > 200 and seen[:, -1, 2].mean() < 60


def test_point_prompts_are_positive_clicks(fake_sam2, config):
    provider = Sam2MaskProvider(config)
    mask = provider.first_frame_mask(_image(), points_px=[[5, 6], [40, 50]])
    (prompt,) = fake_sam2[0].prompts
    np.testing.assert_array_equal(prompt["points"], [[5, 6], [40, 50]])
    np.testing.assert_array_equal(prompt["labels"], [1, 1])
    assert prompt["box"] is None
    assert mask.sum() == 18 and mask[6, 5] and mask[50, 40] and not mask[0, 0]
    both = provider.first_frame_mask(_image(), points_px=[[70, 5]], box_px=[0, 0, 3, 3])
    assert both[5, 70] and both[0, 0] and both.sum() == 16 + 9


def test_prompt_and_image_validation(fake_sam2, config):
    provider = Sam2MaskProvider(config)
    with pytest.raises(ValueError, match="needs a prompt"):
        provider.first_frame_mask(_image())
    with pytest.raises(ValueError, match="u0 < u1 and v0 < v1"):
        provider.first_frame_mask(_image(), box_px=[30, 20, 10, 34])
    with pytest.raises(ValueError, match=r"points_px must be a finite \(P, 2\)"):
        provider.first_frame_mask(_image(), points_px=[1, 2, 3])
    with pytest.raises(ValueError, match="rgb must be a uint8"):
        provider.first_frame_mask(_image().astype(float), box_px=[0, 0, 5, 5])
    assert fake_sam2[0].prompts == []


def test_missing_sam2_package_raises_unavailable(fake_sam2, config, monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)  # makes the import fail
    with pytest.raises(MaskProviderUnavailableError) as info:
        Sam2MaskProvider(config)
    text = str(info.value)
    assert "cannot import `sam2.build_sam`" in text
    for needed in ("`sam2` package", "torchvision", "checkpoint", "LabelMaskProvider"):
        assert needed in text
    assert isinstance(info.value, TrackerUnavailableError)


def test_missing_checkpoint_or_cuda_raise_unavailable(fake_sam2, config, monkeypatch, tmp_path):
    missing = Sam2Config(model_cfg="cfg.yaml", checkpoint=str(tmp_path / "none.pt"), device="cpu")
    with pytest.raises(MaskProviderUnavailableError, match="checkpoint file not found: .*none.pt"):
        Sam2MaskProvider(missing)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MaskProviderUnavailableError, match=r"device 'cuda:0' requested but torch.cuda"):
        Sam2MaskProvider(config)
    assert fake_sam2 == []  # nothing was built


def test_cpu_device_does_not_need_cuda(fake_sam2, config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = Sam2Config.from_dict({**config.to_dict(), "device": "cpu"})
    provider = Sam2MaskProvider(cpu)
    assert fake_sam2[-1].build_args[2] == "cpu"
    assert provider.first_frame_mask(_image(), box_px=[0, 0, 1, 1]).sum() == 4
    with pytest.raises(ValueError, match="unknown keys"):
        Sam2Config.from_dict({**config.to_dict(), "gpu": 1})
    with pytest.raises(ValueError, match="jpeg_quality"):
        Sam2Config(model_cfg="a", checkpoint="b", jpeg_quality=0)


# --------------------------------------------------------------------------------------- prompt_from_pose

K = np.array([[100.0, 0.0, 39.5], [0.0, 110.0, 29.5], [0.0, 0.0, 1.0]])


def test_prompt_from_pose_on_the_optical_axis_is_exact():
    X_CE = make_pose(np.eye(3), np.array([0.0, 0.0, 1.0]))
    box = prompt_from_pose(X_CE, K, H, W, radius_m=0.05)
    half = 0.05 / np.sqrt(1.0 - 0.05 ** 2)  # tan of the tangent half-angle
    np.testing.assert_allclose(box, [39.5 - 100 * half, 29.5 - 110 * half, 39.5 + 100 * half, 29.5 + 110 * half],
                               atol=1e-9)


def test_prompt_from_pose_bounds_the_projected_sphere_tightly():
    rng = np.random.default_rng(0)
    c = np.array([0.08, -0.05, 0.6])
    r = 0.04
    dirs = rng.normal(size=(20000, 3))
    sphere = c + r * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    uv, _, ok = project_points(sphere, K, 1000, 1000)  # large image: nothing clipped
    assert ok.all()
    box = prompt_from_pose(make_pose(np.eye(3), c), K, 1000, 1000, radius_m=r)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    assert np.all(box[:2] <= lo + 1e-9) and np.all(box[2:] >= hi - 1e-9)  # contains the sphere's image
    np.testing.assert_allclose(box[:2], lo, atol=0.1)  # and is tight
    np.testing.assert_allclose(box[2:], hi, atol=0.1)


def test_prompt_from_pose_clips_and_rejects():
    near_edge = make_pose(np.eye(3), np.array([0.38, 0.0, 1.0]))  # centre at u = 77.5, sphere crosses u = 79
    box = prompt_from_pose(near_edge, K, H, W, radius_m=0.05)
    assert box[2] == W - 1 and box[0] < 77.5 - 4
    with pytest.raises(ValueError, match="not entirely in front of the camera"):
        prompt_from_pose(make_pose(np.eye(3), np.array([0.0, 0.0, 0.03])), K, H, W, radius_m=0.05)
    with pytest.raises(ValueError, match="outside the 80x60 image"):
        prompt_from_pose(make_pose(np.eye(3), np.array([2.0, 0.0, 1.0])), K, H, W)
    with pytest.raises(ValueError, match="radius_m must be finite and > 0"):
        prompt_from_pose(np.eye(4), K, H, W, radius_m=0.0)
    with pytest.raises(ValueError, match=r"X_CE must be a finite \(4, 4\)"):
        prompt_from_pose(np.eye(3), K, H, W)


# -------------------------------------------------------------------------------------- LabelMaskProvider

def test_label_mask_provider_selects_the_gripper_labels():
    labels = np.full((4, 5), 32766, dtype=np.int32)  # Drake's default background label
    labels[1, 1:3] = 7
    labels[2, 4] = 9
    labels[3, 0] = 8
    provider = LabelMaskProvider([7, 9])
    mask = provider.mask(labels)
    expected = np.zeros((4, 5), bool)
    expected[1, 1:3] = True
    expected[2, 4] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(provider.mask(labels[..., None]), expected)  # (H, W, 1) as Drake gives
    with pytest.raises(ValueError, match="non-empty sequence of integer labels"):
        LabelMaskProvider([])
    with pytest.raises(ValueError, match="integer labels"):
        LabelMaskProvider([1.5])
    with pytest.raises(ValueError, match=r"label_image must be an integer \(H, W\)"):
        provider.mask(labels.astype(float))
