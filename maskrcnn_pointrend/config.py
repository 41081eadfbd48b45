"""One source of truth for settings: a YAML file read once into a `Config`, with command-line overrides.

    cfg = load_config(["--config_path", "default_config.yaml", "--solver.base_lr=0.01", "--resume"])
    cfg.solver.base_lr  # 0.01

Every key an override names must already exist in the file; an unknown key is an error that lists
the closest known keys. Values are parsed as YAML scalars/lists (`--model.anchor.offset=0.5`,
`--input.min_size_train=[640,800]`) and must keep the type of the value they replace.

A file may start from another with `_base_: <path relative to the file>` and hold only what it changes;
its keys are checked like command-line overrides.
"""
import argparse
import difflib
import os

import yaml

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "default_config.yaml")


class ConfigError(ValueError):
    pass


class Config:
    """Read-only nested settings with attribute access (`cfg.model.rpn.nms_thresh`)."""

    def __init__(self, data, name="cfg"):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_data", {
            k: Config(v, f"{name}.{k}") if isinstance(v, dict) else v for k, v in data.items()})

    def __getattr__(self, key):
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"{self._name} has no setting {key!r}") from None

    def __setattr__(self, key, value):
        raise AttributeError(f"{self._name} is read-only; pass overrides to load_config")

    def __getitem__(self, key):
        return self._data[key]

    def __contains__(self, key):
        return key in self._data

    def __iter__(self):
        return iter(self._data)

    def __repr__(self):
        return f"Config({self.to_dict()!r})"

    def __eq__(self, other):
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def keys(self):
        return self._data.keys()

    def to_dict(self):
        return {k: v.to_dict() if isinstance(v, Config) else v for k, v in self._data.items()}

    def merged(self, overrides):
        """A new Config with `{dotted.key: value}` applied; unknown keys and wrong types are errors."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            _set_dotted(data, dotted, value)
        return Config(data, self._name)


def _flat_keys(data, prefix=""):
    for k, v in data.items():
        yield prefix + k
        if isinstance(v, dict):
            yield from _flat_keys(v, prefix + k + ".")


def _set_dotted(data, dotted, value):
    node = data
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = list(_flat_keys(data))
            close = difflib.get_close_matches(dotted, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown setting {dotted!r}{hint}")
        if i < len(parts) - 1:
            node = node[part]
    old = node[parts[-1]]
    node[parts[-1]] = _coerce(dotted, old, value)


def _coerce(key, old, value):
    """`value` in the type of the setting it replaces (a null setting takes anything)."""
    if isinstance(old, dict):
        raise ConfigError(f"{key!r} is a group of settings, not a value")
    if old is None or value is None:
        return value
    if isinstance(old, str):
        return str(value)
    if isinstance(old, bool) or isinstance(value, bool):
        if not (isinstance(old, bool) and isinstance(value, bool)):
            raise ConfigError(f"{key!r} takes {type(old).__name__}, got {value!r}")
        return value
    if isinstance(old, float) and isinstance(value, str):
        try:  # YAML 1.1 reads exponents without a dot (1e-3) as strings
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key!r} takes float, got {value!r}") from None
    if isinstance(old, float) and isinstance(value, (int, float)):
        return float(value)
    if type(old) is not type(value):
        raise ConfigError(f"{key!r} takes {type(old).__name__}, got {value!r}")
    return value


def read_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


def _flat_items(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flat_items(value, prefix + key + ".")
        else:
            yield prefix + key, value


def read_config_file(path):
    """The Config of a YAML file, with its `_base_` file (if any) underneath."""
    data = read_yaml(path)
    base = data.pop("_base_", None)
    if base is None:
        return Config(data)
    try:
        return read_config_file(os.path.join(os.path.dirname(os.path.abspath(path)), base)).merged(
            dict(_flat_items(data)))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_overrides(tokens):
    """`["--a.b=1", "--flag", "--c", "x"]` -> {"a.b": 1, "flag": True, "c": "x"} (values parsed as YAML)."""
    overrides = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise ConfigError(f"expected --key=value, got {tok!r}")
        if "=" in tok:
            key, raw = tok[2:].split("=", 1)
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            key, raw = tok[2:], tokens[i + 1]
            i += 1
        else:
            key, raw = tok[2:], "true"
        overrides[key] = yaml.safe_load(raw) if raw != "" else ""
        i += 1
    return overrides


def load_config(argv=None, description=None):
    """Parse `--config_path F` and `--key=value` overrides (argv defaults to sys.argv[1:])."""
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument("--config_path", default=DEFAULT_CONFIG, help="YAML settings file")
    args, rest = parser.parse_known_args(argv)
    return read_config_file(args.config_path).merged(parse_overrides(rest))
