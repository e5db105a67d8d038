"""Ray Tune sweeps over context/query ratios and backbones."""
