"""The few CUDA runtime calls the engines need, through cuda-python (imported when first used).

cuda-python moved its runtime module from ``cuda.cudart`` to ``cuda.bindings.runtime`` (12.6);
both layouts are accepted. Every call is checked: a CUDA error raises ``RuntimeError`` with
CUDA's own message.

>>> import numpy
>>> stream, buffer = Stream(), DeviceBuffer()  # doctest: +SKIP
>>> stream.to_device(buffer.reserve(16), numpy.ones(4, numpy.float32))  # doctest: +SKIP
>>> DeviceTensor(0, (2, 3), numpy.float32).reshape(2, 1, 3).nbytes
24
"""

from __future__ import annotations

import functools
import math
import weakref

import numpy as np

from mixqsam2.errors import UserInputError


@functools.lru_cache(maxsize=1)
def cudart():
    """cuda-python's runtime module; a missing cuda-python is the user's to fix."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise UserInputError("the TensorRT backend needs cuda-python (pip install cuda-python), "
                                 "which is not installed here") from None
    return runtime


def check(result):
    """Unpack a cuda-python result ``(error, *values)``; raise on an error."""
    rt = cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != rt.cudaError_t.cudaSuccess:
        _, message = rt.cudaGetErrorString(error)
        raise RuntimeError(f"CUDA error {int(error)}: {message.decode()}")
    return values[0] if len(values) == 1 else tuple(values) or None


def device_name(index: int = 0) -> str:
    properties = check(cudart().cudaGetDeviceProperties(index))
    name = properties.name
    return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()


class DeviceBuffer:
    """Device memory that grows to the largest size asked of it (freed by :meth:`free`)."""

    def __init__(self):
        self.pointer, self.nbytes = 0, 0

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.pointer, self.nbytes = int(check(cudart().cudaMalloc(max(nbytes, 1)))), nbytes
        return self.pointer

    def free(self) -> None:
        if self.pointer:
            check(cudart().cudaFree(self.pointer))
        self.pointer, self.nbytes = 0, 0


class DeviceTensor:
    """A tensor in device memory: its ``pointer``, ``shape`` and ``dtype``.

    :meth:`empty` allocates one that frees its memory with its last reference; a tensor made
    from a pointer (an engine's buffer, a view) only refers to memory someone else owns.
    """

    def __init__(self, pointer: int, shape, dtype, owner=None):
        self.pointer, self.shape, self.dtype = int(pointer), tuple(int(d) for d in shape), np.dtype(dtype)
        self._owner = owner  # keeps the memory a view points into alive

    @classmethod
    def empty(cls, shape, dtype) -> DeviceTensor:
        nbytes = max(1, math.prod(shape) * np.dtype(dtype).itemsize)
        tensor = cls(int(check(cudart().cudaMalloc(nbytes))), shape, dtype)
        weakref.finalize(tensor, _free, tensor.pointer).atexit = False  # at exit the context goes anyway
        return tensor

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def reshape(self, *shape) -> DeviceTensor:
        """The same memory seen with another shape of as many elements."""
        if math.prod(shape) != math.prod(self.shape):
            raise ValueError(f"cannot view a tensor of shape {self.shape} as {shape}")
        return DeviceTensor(self.pointer, shape, self.dtype, owner=self._owner or self)

    def __repr__(self) -> str:
        return f"DeviceTensor(shape={self.shape}, dtype={self.dtype})"


def _free(pointer: int) -> None:
    check(cudart().cudaFree(pointer))


class Stream:
    """One CUDA stream; host <-> device copies are ordered on it."""

    def __init__(self):
        self.handle = check(cudart().cudaStreamCreate())

    def to_device(self, pointer: int, array) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
        check(cudart().cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self.handle))

    def to_host(self, array, pointer: int) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(cudart().cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self.handle))

    def copy(self, destination: int, source: int, nbytes: int) -> None:
        """Device to device."""
        kind = cudart().cudaMemcpyKind.cudaMemcpyDeviceToDevice
        check(cudart().cudaMemcpyAsync(destination, source, nbytes, kind, self.handle))

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        check(cudart().cudaStreamDestroy(self.handle))
