"""sim: Drake scenes of the LBM-style tasks, cameras, scripted demonstrations, dataset generation and
closed-loop evaluation. Imports pydrake (install the `[sim]` extra); builds on geo4d_core.

So far: `sim.drake_models`, which points Drake's `drake_models` package at a local copy of the model
set (DESIGN.md §6) so no scene needs the internet.
"""
