"""Layers the base detector needs beyond MindSpore's: ROIAlignV2 as a custom kernel (csrc/ holds its CPU and CUDA
sources, build.py compiles them and any other package's custom kernels), convolutions with folded FrozenBN,
normalization by name."""
