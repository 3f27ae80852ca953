#!/usr/bin/python3
"""PyTorch's own int8 path for bench_onednn_vs_libtorch: FX graph-mode PTQ, traced and frozen, timed.

    /usr/bin/python3 bench/onednn/fx_int8.py MODEL.pt --arch resnet18 --batch 1 --size 224 \
        --threads 2 --runs 100 --calib 8

Rebuilds the torchvision architecture (the traced MODEL.pt has no nn.Module
that FX can trace) and loads MODEL.pt's weights and batch-norm statistics into
it (strict), so the weights are the fixture's. --arch transformer_encoder is
the fixture's EncoderClassifier (imported from
tests/fixtures/make_torch_fixtures.py), built with the arguments MODEL.pt
records in compress_arch.json when it has one (make_encoder.py writes it),
fed random token ids [batch, --seq] in [0, 100); FX
quantizes its linear layers, layer norms and the classifier head (its
attention runs in f32). Quantizes with
get_default_qconfig_mapping(ENGINE) on the quantized engine ENGINE ("onednn"
if this torch build has it, else "x86", else "fbgemm"; the JSON says which),
calibrates on --calib random N(0,1) inputs of shape [batch, 3, size, size],
converts, then torch.jit.trace + torch.jit.freeze. Timed: --warmup untimed runs
(default 15, as bench_onednn_vs_libtorch), then --runs runs with torch.set_num_threads(--threads). Prints one JSON line:
{"p50_ms", "p90_ms", "min_ms", "engine", "runs", "calib"}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

# The fixture's own model class, so its state dict loads strictly.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "fixtures"))
from make_torch_fixtures import EncoderClassifier  # noqa: E402


def percentile(values, p):
    v = sorted(values)
    i = min(len(v) - 1, int(p * (len(v) - 1) + 0.5))
    return v[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seq", type=int, default=16, help="token models: sequence length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--calib", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=15)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("onednn", "x86", "fbgemm") if e in engines), None)
    if engine is None:
        print(json.dumps({"error": "no onednn/x86/fbgemm quantized engine in %s" % engines}))
        return 1
    torch.backends.quantized.engine = engine

    extra = {"compress_arch.json": ""}
    traced = torch.jit.load(args.model, _extra_files=extra)
    recorded = json.loads(extra["compress_arch.json"]) if extra["compress_arch.json"] else {}
    arch = recorded.get("arch", args.arch)
    tokens = arch == "transformer_encoder"
    if tokens:
        kwargs = dict(recorded.get("kwargs", {}))
        kwargs.setdefault("seq", args.seq)
        model = EncoderClassifier(**kwargs)
    else:
        model = getattr(torchvision.models, arch)()
    model.load_state_dict(traced.state_dict(), strict=True)
    model.eval()

    shape = (args.batch, args.seq) if tokens else (args.batch, 3, args.size, args.size)
    gen = torch.Generator().manual_seed(7)

    def sample():
        return torch.randint(0, 100, shape, generator=gen) if tokens else torch.randn(*shape, generator=gen)

    example = sample()
    prepared = prepare_fx(model, get_default_qconfig_mapping(engine), example_inputs=(example,))
    with torch.no_grad():
        for _ in range(args.calib):
            prepared(sample())
    quantized = convert_fx(prepared)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(quantized, example, check_trace=False).eval())
        x = sample()
        for _ in range(args.warmup):
            frozen(x)
        ms = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            frozen(x)
            ms.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"p50_ms": percentile(ms, 0.5), "p90_ms": percentile(ms, 0.9), "min_ms": min(ms),
                      "engine": engine, "runs": args.runs, "calib": args.calib}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
