"""training: helpers for the training and evaluation scripts in this folder
(`python training/train_stereo4d.py`, pointmap-VAE fine-tuning, held-out-view evaluation).
Builds on geo4d_core only; no ROS, no Drake. The scripts arrive with the training issue.
"""
