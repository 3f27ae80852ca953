#!/usr/bin/python3
"""Batch latency of a TorchScript model on LibTorch (Debian torch 1.13), as one JSON line.

    /usr/bin/python3 bench/contention/torch_bench.py MODEL.pt [--threads N] [--input-shape 1,3,224,224]
        [--min-time S] [--min-runs N] [--max-runs N] [--warmup N]

The model runs frozen (torch.jit.freeze), under torch.inference_mode, with
torch.set_num_threads(N) (LibTorch's intra-op pool is libgomp, like ctk's).
Prints {"p50","p90","min","mean","runs",...} in milliseconds.
"""
import argparse
import json
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-shape", default="1,3,224,224")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=15)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = torch.jit.freeze(torch.jit.load(a.model, map_location="cpu").eval())
    x = torch.randn(*[int(s) for s in a.input_shape.split(",")])
    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            m(x)
        t0 = time.perf_counter()
        while True:
            b = time.perf_counter()
            m(x)
            e = time.perf_counter()
            times.append((e - b) * 1e3)
            if (len(times) >= a.min_runs and e - t0 >= a.min_time) or len(times) >= a.max_runs:
                break
    s = sorted(times)
    print(json.dumps({"runtime": "libtorch " + torch.__version__, "model": a.model, "threads": a.threads,
                      "runs": len(s), "p50": statistics.median(s), "p90": s[int(0.9 * (len(s) - 1))],
                      "min": s[0], "mean": statistics.fmean(s)}))


if __name__ == "__main__":
    main()
