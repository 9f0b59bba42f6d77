"""Action extraction (DESIGN.md §5): from predicted (or true) RGB-D / pointmaps to an executable plan.

* `tracking`       the PoseTracker protocol and TrackResult
* `hand`           Panda hand frames, finger geometry, the hand surface model
* `icp_tracker`    built-in CPU tracker (open3d point-to-plane ICP, FPFH + RANSAC registration)
* `foundationpose` adapter for NVIDIA FoundationPose (GPU)
* `pointmap_rgbd`  an RGB-D tracker (FoundationPose) on pointmaps in camera n's frame: view camera from the grid
* `hand_mask`      hand masks drawn from a known hand pose (the robot's own, or a pose from another view)
* `sam2`           first-frame gripper masks with SAM2 on real cameras; label masks in simulation
* `gripper_state`  open / closed from the finger centroids
* `extraction`     register, track both views, fuse, gripper state -> ExtractionResult
* `plan`           Plan (X_BE, gripper commands, confidence, source view) and its safety checks
* `evaluation`     accuracy on the true frames of recorded episodes
"""
