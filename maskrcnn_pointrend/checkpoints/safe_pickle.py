"""Read pickled checkpoints (.pkl, torch .pth) into numpy without running code from the file.

Loading a pickle may call any importable function the file names. The unpicklers here resolve an
allow-list of globals only: numpy's array and dtype reconstructors, plain containers, and, for torch
files, torch's tensor-rebuild functions and storage types, which are mapped to numpy rebuilders defined
here. Any other global is refused before anything is called. torch itself is never imported.

    obj = load_pickled_checkpoint("model_final.pkl")   # nested dicts/lists of np.ndarray
"""
import collections
import pickle
import struct
import sys
import zipfile

import numpy as np

from .errors import CheckpointError

try:
    from numpy._core import multiarray as _np_multiarray, numeric as _np_numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _np_multiarray, numeric as _np_numeric

# torch's legacy (pre-1.6, non-zip) format opens with this pickled number.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PROTOCOL = 1001


class UnsafePickleError(CheckpointError):
    def __init__(self, path, module, name):
        self.global_name = f"{module}.{name}"
        super().__init__(
            f"{path}: refused to unpickle: it imports {self.global_name}, which is not an array, a plain "
            f"container or a torch tensor rebuild function (loading it could run arbitrary code); nothing "
            f"from the file was executed")


def _latin1_encode(text, encoding="latin1"):
    """`_codecs.encode` as protocol-2 pickles use it to store bytes; other codecs are refused."""
    if encoding.replace("-", "").lower() != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


class _NdarrayClass:
    """Stands for numpy.ndarray, which pickles only pass to `_reconstruct`; calling ndarray itself on
    pickled arguments (a buffer, offset and strides) is not allowed."""


_NDARRAY = _NdarrayClass()


def _reconstruct(subtype, shape, dtype):
    """numpy's `_reconstruct(ndarray, shape, dtype)`: an empty array that BUILD then fills."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("numpy _reconstruct of something other than ndarray")
    return _np_multiarray._reconstruct(np.ndarray, shape, dtype)


_PLAIN_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _PLAIN_GLOBALS[(_module, "_reconstruct")] = _reconstruct
    _PLAIN_GLOBALS[(_module, "scalar")] = _np_multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):  # pickle protocol 5 arrays
    _PLAIN_GLOBALS[(_module, "_frombuffer")] = _np_numeric._frombuffer
_PLAIN_GLOBALS[("numpy", "ndarray")] = _NDARRAY
_PLAIN_GLOBALS[("numpy", "dtype")] = np.dtype


class _TorchStorageType:
    """Stands for `torch.<Name>Storage` in a pickle; only its element type is used."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype


# numpy has no bfloat16: its storages are read as uint16 and widened to float32.
BFLOAT16 = "bfloat16"
_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": BFLOAT16, "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}


class _StorageRef:
    def __init__(self, key, dtype, numel):
        self.key = key
        self.dtype = dtype
        self.numel = numel


