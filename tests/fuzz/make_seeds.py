#!/usr/bin/env python3
"""Writes the committed seed corpora for the .npy, IDX and recipe fuzzers (tests/fuzz/corpus/{npy,idx,recipe}/).

Standard library only (no numpy): the files are written byte by byte, as the
formats specify them, so the seeds do not depend on what is installed.
The valid .cmf seeds come from the cmf_make_seeds program (see README.md);
this script derives the broken .cmf seeds from them when they are there.

    python3 tests/fuzz/make_seeds.py [CORPUS_DIR]     (default: tests/fuzz/corpus)
"""

import gzip
import os
import struct
import sys


def npy(descr, shape, payload, version=1, fortran=False, pad=True):
    """A .npy file: magic, version, header length, the dict, the data."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, dims)
    length_size = 2 if version == 1 else 4
    prefix = 6 + 2 + length_size
    if pad:  # numpy aligns the data to 64 bytes and ends the header with '\n'
        header += " " * ((-(prefix + len(header) + 1)) % 64)
    header += "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode("latin-1") + payload


def count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def ramp(fmt, n):
    return b"".join(struct.pack("<" + fmt, (i * 7) % 11) for i in range(n))


def npy_seeds():
    seeds = {}
    # Every dtype the reader accepts, in the ranks datasets use.
    for descr, fmt in [("<f4", "f"), ("<f2", "e"), ("<f8", "d"), ("|i1", "b"), ("|u1", "B"), ("<i4", "i"),
                       ("<i8", "q"), ("|b1", "?")]:
        shape = (2, 3)
        seeds["%s_2x3.npy" % descr[1:]] = npy(descr, shape, ramp(fmt, count(shape)))
    seeds["f4_scalar.npy"] = npy("<f4", (), struct.pack("<f", 1.5))
    seeds["f4_empty.npy"] = npy("<f4", (0, 4), b"")
    seeds["f4_images.npy"] = npy("<f4", (2, 1, 4, 4), ramp("f", 32))
    seeds["i8_labels.npy"] = npy("<i8", (5,), ramp("q", 5))
    seeds["f4_v2.npy"] = npy("<f4", (3,), ramp("f", 3), version=2)
    seeds["f4_v3.npy"] = npy("<f4", (3,), ramp("f", 3), version=3)
    seeds["f4_fortran_1d.npy"] = npy("<f4", (3,), ramp("f", 3), fortran=True)
    seeds["f4_unpadded.npy"] = npy("<f4", (2,), ramp("f", 2), pad=False)
    seeds["b1_bytes.npy"] = npy("|b1", (4,), b"\x00\x01\x02\xff")
    seeds["f4_native_order.npy"] = npy("=f4", (2,), ramp("f", 2))
    # Broken ones: each fails one check, so mutations start next to it.
    seeds["bad_big_endian.npy"] = npy(">f4", (2,), struct.pack(">ff", 1, 2))
    seeds["bad_fortran_2d.npy"] = npy("<f4", (2, 2), ramp("f", 4), fortran=True)
    seeds["bad_short_data.npy"] = npy("<f4", (2, 3), ramp("f", 5))
    seeds["bad_dtype.npy"] = npy("<c8", (1,), b"\0" * 8)
    seeds["bad_version.npy"] = b"\x93NUMPY\x04\x00" + npy("<f4", (1,), b"\0\0\0\0")[8:]
    seeds["bad_header_length.npy"] = b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'}"
    seeds["bad_overflow.npy"] = npy("<f4", (4294967296, 4294967296, 4294967296), b"")
    return seeds


def idx(dims, data):
    """An IDX file: 00 00 08 <rank>, big-endian u32 dims, u8 data."""
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def idx_input(images, labels=None, limit=None):
    """The fuzz target's input (Note [Fuzz input layout for IDX] in fuzz_idx_reader.cpp)."""
    mode = (1 if labels is not None else 0) | ((2 | (limit << 2)) if limit is not None else 0)
    out = bytes([mode])
    if labels is not None:
        out += struct.pack("<I", len(images)) + images + labels
    else:
        out += images
    return out


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx_seeds():
    seeds = {}
    pixels = [(i * 37) % 256 for i in range(3 * 4 * 4)]
    images = idx([3, 4, 4], pixels)
    labels = idx([3], [0, 9, 4])
    for name, im, lb in [("plain", images, labels), ("gzip", gz(images), gz(labels)),
                         ("mixed", gz(images), labels)]:
        seeds["%s_images.bin" % name] = idx_input(im)
        seeds["%s_images_labels.bin" % name] = idx_input(im, lb)
        seeds["%s_images_labels_limit2.bin" % name] = idx_input(im, lb, limit=2)
    seeds["rank4_images.bin"] = idx_input(idx([2, 2, 3, 3], range(36)), idx([2], [1, 0]))
    seeds["rank1_images.bin"] = idx_input(idx([4], range(4)))
    seeds["zero_images.bin"] = idx_input(idx([0, 28, 28], []), idx([0], []))
    # Two gzip members back to back are one stream to zlib.
    seeds["gzip_two_members.bin"] = idx_input(gz(images[:20]) + gz(images[20:]))
    # Broken ones.
    seeds["bad_type.bin"] = idx_input(bytes([0, 0, 9, 3]) + images[4:])
    seeds["bad_trailing.bin"] = idx_input(images + b"\0")
    seeds["bad_short.bin"] = idx_input(images[:-1])
    seeds["bad_gzip_trailing.bin"] = idx_input(gz(images + b"\x01"))
    seeds["bad_gzip_truncated.bin"] = idx_input(gz(images)[:-6])
    seeds["bad_label_count.bin"] = idx_input(images, idx([2], [1, 2]))
    seeds["bad_huge_gzip.bin"] = idx_input(gz(idx([60000, 1000, 1000], [])))
    # Within the default dataset limit (7.5 GiB as f32) but with no data: the
    # reader must not allocate what the header claims before the data is there.
    seeds["bad_gzip_claims_2g.bin"] = idx_input(gz(idx([2000, 1000, 1000], [])))
    return seeds


