// Splits a graph between a backend and the reference kernels, and runs the
// pieces as one plan: how any backend runs a graph with ops it lacks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/runtime/backend.h"
#include "compress/support/status.h"

namespace compress::runtime {

// Note [Partitions]
// A partition is a run of consecutive nodes (in the graph's topological
// order) with one placement: on the backend, or on the reference kernels
// where the backend's supports() says no (its reason becomes a PlanFallback,
// what --explain prints). Values that cross a boundary are the partitions'
// inputs and outputs: a device backend copies exactly those. A backend with
// a cheaper way to hand single nodes to the reference inside its own plan
// (onednn runs them on its plan buffers) still takes its placement decision
// and its fallback list from partition_graph; backends without one compile
// through compile_partitioned.

struct Partition {
  bool on_backend = false;
  std::vector<const ir::Node*> nodes;     // in graph order
  std::vector<const ir::Value*> inputs;   // non-constant values it reads that it does not produce
  std::vector<const ir::Value*> outputs;  // values it produces that later partitions or the graph read
};

struct PartitionResult {
  std::vector<Partition> partitions;
  std::vector<PlanFallback> fallbacks;  // the reference's nodes, each with the backend's reason
};

// Places every node; an error names the first node neither `backend` nor the
// reference kernels can run.
Expected<PartitionResult> partition_graph(const ir::Graph& graph, const Backend& backend);

// The partition as a graph of its own: its inputs as graph inputs (same
// names and types), the constants it reads (storage shared), its nodes, its
// outputs as graph outputs.
Expected<ir::Graph> extract_partition(const ir::Graph& graph, const Partition& partition);

// One plan for the whole graph: the backend's partitions compiled by
// `backend`, the others by the reference backend, run in order with the
// boundary tensors passed between them. A graph the backend runs entirely is
// simply backend.compile(graph). The report lists every piece's steps, the
// partitions and the fallbacks.
Expected<std::unique_ptr<ExecutionPlan>> compile_partitioned(const ir::Graph& graph, Backend& backend);

}  // namespace compress::runtime
