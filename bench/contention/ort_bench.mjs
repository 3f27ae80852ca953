// Batch latency of an ONNX model on ONNX Runtime (CPU), printed as one JSON line.
//
//   node bench/contention/ort_bench.mjs MODEL.onnx [--threads N] [--min-time S] [--min-runs N]
//        [--max-runs N] [--warmup N] [--batch B] [--no-spin] [--check]
//
// --threads N: intraOpNumThreads (0 = ORT's default: one thread per physical
//   core, with ORT's own thread affinity). Sequential execution, inter-op 1,
//   all graph optimizations. --no-spin sets session.intra_op.allow_spinning=0.
// Warm-up runs, then timed runs until both --min-runs and --min-time are
//   reached (at most --max-runs). Output: {"p50","p90","min","mean","runs",...} in ms.
// --check compares the output on MODEL.onnx.input.bin with MODEL.onnx.output.bin
//   (written by export_onnx.py) and fails when they differ by more than 1e-3.
//
// onnxruntime-node is looked up from the current directory and from
// $ORT_NODE_DIR (a folder holding node_modules/onnxruntime-node), e.g.
//   cd /tmp/contention && npm install --ignore-scripts onnxruntime-node@1.30
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

function parseArgs(argv) {
  const a = { threads: 2, minTime: 2.0, minRuns: 10, maxRuns: 5000, warmup: 15, batch: 0, spin: true, check: false };
  const rest = [];
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === "--threads") a.threads = parseInt(v(), 10);
    else if (k === "--min-time") a.minTime = parseFloat(v());
    else if (k === "--min-runs") a.minRuns = parseInt(v(), 10);
    else if (k === "--max-runs") a.maxRuns = parseInt(v(), 10);
    else if (k === "--warmup") a.warmup = parseInt(v(), 10);
    else if (k === "--batch") a.batch = parseInt(v(), 10);
    else if (k === "--no-spin") a.spin = false;
    else if (k === "--check") a.check = true;
    else if (k === "--help" || k === "-h") {
      console.log(fs.readFileSync(new URL(import.meta.url)).toString().split("\n").filter((l) => l.startsWith("//")).map((l) => l.slice(3)).join("\n"));
      process.exit(0);
    } else if (k.startsWith("--")) throw new Error(`unknown option ${k}`);
    else rest.push(k);
  }
  if (rest.length !== 1) throw new Error("need exactly one MODEL.onnx");
  a.model = rest[0];
  return a;
}

function loadOrt() {
  const dirs = [process.cwd(), process.env.ORT_NODE_DIR, "/tmp/contention"].filter(Boolean);
  for (const d of dirs) {
    try {
      return createRequire(path.join(path.resolve(d), "package.json"))("onnxruntime-node");
    } catch (e) {
      /* next */
    }
  }
  throw new Error("onnxruntime-node not found (npm install --ignore-scripts onnxruntime-node@1.30 in $ORT_NODE_DIR)");
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function main() {
  let a;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`ort_bench: ${e.message}`);
    process.exit(2);
  }
  const ort = loadOrt();
  const opts = {
    executionProviders: ["cpu"],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    extra: { session: { intra_op: { allow_spinning: a.spin ? "1" : "0" } } },
  };
  const session = await ort.InferenceSession.create(a.model, opts);
  const inName = session.inputNames[0];
  let shape = [1, 3, 224, 224];
  const refPath = a.model + ".ref.json";
  if (fs.existsSync(refPath)) shape = JSON.parse(fs.readFileSync(refPath)).input_shape;
  if (a.batch > 0) shape = [a.batch, ...shape.slice(1)];
  const n = shape.reduce((x, y) => x * y, 1);

  if (a.check) {
    const ref = JSON.parse(fs.readFileSync(refPath));
    const buf = fs.readFileSync(a.model + ".input.bin");
    const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    const out = await session.run({ [inName]: new ort.Tensor("float32", Float32Array.from(x), ref.input_shape) });
    const y = out[session.outputNames[0]].data;
    const ybuf = fs.readFileSync(a.model + ".output.bin");
    const yr = new Float32Array(ybuf.buffer, ybuf.byteOffset, ybuf.byteLength / 4);
    let maxdiff = 0;
    for (let i = 0; i < yr.length; ++i) maxdiff = Math.max(maxdiff, Math.abs(y[i] - yr[i]));
    console.error(`ort_bench: --check max |ORT - PyTorch| = ${maxdiff.toExponential(3)}`);
    if (!(maxdiff <= 1e-3) || y.length !== yr.length) process.exit(1);
  }

  const data = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; ++i) {
    // Box-Muller on a small LCG: N(0,1) inputs, like ctk bench.
    s = (s * 1103515245 + 12345) >>> 0;
    const u1 = (s + 1) / 4294967297;
    s = (s * 1103515245 + 12345) >>> 0;
    const u2 = s / 4294967296;
    data[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  const feeds = { [inName]: new ort.Tensor("float32", data, shape) };
  for (let i = 0; i < a.warmup; ++i) await session.run(feeds);
  const times = [];
  const t0 = process.hrtime.bigint();
  for (;;) {
    const b = process.hrtime.bigint();
    await session.run(feeds);
    const e = process.hrtime.bigint();
    times.push(Number(e - b) / 1e6);
    const elapsed = Number(e - t0) / 1e9;
    if ((times.length >= a.minRuns && elapsed >= a.minTime) || times.length >= a.maxRuns) break;
  }
  const sorted = [...times].sort((x, y) => x - y);
  const mean = times.reduce((x, y) => x + y, 0) / times.length;
  console.log(JSON.stringify({
    runtime: "onnxruntime-node " + (ort.env?.versions?.common ?? ""),
    model: a.model, batch: shape[0], threads: a.threads, spinning: a.spin, runs: times.length,
    p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), min: sorted[0], mean,
  }));
}

main().catch((e) => {
  console.error(`ort_bench: ${e.stack || e}`);
  process.exit(1);
});