def recipe_seeds():
    seeds = {}
    seeds["ptq.yaml"] = """model: model.cmf
output: out.cmf
seed: 0
threads: 2
data:
  calibration: {spec: "fashion-mnist:train", mean: 0.2860, std: 0.3530, samples: 512}
  evaluation:  {spec: "fashion-mnist:test",  mean: 0.2860, std: 0.3530}
stages:
  - transforms.fold_batch_norm
  - quant.ptq:
      observer: minmax
      samples: 512
      batch: 32
      calibration_backend: reference
      weight_granularity: per_tensor
      weight_bits: 8
      activation_bits: 8
      fake_quant: false
      bias_correction: true
      keep_f32: [fc, "conv*"]
report:
  out: report
  backend: reference
  batch_sizes: [1, 32]
  min_time: 0.5
  baseline_name: fp32
  variant_name: int8
"""
    seeds["quant_prep.yaml"] = """model: m.cmf
output: o.cmf
data:
  calibration: idx:images.gz,labels.gz
stages:
  - quant.cle
  - quant.smoothquant: {alpha: 0.5, samples: 64, batch: 8}
  - quant.bias_correction: {samples: 16, calibration_backend: onednn}
  - quant.ptq: {observer: percentile, percentile: 99.9}
  - quant.ptq: {observer: moving_average, momentum: 0.9, bits: 4}
  - quant.ptq: {observer: kl}
  - quant.ptq: {observer: mse, max_drop: 0.5}
"""
    seeds["sensitivity.yaml"] = """model: m.cmf
output: o.cmf
data:
  calibration: npy:x.npy
  evaluation: {spec: "npy:x.npy,y.npy", samples: 100}
stages:
  - quant.sensitivity: {observer: minmax, samples: 32, fake_quant: true}
"""
    seeds["prune.yaml"] = """model: /abs/m.cmf
output: ../o.cmf
data:
  calibration: {spec: "fashion-mnist:train", samples: 128}
  training: fashion-mnist:train
stages:
  - prune.magnitude:
      ratio: 0.8
      scope: layer
      format: csr
      steps: 2
      comparison: row
      layers: {fc: 0.5, "conv*": 0.25}
  - prune.magnitude: {ratio: 0.5, criterion: wanda}
  - prune.magnitude: {ratio: 0.5, criterion: sparsegpt, damp: 0.01, block_size: 128}
  - prune.nm: {pattern: "2:4", criterion: sparsegpt, format: nm}
  - prune.nm: {pattern: "4:8", format: mask}
"""
    seeds["structured.yaml"] = """model: m.cmf
output: o.cmf
stages:
  - prune.structured:
      target_flops: 0.5
      criterion: bn_gamma
      round_to: 8
      min_channels: 4
      exclude: [fc]
  - prune.structured: {ratio: 0.25, criterion: l2}
  - prune.structured: {target_params: 0.3, criterion: l1}
"""
    seeds["anchors.yaml"] = """model: m.cmf
output: o.cmf
data:
  calibration: &cal {spec: "fashion-mnist:train", samples: 64}
  evaluation: *cal
stages:
  - quant.ptq: &opts {observer: minmax}
  - quant.sensitivity: *opts
"""
    seeds["flow.yaml"] = '{model: m.cmf, output: o.cmf, stages: [transforms.fold_batch_norm, {quant.ptq: {samples: 8}}]}\n'
    seeds["minimal.yaml"] = "stages: [transforms.fold_batch_norm]\n"
    # Broken ones: each fails one check.
    seeds["bad_unknown_pass.yaml"] = "model: m.cmf\noutput: o.cmf\nstages:\n  - prune.magic\n"
    seeds["bad_unknown_option.yaml"] = "model: m.cmf\noutput: o.cmf\nstages:\n  - prune.magnitude: {ratoi: 0.5}\n"
    seeds["bad_range.yaml"] = "model: m.cmf\noutput: o.cmf\nstages:\n  - prune.magnitude: {ratio: 1.5}\n"
    seeds["bad_duplicate.yaml"] = "model: a.cmf\nmodel: b.cmf\noutput: o.cmf\nstages: [quant.cle]\n"
    seeds["bad_needs.yaml"] = "model: m.cmf\noutput: o.cmf\nstages:\n  - quant.ptq\n"
    seeds["bad_nan.yaml"] = "model: m.cmf\noutput: o.cmf\ndata:\n  calibration: {spec: x, std: .nan}\nstages: [quant.cle]\n"
    seeds["bad_stages.yaml"] = "model: m.cmf\noutput: o.cmf\nstages: {quant.ptq: {}}\n"
    seeds["bad_yaml.yaml"] = "model: [m.cmf\nstages:\n  - : :\n"
    seeds["bad_report.yaml"] = ("model: m.cmf\noutput: o.cmf\nstages: [quant.cle]\n"
                                "report: {out: r, batch_sizes: [], backend: cuda, min_time: -1}\n")
    seeds["bad_threads.yaml"] = "model: m.cmf\noutput: o.cmf\nthreads: 100000\nstages: [quant.cle]\n"
    return {name: text.encode() for name, text in seeds.items()}


