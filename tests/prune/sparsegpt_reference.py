"""Cross-check of prune's SparseGPT against an independent PyTorch reimplementation.

Usage: /usr/bin/python3 sparsegpt_reference.py CTK WORKDIR

Builds a one-layer TorchScript model (Linear 256 -> 48) and correlated inputs
X, prunes it with `ctk prune --criterion sparsegpt` (50% unstructured and 2:4),
exports the result back to TorchScript, and compares it with Algorithm 1 of
Frantar & Alistarh (2023) written here in float64 torch (lazy blocks of 128
columns, damping 1% of the mean Hessian diagonal, the upper Cholesky factor of
H^-1). The unstructured block counts follow Note [Exact and deterministic
masks] (the paper's code prunes one more weight per block at the threshold).
Fails unless the masks agree exactly and the weights within 1e-5.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch


def reference_sparsegpt(W, H, sparsity, n=0, m=0, blocksize=128, percdamp=0.01):
    W = W.clone()
    rows, cols = W.shape
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    total = round(sparsity * rows * cols)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        mask1 = torch.zeros_like(W1, dtype=torch.bool)
        if n == 0:
            saliency = (W1 ** 2 / torch.diag(Hinv1).reshape(1, -1) ** 2).flatten()
            k = round(total * i2 / cols) - round(total * i1 / cols)
            mask1.view(-1)[torch.argsort(saliency, stable=True)[:k]] = True
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if n != 0 and i % m == 0:
                saliency = W1[:, i:i + m] ** 2 / torch.diag(Hinv1)[i:i + m].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(saliency, m - n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def main():
    ctk, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 48, bias=False)
    model = torch.jit.trace(torch.nn.Sequential(lin).eval(), torch.randn(1, 256))
    shapes = json.dumps({"inputs": [{"name": "input", "shape": [1, 256], "dtype": "f32"}]})
    model.save(os.path.join(work, "lin.pt"), _extra_files={"compress_inputs.json": shapes})
    X = (torch.randn(300, 256) @ (torch.randn(256, 256) * 0.2 + torch.eye(256))).float()
    np.save(os.path.join(work, "x.npy"), X.numpy())
    W0 = lin.weight.detach().double()
    H = X.double().t() @ X.double()

    ok = True
    for label, args, kw in [("50%", ["--method", "magnitude", "--ratio", "0.5"], {}),
                            ("2:4", ["--method", "nm", "--pattern", "2:4"], {"n": 2, "m": 4})]:
        cmf, pt = os.path.join(work, "out.cmf"), os.path.join(work, "out.pt")
        subprocess.run([ctk, "prune", os.path.join(work, "lin.pt"), cmf, *args, "--criterion", "sparsegpt",
                        "--calib", "npy:" + os.path.join(work, "x.npy"), "--samples", "300", "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([ctk, "convert", cmf, pt, "-q"], check=True, stdout=subprocess.DEVNULL)
        exported = torch.jit.load(pt)
        tensors = list(exported.state_dict().values()) or [
            node.output().toIValue() for node in exported.graph.findAllNodes("prim::Constant")
            if node.output().type().kind() == "TensorType"]
        ours = tensors[0].double()
        ref = reference_sparsegpt(W0, H, 0.5, **kw)
        masks_agree = bool(((ours == 0) == (ref == 0)).all())
        diff = (ours - ref).abs().max().item()
        err = lambda Wp: ((X.double() @ (W0 - Wp).t()) ** 2).sum().item()
        print(f"{label}: masks agree {masks_agree}, max |ours - ref| {diff:.3g}, "
              f"||X(W - W')||^2 ours {err(ours):.6g} ref {err(ref):.6g}")
        ok = ok and masks_agree and diff < 1e-5
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