class _TensorRef:
    """A tensor whose storage bytes are read after unpickling (the legacy format stores them after)."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """torch._utils._rebuild_tensor(_v2)(storage, offset, size, stride, requires_grad, hooks, metadata)."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    """torch._utils._rebuild_parameter(data, requires_grad, hooks[, state]): the tensor itself."""
    return data


_TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
_TORCH_GLOBALS.update({("torch", name): _TorchStorageType(name, dtype)
                       for name, dtype in _TORCH_STORAGE_DTYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    allowed = _PLAIN_GLOBALS

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(self.path, module, name) from None


class _TorchUnpickler(_RestrictedUnpickler):
    allowed = {**_PLAIN_GLOBALS, **_TORCH_GLOBALS}

    def persistent_load(self, pid):
        """('storage', storage_type, key, location, numel[, view_metadata]) -> _StorageRef."""
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _TorchStorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views of pre-1.0 torch files are not supported")
        return _StorageRef(str(pid[2]), pid[1].dtype, int(pid[4]))


def _restricted_load(unpickler_class, file, path):
    try:
        return unpickler_class(file, path).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, struct.error) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint pickle ({type(e).__name__}: {e})") from None


def _storage_array(raw, dtype, numel, little_endian, path, key):
    """1-D array of `numel` elements of `dtype` from the bytes `raw` (bfloat16 widened to float32)."""
    base = np.dtype(np.uint16 if dtype == BFLOAT16 else dtype)
    base = base.newbyteorder("<" if little_endian else ">")
    if len(raw) < numel * base.itemsize:
        raise CheckpointError(f"{path}: storage {key} holds {len(raw)} bytes, expected {numel * base.itemsize}")
    flat = np.frombuffer(raw, dtype=base, count=numel).astype(base.newbyteorder("="))
    if dtype == BFLOAT16:
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    return flat


def _tensor_array(ref, flat, path):
    """The tensor `ref` as a contiguous array cut from its storage `flat`, bounds checked."""
    if any(s < 0 for s in ref.size + ref.stride) or ref.offset < 0:
        raise CheckpointError(f"{path}: tensor with negative size, stride or offset")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=flat.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= flat.size:
        raise CheckpointError(f"{path}: tensor reaches element {last} of a storage of {flat.size}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.size, strides=[s * flat.itemsize for s in ref.stride], writeable=False)
    return np.array(view)


def _materialise(obj, storage_of, path):
    """`obj` with every _TensorRef replaced by its array; `storage_of(_StorageRef) -> flat array`."""
    if isinstance(obj, _TensorRef):
        return _tensor_array(obj, storage_of(obj.storage), path)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, storage_of, path)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storage_of, path) for v in obj)
    return obj


def _load_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            raise CheckpointError(f"{path}: a zip file but not a torch checkpoint (no <name>/data.pkl entry)")
        if len(pickles) > 1:
            raise CheckpointError(f"{path}: a zip file but not a torch checkpoint: {len(pickles)} <name>/data.pkl "
                                  f"entries ({', '.join(sorted(pickles))}), a torch file has one")
        root = pickles[0].split("/")[0]
        byteorder_entry = f"{root}/byteorder"
        little_endian = (byteorder_entry not in names
                         or archive.read(byteorder_entry).decode().strip() == "little")
        with archive.open(pickles[0]) as f:
            obj = _restricted_load(_TorchUnpickler, f, path)
        cache = {}

        def storage_of(ref):
            if ref.key not in cache:
                entry = f"{root}/data/{ref.key}"
                if entry not in names:
                    raise CheckpointError(f"{path}: storage entry {entry} is missing")
                cache[ref.key] = _storage_array(archive.read(entry), ref.dtype, ref.numel, little_endian,
                                                path, ref.key)
            return cache[ref.key]

        return _materialise(obj, storage_of, path)


def _load_torch_legacy(f, path):
    """The rest of a legacy torch file after its magic number: protocol, sys info, object, storages."""
    protocol = _restricted_load(_RestrictedUnpickler, f, path)
    if protocol != TORCH_LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported torch legacy protocol {protocol!r}")
    sys_info = _restricted_load(_RestrictedUnpickler, f, path)
    little_endian = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    refs = {}

    class Unpickler(_TorchUnpickler):
        def persistent_load(self, pid):
            ref = super().persistent_load(pid)
            return refs.setdefault(ref.key, ref)

    obj = _restricted_load(Unpickler, f, path)
    keys = _restricted_load(_RestrictedUnpickler, f, path)
    storages = {}
    for key in keys:
        if key not in refs:
            raise CheckpointError(f"{path}: storage {key} is listed but never used")
        ref = refs[key]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointError(f"{path}: file ends before storage {key}")
        numel = struct.unpack("<q" if little_endian else ">q", header)[0]
        itemsize = np.dtype(np.uint16 if ref.dtype == BFLOAT16 else ref.dtype).itemsize
        storages[key] = _storage_array(f.read(numel * itemsize), ref.dtype, numel, little_endian, path, key)

    def storage_of(ref):
        if ref.key not in storages:
            raise CheckpointError(f"{path}: storage {ref.key} is missing")
        return storages[ref.key]

    return _materialise(obj, storage_of, path)


def load_pickled_checkpoint(path):
    """The object stored in a .pkl pickle or a torch .pth file (zip or legacy), tensors as np.ndarray."""
    try:
        if zipfile.is_zipfile(path):
            return _load_torch_zip(path)
        with open(path, "rb") as f:
            first = _restricted_load(_RestrictedUnpickler, f, path)
            if isinstance(first, int) and first == TORCH_LEGACY_MAGIC:
                return _load_torch_legacy(f, path)
            return first
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: damaged zip archive ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: objects nested deeper than Python's recursion limit "
                              f"({sys.getrecursionlimit()}): not a checkpoint") from None
