"""GPU time of one SIS bank update (CUDA kernels of plugins/sis), full bank so every update merges.

K=7 slots of 64x64 tokens x 64 channels (an official SAM2 memory at 1024 px), one object, fp32 and
fp16, every rule (fifo and prune drop, sis and sis-pair merge); CUDA events around 200 updates after 20 warm-up ones. Needs a CUDA GPU, nvcc and
a CUDA build of torch (for device buffers); compare against tests/gpu/test_sis_kernel.py
first.

    python benchmarks/sis_kernel.py --out out/bench/sis_kernel.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=64 * 64)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", default="out/bench/sis_kernel.json")
    args = parser.parse_args(argv)

    import torch

    from mixqsam2.fileio import write_json_atomic
    from mixqsam2.memory.sis_cuda import KernelRule, SISKernelLibrary, build_library
    from mixqsam2.memory.synthesis import RULES

    if not torch.cuda.is_available():
        print("error: no CUDA GPU", file=sys.stderr)
        return 2
    major, minor = torch.cuda.get_device_capability()
    library = SISKernelLibrary(build_library(tempfile.mkdtemp(), architectures=f"{major}{minor}"))
    dim, cap = args.tokens * args.channels, args.capacity
    result = {"device": torch.cuda.get_device_name(), "capacity": cap, "tokens": args.tokens,
              "channels": args.channels, "ms_per_update": {}}
    for dtype in ("float32", "float16"):
        for rule in ("fifo", "prune", "sis", "sis-pair"):
            t = getattr(torch, dtype)
            bank = {"features": torch.randn(cap, dim, dtype=t, device="cuda"),
                    "pointers": torch.randn(cap, 256, dtype=t, device="cuda"),
                    "positions": torch.arange(cap, dtype=torch.float32, device="cuda"),
                    "scores": torch.ones(cap, device="cuda"), "counts": torch.ones(cap, device="cuda"),
                    "valid": torch.ones(cap, dtype=torch.int32, device="cuda")}
            new = {"features": torch.randn(dim, dtype=t, device="cuda"), "pointer": torch.randn(256, dtype=t, device="cuda"),
                   "position": torch.tensor([float(cap)], device="cuda"), "score": torch.ones(1, device="cuda")}
            workspace = torch.empty(library.workspace_bytes(cap), dtype=torch.uint8, device="cuda")
            pointers = ({k: v.data_ptr() for k, v in bank.items()}, {k: v.data_ptr() for k, v in new.items()})

            def update():
                bank["valid"].fill_(1)  # keep the bank full: every update merges or drops
                status = library.update(dtype, *pointers, cap, dim, 256, KernelRule.from_spec(RULES[rule]),
                                        workspace.data_ptr())
                assert status == 0, status

            for _ in range(20):
                update()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(args.iterations):
                update()
            end.record()
            torch.cuda.synchronize()
            result["ms_per_update"][f"{dtype}/{rule}"] = start.elapsed_time(end) / args.iterations
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
