#!/usr/bin/python3
"""A transformer encoder classifier of a chosen size, traced, for bench_onednn_vs_libtorch.

    /usr/bin/python3 bench/onednn/make_encoder.py OUT.pt --d 256 --heads 4 --layers 4 --ffn 1024 --seq 64

The model is the test fixture's EncoderClassifier (tests/fixtures/make_torch_fixtures.py:
embedding, learned positions, nn.TransformerEncoder with GELU, layer norm,
mean over tokens, linear head) with random seeded weights, in eval mode,
traced on token ids [2, seq] in [0, 100). Like the fixtures, OUT.pt records
its input in compress_inputs.json; compress_arch.json records the
constructor's arguments, which fx_int8.py uses to rebuild it for FX.
The fixture itself (d 32, ffn 64, seq 16) is too small for int8 to pay: these
sizes show what a BERT-like layer does.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fixtures"))
from make_torch_fixtures import EncoderClassifier  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--d", type=int, default=256, help="model width")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024, help="feed-forward width")
    ap.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.d % args.heads != 0:
        ap.error("--d must be a multiple of --heads")
    torch.manual_seed(args.seed)
    kwargs = {"d": args.d, "heads": args.heads, "layers": args.layers, "ffn": args.ffn, "seq": args.seq}
    model = EncoderClassifier(**kwargs).eval()
    tokens = torch.randint(0, 100, (2, args.seq))
    with torch.no_grad():
        traced = torch.jit.trace(model, tokens, check_trace=False)
    inputs = {"inputs": [{"name": "input", "shape": list(tokens.shape), "dtype": "i64"}]}
    arch = {"arch": "transformer_encoder", "kwargs": kwargs}
    traced.save(args.out, _extra_files={"compress_inputs.json": json.dumps(inputs),
                                        "compress_arch.json": json.dumps(arch)})
    params = sum(p.numel() for p in model.parameters())
    print("wrote %s: EncoderClassifier(%s), %.2fM parameters" % (args.out, kwargs, params / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
