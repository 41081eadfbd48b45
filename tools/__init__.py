"""Developer tools outside the packages: the GPU kernel check and the numpy references it shares with the tests."""
