#!/usr/bin/python3
"""Exports a TorchScript fixture to ONNX with the same weights, for ONNX Runtime.

Run with Debian's /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 bench/contention/export_onnx.py IN.pt OUT.onnx --input-shape 1,3,224,224

IN.pt is a traced fixture of tests/fixtures/make_torch_fixtures.py (resnet18.pt,
mobilenet_v2.pt); torch.jit.load + torch.onnx.export keeps its weights, so ctk
(IN.pt converted to .cmf), LibTorch (IN.pt) and ONNX Runtime (OUT.onnx) run the
same network. The batch dimension is exported as dynamic. Next to OUT.onnx it
writes a reference for `ort_bench.mjs --check`: OUT.onnx.ref.json (shapes) and
OUT.onnx.input.bin / OUT.onnx.output.bin (raw little-endian float32: a random
input and PyTorch's output on it).
"""
import argparse
import json
import os
import sys

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="TorchScript file (.pt)")
    ap.add_argument("out", help="ONNX file to write")
    ap.add_argument("--input-shape", default="1,3,224,224", help="N,C,H,W (default 1,3,224,224)")
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args()
    shape = [int(s) for s in args.input_shape.split(",")]
    torch.manual_seed(0)
    m = torch.jit.load(args.model, map_location="cpu").eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        y = m(x)
        tmp = args.out + ".tmp"
        torch.onnx.export(m, (x,), tmp, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=args.opset)
    os.replace(tmp, args.out)
    x.numpy().astype("<f4").tofile(args.out + ".input.bin")
    y.numpy().astype("<f4").tofile(args.out + ".output.bin")
    with open(args.out + ".ref.json", "w") as f:
        json.dump({"input_shape": list(x.shape), "output_shape": list(y.shape)}, f)
    print(f"wrote {args.out} (input {shape}, opset {args.opset})", file=sys.stderr)


if __name__ == "__main__":
    main()
