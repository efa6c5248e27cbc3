# SPDX-License-Identifier: MIT OR Apache-2.0
"""Time per clip of each verifier with ONNX Runtime on this CPU: batch 1, 1 and 2 intra-op
threads, the fastest and the median of several runs after one warm-up, and the load average.

    python models/verifier/timing.py NAME=MODEL.onnx [NAME=MODEL.onnx ...]

(`make verifier-timing` times every model of `make eval`.)
"""

import os
import sys
import time

import numpy as np


def main():
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 16, 112, 112)).astype(np.float32)
    print(f"ONNX Runtime {ort.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        for threads in (1, 2):
            o = ort.SessionOptions()
            o.intra_op_num_threads = threads
            o.inter_op_num_threads = 1
            s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
            s.run(None, {"input_rgb": x})
            ts = []
            t_end = time.perf_counter() + 5.0
            while len(ts) < 30 and (len(ts) < 5 or time.perf_counter() < t_end):
                t = time.perf_counter()
                s.run(None, {"input_rgb": x})
                ts.append(time.perf_counter() - t)
            print(f"{name:>10} {threads} thread{'s' if threads > 1 else ' '}: fastest "
                  f"{min(ts) * 1e3:7.1f} ms, median {np.median(ts) * 1e3:7.1f} ms ({len(ts)} runs)",
                  flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
