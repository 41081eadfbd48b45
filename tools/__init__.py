"""Developer tools outside the packages: the GPU kernel check and the numpy references it shares with the tests,
and the synthetic shapes that make_synthetic_dataset.py draws."""
