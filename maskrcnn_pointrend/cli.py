"""What every entry script does first: its own arguments, the config with --key=value overrides, logging,
and the MindSpore context (MindSpore is imported only there, so that scripts that never run a network, like
postprogress.py, do not load it)."""
import logging
import sys

from .config import ConfigError, load_config


def parse_args(parser, argv=None):
    """(script arguments, Config): arguments `parser` knows are the script's, --config_path and any other
    --key=value are the config's; a bad override exits with the parser's usage message."""
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = load_config(rest)
    except ConfigError as e:
        parser.error(str(e))
    return args, cfg


def setup_logging(log_file=None):
    """INFO to stderr (and to `log_file` when given) with timestamps."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def set_context(cfg, graph_mode=False, device_id=None):
    """MindSpore's execution mode (PyNative unless graph_mode) and device for this process (device_id: cfg's unless
    given, e.g. by a distributed launcher); on GPU also whether convolutions and matrix products may use TF32
    (cfg.gpu_tf32)."""
    import mindspore as ms

    if cfg.device_target not in ("CPU", "GPU"):
        raise ConfigError(f"device_target {cfg.device_target!r}: expected CPU or GPU")
    ms.set_context(mode=ms.GRAPH_MODE if graph_mode else ms.PYNATIVE_MODE)
    device_id = cfg.device_id if device_id is None else device_id
    ms.set_device(cfg.device_target, device_id if cfg.device_target == "GPU" else None)
    if cfg.device_target == "GPU":
        ms.device_context.gpu.op_precision.conv_allow_tf32(cfg.gpu_tf32)
        ms.device_context.gpu.op_precision.matmul_allow_tf32(cfg.gpu_tf32)
