"""The one error type of checkpoint reading, conversion and loading."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, converted or loaded; the message names the file or tensors."""
