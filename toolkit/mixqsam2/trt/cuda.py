"""The few CUDA runtime calls the engines need, through cuda-python (imported when first used).

cuda-python moved its runtime module from ``cuda.cudart`` to ``cuda.bindings.runtime`` (12.6);
both layouts are accepted. Every call is checked: a CUDA error raises ``RuntimeError`` with
CUDA's own message.

>>> import numpy
>>> stream, buffer = Stream(), DeviceBuffer()  # doctest: +SKIP
>>> stream.to_device(buffer.reserve(16), numpy.ones(4, numpy.float32))  # doctest: +SKIP
"""

from __future__ import annotations

import functools

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

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        check(cudart().cudaStreamDestroy(self.handle))
