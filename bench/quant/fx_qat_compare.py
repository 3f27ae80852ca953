#!/usr/bin/python3
"""Our QAT (ctk qat) vs PyTorch's FX QAT on the same weights, data order, epochs and learning rate.

    /usr/bin/python3 bench/quant/fx_qat_compare.py --ctk build/src/cli/ctk [--models fashion_cnn,fashion_resnet]
        [--widths w8a8,w4a8,w4a4] [--lr 1e-4]

For each Fashion-MNIST fixture and width (W8A8 1 epoch, W4A8 2 epochs, W4A4 3
epochs) it measures on the 10,000 test images, side by side in one run:
  fp32      the fixture (ctk eval)
  ptq       ctk qat --epochs 0: the calibrated model converted untrained (PTQ at the width)
  ours      ctk qat --no-kd --no-shuffle (LSQ, batch 32, Adam, cosine), the
            converted int8 model run by ctk eval on onednn
  ours+kd   the same with logit distillation from the fixture (the default)
  fx        PyTorch FX QAT (prepare_qat_fx) from the same weights: per-channel
            symmetric weights and per-tensor affine activations through
            FakeQuantize with quant_min/quant_max for the width, moving-average
            observers, conv-bn fused with batch-norm statistics frozen (as
            ours), the same batches in the same order (no shuffle), Adam at
            the same lr with the same cosine schedule, cross-entropy. Its
            accuracy is the fake-quant model's (PyTorch's int8 kernels do not
            clamp to 4-bit ranges).
and the wall time of one training epoch of each (2 threads). Prints Markdown.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver, QConfig
from torch.ao.quantization.qconfig_mapping import QConfigMapping
from torch.ao.quantization.quantize_fx import prepare_qat_fx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from fashion_models import MEAN, STD, FashionCnn, FashionResnet, accuracy, load_split  # noqa: E402
from fx_ptq_compare import ctk, ctk_top1, torch_module  # noqa: E402

MODELS = {"fashion_cnn": FashionCnn, "fashion_resnet": FashionResnet}
WIDTHS = {"w8a8": (8, 8, 1), "w4a8": (4, 8, 2), "w4a4": (4, 4, 3)}
BATCH = 32


def qconfig(weight_bits, activation_bits):
    qp = 2 ** (weight_bits - 1) - 1
    act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0,
                                 quant_max=2 ** activation_bits - 1, dtype=torch.quint8,
                                 qscheme=torch.per_tensor_affine)
    weight = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-qp, quant_max=qp,
                                    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
    return QConfig(activation=act, weight=weight)


def fx_qat(model, x_train, y_train, weight_bits, activation_bits, epochs, lr):
    model.train()
    prepared = prepare_qat_fx(model, QConfigMapping().set_global(qconfig(weight_bits, activation_bits)),
                              example_inputs=(x_train[:1],))
    prepared.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    opt = torch.optim.Adam(prepared.parameters(), lr=lr)
    steps_per_epoch = len(x_train) // BATCH
    total = steps_per_epoch * epochs
    step = 0
    epoch_seconds = []
    for _ in range(epochs):
        start = time.time()
        for i in range(steps_per_epoch):
            for g in opt.param_groups:  # the Trainer's cosine: lr (1 + cos(pi p)) / 2, p = step / total
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))
            xb = x_train[i * BATCH:(i + 1) * BATCH]
            yb = y_train[i * BATCH:(i + 1) * BATCH]
            opt.zero_grad()
            F.cross_entropy(prepared(xb), yb).backward()
            opt.step()
            step += 1
        epoch_seconds.append(time.time() - start)
    prepared.apply(torch.ao.quantization.disable_observer)
    return prepared.eval(), min(epoch_seconds)


def ours(exe, cmf, out, weight_bits, activation_bits, epochs, lr, kd):
    args = ["qat", cmf, out, "--data", "fashion-mnist:train", "--mean", str(MEAN), "--std", str(STD),
            "--weight-bits", str(weight_bits), "--activation-bits", str(activation_bits), "--epochs", str(epochs),
            "--lr", str(lr), "--no-shuffle"]
    if not kd:
        args.append("--no-kd")
    start = time.time()
    text = ctk(args, exe)
    seconds = float(text.split(" steps in ")[1].split(" s")[0])
    del start
    return ctk_top1(exe, out, "onednn"), seconds / max(epochs, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctk", required=True)
    parser.add_argument("--models", default="fashion_cnn,fashion_resnet")
    parser.add_argument("--widths", default="w8a8,w4a8,w4a4")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--skip-kd", action="store_true", help="leave out the ours + kd column (saves time)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x_train, y_train = load_split("train")
    x_test, y_test = load_split("test")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cmf = os.path.join(ROOT, "tests", "fixtures", "models", name + ".cmf")
            fp32 = ctk_top1(args.ctk, cmf, "reference")
            for width in args.widths.split(","):
                wb, ab, epochs = WIDTHS[width]
                out = os.path.join(tmp, f"{name}_{width}.cmf")
                ptq, _ = ours(args.ctk, cmf, out, wb, ab, 0, args.lr, kd=False)
                ours_top1, ours_epoch = ours(args.ctk, cmf, out, wb, ab, epochs, args.lr, kd=False)
                kd_top1 = float("nan") if args.skip_kd else ours(args.ctk, cmf, out, wb, ab, epochs, args.lr, kd=True)[0]
                model = torch_module(args.ctk, cmf, MODELS[name], tmp)
                fx_model, fx_epoch = fx_qat(model, x_train, y_train, wb, ab, epochs, args.lr)
                fx = accuracy(fx_model, x_test, y_test)
                rows.append((name, width, epochs, fp32, ptq, ours_top1, kd_top1, fx,
                             ours_epoch, fx_epoch))
                print(rows[-1], flush=True)
    print("| model | width | epochs | fp32 | PTQ at the width | ours (int8, onednn) | ours + kd | FX QAT (fake-quant) "
          "| ours - FX | epoch s ours / FX |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, width, epochs, fp32, ptq, o, k, fx, oe, fe in rows:
        p = f"{ptq:.2f}"
        print(f"| {name} | {width.upper()} | {epochs} | {fp32:.2f} | {p} | {o:.2f} | {k:.2f} | {fx:.2f} | {o - fx:+.2f} "
              f"| {oe:.1f} / {fe:.1f} |")


if __name__ == "__main__":
    main()
