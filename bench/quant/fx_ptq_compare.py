#!/usr/bin/python3
"""Our int8 PTQ vs PyTorch's FX PTQ on the same trained weights and calibration images.

    /usr/bin/python3 bench/quant/fx_ptq_compare.py --ctk build/src/cli/ctk [--samples 512] [--observer minmax]

For each Fashion-MNIST fixture (fashion_cnn: plain CNN; fashion_resnet: residual
blocks) it measures on the 10,000 test images, in one run:
  fp32     the model (ctk eval, reference backend)
  ours     ctk quantize (per-channel s8 weights, u8 activations, the first N
           training images for calibration) then ctk eval on the onednn backend
  fx       PyTorch FX graph-mode PTQ (get_default_qconfig_mapping on the
           onednn engine: per-channel weights, histogram observer) of the same
           weights, calibrated on the same N images, evaluated by PyTorch
It prints a Markdown table (top-1 in percent) for bench/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
from fashion_models import MEAN, STD, FashionCnn, FashionResnet, accuracy, load_split  # noqa: E402

FIXTURES = [("fashion_cnn", FashionCnn), ("fashion_resnet", FashionResnet)]


def ctk(args, exe):
    out = subprocess.run([exe, "--quiet"] + args, check=True, capture_output=True, text=True)
    return out.stdout


def ctk_top1(exe, model, backend):
    out = ctk(["eval", model, "--data", "fashion-mnist:test", "--mean", str(MEAN), "--std", str(STD),
               "--backend", backend, "--json"], exe)
    return json.loads(out)["top1"]


def torch_module(exe, cmf, cls, tmp):
    """The fixture as a PyTorch module: ctk exports TorchScript whose constants are c_<name with _ for .>."""
    exported = os.path.join(tmp, os.path.basename(cmf) + ".pt")
    ctk(["convert", cmf, exported], exe)
    constants = torch.jit.load(exported).state_dict()
    model = cls()
    state = {}
    for key in model.state_dict():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
            continue
        state[key] = constants["c_" + key.replace(".", "_")]
    model.load_state_dict(state)
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctk", required=True)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--observer", default="minmax")
    args = parser.parse_args()
    torch.set_num_threads(2)
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("onednn", "x86", "fbgemm") if e in engines), None)
    torch.backends.quantized.engine = engine
    x_train, _ = load_split("train")
    x_test, y_test = load_split("test")
    calib = x_train[:args.samples]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in FIXTURES:
            cmf = os.path.join(ROOT, "tests", "fixtures", "models", name + ".cmf")
            fp32 = ctk_top1(args.ctk, cmf, "reference")
            int8 = os.path.join(tmp, name + "_int8.cmf")
            ctk(["quantize", cmf, int8, "--calib", "fashion-mnist:train", "--mean", str(MEAN), "--std", str(STD),
                 "--samples", str(args.samples), "--observer", args.observer], args.ctk)
            ours = ctk_top1(args.ctk, int8, "onednn")
            model = torch_module(args.ctk, cmf, cls, tmp)
            torch_fp32 = accuracy(model, x_test, y_test)
            prepared = prepare_fx(model, get_default_qconfig_mapping(engine), example_inputs=(calib[:1],))
            with torch.no_grad():
                for i in range(0, len(calib), 64):
                    prepared(calib[i:i + 64])
            fx = accuracy(convert_fx(prepared), x_test, y_test)
            rows.append((name, fp32, torch_fp32, ours, fx))
    print(f"| model | fp32 (ctk, reference) | fp32 (PyTorch) | ours int8 ({args.observer}, onednn) | FX int8 ({engine}) "
          f"| ours - fp32 | ours - FX |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, fp32, torch_fp32, ours, fx in rows:
        print(f"| {name} | {fp32:.2f} | {torch_fp32:.2f} | {ours:.2f} | {fx:.2f} | {ours - fp32:+.2f} | {ours - fx:+.2f} |")


if __name__ == "__main__":
    main()