def cmf_broken_seeds(folder):
    """Broken .cmf files made from cmf_make_seeds' output: cut short, a flipped data byte, a flipped header byte,
    annotations with a bad target code and a target node that is not in the graph."""
    def read(name):
        path = os.path.join(folder, name)
        return bytearray(open(path, "rb").read()) if os.path.exists(path) else None
    seeds = {}
    ops, sparse, quant = read("ops.cmf"), read("sparse.cmf"), read("quant.cmf")
    if ops:
        seeds["bad_truncated.cmf"] = bytes(ops[:200])
    if sparse:
        sparse[-10] ^= 0xFF  # inside the last data blob: its checksum no longer matches
        seeds["bad_data_checksum.cmf"] = bytes(sparse)
    if quant:
        quant[60] ^= 0x01  # inside the header: its checksum no longer matches
        seeds["bad_header_byte.cmf"] = bytes(quant)
    annotated = read("annotated.cmf")
    if annotated:
        # The annotation record of node fc: kind, u8 target code, target name (u64 length + bytes).
        kind = b"prune.channel_importance"
        code = annotated.index(kind) + len(kind)
        bad_code = bytearray(annotated)
        bad_code[code] = 7  # no such target code
        seeds["bad_annotation_target_code.cmf"] = bytes(bad_code)
        bad_node = bytearray(annotated)
        assert bad_node[code + 9:code + 11] == b"fc"
        bad_node[code + 10] = ord("x")  # node "fx" is not in the graph
        seeds["bad_annotation_target_node.cmf"] = bytes(bad_node)
    return seeds


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    kinds = [("npy", npy_seeds()), ("idx", idx_seeds()), ("recipe", recipe_seeds()),
             ("cmf", cmf_broken_seeds(os.path.join(root, "cmf")))]
    for kind, seeds in kinds:
        folder = os.path.join(root, kind)
        os.makedirs(folder, exist_ok=True)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds in %s" % (kind, len(seeds), folder))


if __name__ == "__main__":
    main()
