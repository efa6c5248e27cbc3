# SPDX-License-Identifier: MIT OR Apache-2.0
"""Reads a PyTorch checkpoint (`torch.save` of a state dict: a zip of one pickle and raw tensor
storages) with the standard library and numpy only, so that `make models` needs no PyTorch.

The pickle names a few PyTorch callables; a restricted Unpickler maps exactly those to numpy
stand-ins and refuses every other global, so a checkpoint cannot run code while it is read:
- `collections.OrderedDict` → a dict (insertion order is kept; `_metadata` is ignored),
- `torch.<Type>Storage` → the numpy dtype of the storage,
- persistent ids `('storage', type, key, location, numel)` → the raw bytes of `archive/data/<key>`,
- `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` → a numpy array viewed
  with those strides, then copied (contiguous, owning its memory).
"""

import io
import pickle
import sys
import zipfile

import numpy as np

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StateDict(dict):
    """OrderedDict's stand-in: a dict that accepts the `_metadata` attribute PyTorch sets."""


class _Storage:
    def __init__(self, data, dtype):
        self.array = np.frombuffer(data, dtype=dtype)


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    item = storage.array.itemsize
    if not size:
        return storage.array[offset:offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage.array[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride), writeable=False)
    return np.ascontiguousarray(view).copy()


def load_state_dict(path):
    """{name: numpy array} of a checkpoint written by `torch.save(model.state_dict(), path)`."""
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: not a PyTorch zip checkpoint (no single data.pkl: {pkl})")
        prefix = pkl[0][: -len("data.pkl")]
        order = z.read(prefix + "byteorder").decode() if prefix + "byteorder" in z.namelist() else "little"
        if order != sys.byteorder:
            raise ValueError(f"{path}: tensors are {order}-endian, this machine is {sys.byteorder}")
        storages = {}

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "collections" and name == "OrderedDict":
                    return _StateDict
                if module == "torch._utils" and name == "_rebuild_tensor_v2":
                    return _rebuild_tensor_v2
                if module == "torch" and name in _DTYPES:
                    return _DTYPES[name]
                raise pickle.UnpicklingError(f"{path}: refusing to load global {module}.{name}")

            def persistent_load(self, pid):
                if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                    raise pickle.UnpicklingError(f"{path}: unknown persistent id {pid!r}")
                _, dtype, key, _location, _numel = pid
                if key not in storages:
                    storages[key] = _Storage(z.read(f"{prefix}data/{key}"), dtype)
                return storages[key]

        state = Unpickler(io.BytesIO(z.read(pkl[0]))).load()
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


if __name__ == "__main__":
    for k, v in load_state_dict(sys.argv[1]).items():
        print(f"{k}\t{v.dtype}\t{list(v.shape)}")
