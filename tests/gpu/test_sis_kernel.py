"""The memory-bank update kernels against the NumPy reference, on a GPU (skipped without one):
every rule, fp32 and fp16, several objects updated in one launch."""

import shutil

import numpy as np
import pytest

from mixqsam2.memory.synthesis import RULES, empty_bank, entry, sis_update

torch = pytest.importorskip("torch", reason="torch is needed to hold device buffers")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed"),
]

TOKENS, CHANNELS, POINTER, OBJECTS = 256, 32, 64, 3


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from mixqsam2.memory.sis_cuda import SISKernelLibrary, build_library

    major, minor = torch.cuda.get_device_capability()
    return SISKernelLibrary(build_library(tmp_path_factory.mktemp("sis") / "build", architectures=f"{major}{minor}"))


def _device_banks(capacity, dtype):
    cuda, shape = torch.device("cuda"), (OBJECTS, capacity)
    return {
        "features": torch.zeros(*shape, TOKENS * CHANNELS, dtype=dtype, device=cuda),
        "pointers": torch.zeros(*shape, POINTER, dtype=dtype, device=cuda),
        "positions": torch.zeros(shape, device=cuda),
        "scores": torch.zeros(shape, device=cuda),
        "counts": torch.zeros(shape, device=cuda),
        "valid": torch.zeros(shape, dtype=torch.int32, device=cuda),
    }


def _assert_bank_equal(got, reference, atol, where):
    np.testing.assert_array_equal(got["valid"].astype(bool), reference.valid, err_msg=where)
    for name in ("positions", "scores", "counts"):
        np.testing.assert_allclose(got[name], getattr(reference, name), atol=1e-4, err_msg=f"{name} {where}")
    valid = reference.valid
    np.testing.assert_allclose(got["features"][valid].astype(np.float32),
                               reference.features[valid].reshape(valid.sum(), -1).astype(np.float32), atol=atol,
                               err_msg=where)
    np.testing.assert_allclose(got["pointers"][valid].astype(np.float32), reference.pointers[valid].astype(np.float32),
                               atol=atol, err_msg=where)


@pytest.mark.parametrize("policy", sorted(RULES))
@pytest.mark.parametrize("dtype,atol", [("float32", 1e-5), ("float16", 2e-3)])
def test_kernel_banks_equal_numpy_banks_after_every_update(library, policy, dtype, atol):
    from mixqsam2.memory.sis_cuda import KernelRule

    torch_dtype, np_dtype = getattr(torch, dtype), np.dtype(dtype)
    capacity, rng = 7, np.random.default_rng(3)
    device = _device_banks(capacity, torch_dtype)
    workspace = torch.empty(library.workspace_bytes(capacity, OBJECTS), dtype=torch.uint8, device="cuda")
    references = [empty_bank(capacity, TOKENS, CHANNELS, POINTER, dtype=np_dtype) for _ in range(OBJECTS)]
    bases = rng.normal(size=(OBJECTS, TOKENS, CHANNELS))
    for t in range(40):
        features = (bases + rng.normal(scale=rng.uniform(0.2, 2.0), size=bases.shape)).astype(np_dtype)
        pointers = rng.normal(size=(OBJECTS, POINTER)).astype(np_dtype)
        scores = rng.normal(scale=3, size=OBJECTS).astype(np.float32)
        new = {"features": torch.from_numpy(features.reshape(OBJECTS, -1)).cuda(),
               "pointer": torch.from_numpy(pointers).cuda(),
               "position": torch.full((OBJECTS,), float(t), device="cuda"), "score": torch.from_numpy(scores).cuda()}
        status = library.update(dtype, {k: v.data_ptr() for k, v in device.items()},
                                {k: v.data_ptr() for k, v in new.items()}, capacity, TOKENS * CHANNELS, POINTER,
                                KernelRule.from_spec(RULES[policy]), workspace.data_ptr(), num_objects=OBJECTS)
        assert status == 0
        torch.cuda.synchronize()
        got = {k: v.cpu().numpy() for k, v in device.items()}
        for o in range(OBJECTS):
            references[o] = sis_update(references[o], entry(features[o], pointers[o], t, float(scores[o])),
                                       RULES[policy])
            _assert_bank_equal({k: v[o] for k, v in got.items()}, references[o], atol, f"object {o} frame {t}")
    if RULES[policy].merges:
        assert max(r.counts.max() for r in references) > 2  # merges happened and were compared
    else:  # 40 memories through 7 slots: the newest is always kept, so 33 drops were compared
        assert all(r.valid.all() and r.positions.max() == 39 for r in references)
