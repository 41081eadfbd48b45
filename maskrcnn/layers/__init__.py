"""Layers the base detector needs beyond MindSpore's: ROIAlignV2 and bilinear point sampling as custom
kernels, convolutions with folded FrozenBN, normalization by name."""
