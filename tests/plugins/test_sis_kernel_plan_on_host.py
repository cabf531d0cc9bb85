"""The CUDA kernels' scalar update (selection, weights, slots), compiled for the host with
nvcc and compared with the NumPy reference on random banks: no GPU needed."""

import shutil
import subprocess

import numpy as np
import pytest

from mixqsam2.memory.sis_cuda import PLUGIN_SOURCE, RULE_KINDS
from mixqsam2.memory.synthesis import RULES, MemoryArrays, entry, sis_update

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


@pytest.fixture(scope="module")
def plan_update(tmp_path_factory):
    binary = tmp_path_factory.mktemp("host") / "plan_update_host"
    source = PLUGIN_SOURCE / "tests" / "plan_update_host.cu"
    subprocess.run(["nvcc", "-std=c++17", "-I", str(PLUGIN_SOURCE / "include"), "-o", str(binary), str(source)],
                   check=True, capture_output=True)

    def run(bank: MemoryArrays, new: MemoryArrays, rule) -> np.ndarray:
        vectors = np.concatenate([bank.features, new.features]).reshape(bank.valid.size + 1, -1).astype(np.float64)
        gram = (vectors @ vectors.T).astype(np.float32)  # the kernel's raw dot products
        header = [bank.valid.size, RULE_KINDS[rule.kind], rule.top_k, rule.temperature,
                  float(new.positions[0]), float(new.scores[0])]
        body = [*gram.ravel(), *bank.positions, *bank.scores, *bank.counts, *bank.valid.astype(int)]
        done = subprocess.run([str(binary)], input=" ".join(f"{x:.9g}" for x in header + body), text=True,
                              capture_output=True, check=True)
        lines = done.stdout.split("\n")
        merged = int(lines[0].split()[0])
        return np.array([[float(v) for v in line.split()] for line in lines[1 + merged:] if line.strip()])

    return run


def _random_bank(rng, capacity, full):
    tokens, channels = 6, 4
    base = rng.normal(size=(tokens, channels))
    features = (base + rng.normal(scale=rng.uniform(0.3, 2), size=(capacity, tokens, channels))).astype(np.float32)
    valid = np.ones(capacity, bool) if full else rng.random(capacity) < 0.6
    return MemoryArrays(
        features=features, pointers=np.zeros((capacity, 2), np.float32),
        positions=rng.permutation(capacity).astype(np.float32) + rng.random(capacity).astype(np.float32),
        scores=rng.normal(scale=3, size=capacity).astype(np.float32),
        counts=rng.integers(1, 5, size=capacity).astype(np.float32), valid=valid,
    ), entry(base + rng.normal(size=base.shape), [0, 0], capacity + 1.0, 1.5)


@pytest.mark.parametrize("policy", sorted(RULES))
@pytest.mark.parametrize("seed", range(10))
def test_host_compiled_kernel_plan_equals_numpy(plan_update, policy, seed):
    rng = np.random.default_rng(seed)
    capacity = int(rng.integers(2, 9))
    bank, new = _random_bank(rng, capacity, full=seed % 4 != 0)
    got = plan_update(bank, new, RULES[policy])  # rows: position, score, count, valid per slot
    expected = sis_update(bank, new, RULES[policy])
    np.testing.assert_array_equal(got[:, 3].astype(bool), expected.valid)
    valid = expected.valid
    np.testing.assert_allclose(got[valid, 0], expected.positions[valid], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[valid, 1], expected.scores[valid], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[valid, 2], expected.counts[valid], rtol=0, atol=0)
