#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""A real Triton Inference Server for the remote scorer's tests.

PyPI nvidia-pytriton bundles Triton (CPU-only here) with its Python backend; the model function
runs an ONNX model with onnxruntime, so the server answers exactly what the local ONNX scorer
computes. Input and output names and shapes are the ONNX model's (batch dimension dynamic).

Binds 127.0.0.1 only, on the ports given. Prints one line `READY grpc=127.0.0.1:PORT` once the
model is loaded; stops cleanly on SIGTERM/SIGINT or when its standard input closes (the test
process holding the other end has gone).

Run with the venv made by `make triton-venv`:
  .venv-triton/bin/python tests/triton/server.py --model models/tiny-action.onnx \
      --grpc-port 8001 --http-port 8000 --metrics-port 8002 --workspace /tmp/ws
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="ONNX model file")
    p.add_argument("--name", default="tiny-action", help="model name on the server")
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    p.add_argument("--workspace", required=True, help="a folder that does not exist yet")
    p.add_argument("--max-batch", type=int, default=8, help="the model's max_batch_size")
    p.add_argument("--instances", type=int, default=1, help="model instances (run concurrently)")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds added to every call")
    p.add_argument(
        "--sleep-file",
        help="read the seconds to add from this file at every call (--sleep while it is "
        "missing or unreadable), so a test can slow the model down and speed it up again",
    )
    p.add_argument("--tls-cert", help="PEM server certificate: serve gRPC over TLS")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args()


def dims(shape):
    """ONNX dims without the batch one; symbolic or unknown dims become -1."""
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape[1:])


def sleep_for(default, path):
    """The seconds to sleep on this call: the file's number when there is one."""
    if path:
        try:
            with open(path) as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            pass
    return default


def make_infer(model_path, input_name, output_name, sleep, sleep_file):
    options = ort.SessionOptions()
    # One thread per instance: instances, not threads, give the server its concurrency.
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    @batch
    def infer(**inputs):
        seconds = sleep_for(sleep, sleep_file)
        if seconds > 0:
            time.sleep(seconds)
        x = np.ascontiguousarray(inputs[input_name], dtype=np.float32)
        (y,) = session.run([output_name], {input_name: x})
        return {output_name: y.astype(np.float32)}

    return infer


def main():
    args = parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    probe = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    inp, out = probe.get_inputs()[0], probe.get_outputs()[0]
    del probe

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin():
        # EOF: whoever started us is gone; do not outlive it.
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read breaks shutdown.
        while os.read(sys.stdin.fileno(), 4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    tls = {}
    if args.tls_cert:
        tls = dict(grpc_use_ssl=True, grpc_server_cert=args.tls_cert, grpc_server_key=args.tls_key)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        exit_timeout_secs=2,
        log_verbose=1 if args.verbose else 0,
        **tls,
    )
    with Triton(config=config, workspace=args.workspace) as triton:
        triton.bind(
            model_name=args.name,
            infer_func=[
                make_infer(args.model, inp.name, out.name, args.sleep, args.sleep_file)
                for _ in range(args.instances)
            ],
            inputs=[Tensor(name=inp.name, dtype=np.float32, shape=dims(inp.shape))],
            outputs=[Tensor(name=out.name, dtype=np.float32, shape=dims(out.shape))],
            config=ModelConfig(max_batch_size=args.max_batch),
            strict=True,
        )
        triton.run()
        print(f"READY grpc=127.0.0.1:{args.grpc_port} model={args.name}", flush=True)
        stop.wait()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
