#!/usr/bin/python3
"""A competing PyTorch training job: a small CNN trained forever on random data.

    /usr/bin/python3 bench/contention/train_competitor.py [--threads 2] [--batch 32]

It stands for "a training run beside the inference process": torch with
torch.set_num_threads(N) (libgomp, spinning by default), forward + backward +
SGD steps on 32x3x64x64 batches. Prints "ready" on stdout after the first step
(run_contention.sh waits for it) and then one line per 50 steps on stderr
with the step time. Stop it with SIGTERM.
"""
import argparse
import signal
import sys
import time

import torch
import torch.nn as nn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--quiet", action="store_true", help="no step-time lines on stderr")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, 64, 64)
    y = torch.randint(0, 10, (a.batch,))
    step = 0
    t = time.perf_counter()
    while True:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        step += 1
        if step == 1:
            print("ready", flush=True)
        if step % 50 == 0 and not a.quiet:
            now = time.perf_counter()
            print(f"train_competitor: {(now - t) / 50 * 1e3:.1f} ms/step", file=sys.stderr, flush=True)
            t = now


if __name__ == "__main__":
    main()
