"""The SIS CUDA kernels against the NumPy reference, on a GPU (skipped without one)."""

import shutil

import numpy as np
import pytest

from mixqsam2.memory.synthesis import RULES, empty_bank, entry, sis_update

torch = pytest.importorskip("torch", reason="torch is needed to hold device buffers")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed"),
]

TOKENS, CHANNELS, POINTER = 256, 32, 64


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from mixqsam2.memory.sis_cuda import SISKernelLibrary, build_library

    major, minor = torch.cuda.get_device_capability()
    return SISKernelLibrary(build_library(tmp_path_factory.mktemp("sis") / "build", architectures=f"{major}{minor}"))


def _device_bank(capacity, dtype):
    cuda = torch.device("cuda")
    return {
        "features": torch.zeros(capacity, TOKENS * CHANNELS, dtype=dtype, device=cuda),
        "pointers": torch.zeros(capacity, POINTER, dtype=dtype, device=cuda),
        "positions": torch.zeros(capacity, device=cuda),
        "scores": torch.zeros(capacity, device=cuda),
        "counts": torch.zeros(capacity, device=cuda),
        "valid": torch.zeros(capacity, dtype=torch.uint8, device=cuda),
    }


@pytest.mark.parametrize("policy", ["sis", "sis-pair"])
@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("float16", 2e-3)])
def test_kernel_bank_equals_numpy_bank_after_every_update(library, policy, dtype, atol):
    torch_dtype, np_dtype = getattr(torch, dtype), np.dtype(dtype)
    capacity, rng = 7, np.random.default_rng(3)
    device = _device_bank(capacity, torch_dtype)
    workspace = torch.empty(library.workspace_bytes(capacity), dtype=torch.uint8, device="cuda")
    reference = empty_bank(capacity, TOKENS, CHANNELS, POINTER, dtype=np_dtype)
    base = rng.normal(size=(TOKENS, CHANNELS))
    for t in range(40):
        features = (base + rng.normal(scale=rng.uniform(0.2, 2.0), size=base.shape)).astype(np_dtype)
        pointer, score = rng.normal(size=POINTER).astype(np_dtype), float(rng.normal(scale=3))
        new = {"features": torch.from_numpy(features.reshape(-1)).cuda(), "pointer": torch.from_numpy(pointer).cuda(),
               "position": torch.tensor([float(t)], device="cuda"), "score": torch.tensor([score], device="cuda")}
        status = library.update(dtype, {k: v.data_ptr() for k, v in device.items()},
                                {k: v.data_ptr() for k, v in new.items()}, capacity, TOKENS * CHANNELS, POINTER,
                                RULES[policy], workspace.data_ptr())
        assert status == 0
        reference = sis_update(reference, entry(features, pointer, t, score), RULES[policy])
        torch.cuda.synchronize()
        got = {k: v.cpu().numpy() for k, v in device.items()}
        np.testing.assert_array_equal(got["valid"].astype(bool), reference.valid, err_msg=f"frame {t}")
        for name in ("positions", "scores", "counts"):
            np.testing.assert_allclose(got[name], getattr(reference, name), atol=1e-4, err_msg=f"{name} frame {t}")
        valid = reference.valid
        np.testing.assert_allclose(got["features"][valid].astype(np.float32),
                                   reference.features[valid].reshape(valid.sum(), -1).astype(np.float32), atol=atol)
        np.testing.assert_allclose(got["pointers"][valid].astype(np.float32),
                                   reference.pointers[valid].astype(np.float32), atol=atol)
    assert reference.counts.max() > 2  # merges happened and were compared
