"""The stereo 4D world model (DESIGN.md §4).

* `stereo_unet`   StereoUNet: shared spatio-temporal encoder, two decoders, cross-view attention
* `vae`           RGB VAE, pointmap VAE initialised from it, array <-> latent conversion
* `diffusion`     EDM preconditioning, the paper's joint loss, the Euler sampler
* `configuration_world_model`  WorldModelConfig and the named configurations tiny / small / svd
* `world_model`   WorldModel (from_pretrained / predict / save_pretrained), Observation, Prediction
"""

from geo4d_core.model.configuration_world_model import WorldModelConfig
from geo4d_core.model.diffusion import EDMConfig, StereoDiffusion
from geo4d_core.model.stereo_unet import StereoUNet, unet_preset
from geo4d_core.model.world_model import Observation, Prediction, WorldModel

__all__ = [
    "WorldModelConfig",
    "EDMConfig",
    "StereoDiffusion",
    "StereoUNet",
    "unet_preset",
    "Observation",
    "Prediction",
    "WorldModel",
]
