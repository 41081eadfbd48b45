"""PointRend's custom layers: channels-last bilinear point sampling (csrc/ holds its CPU and CUDA kernels)."""
