// The aten op -> IR import handlers that the lowering table's rows name (aten_ops.cpp).
#pragma once

#include "import_context.h"

namespace compress::torch::aten_import {

using Handler = Status(ImportContext&, const ::torch::jit::Node*);

Handler convolution;  // aten::_convolution (the traced form)
Handler conv2d;       // aten::conv2d (the scripted form)
Handler batch_norm;
Handler layer_norm;
Handler linear;
Handler matmul;
Handler rsub;
Handler hardtanh;  // relu6 for (0, 6), else clamp
Handler clamp;
Handler gelu;
Handler cat;
Handler chunk;
Handler split;
Handler reshape;
Handler flatten;
Handler unsqueeze;
Handler squeeze;
Handler transpose;
Handler permute;
Handler slice;
Handler max_pool;
Handler avg_pool;
Handler mean;
Handler softmax;
Handler embedding;
Handler attention;

// One IR op with the aten op's tensor inputs as they are.
OpHandler unary(ir::OpKind op);
// add/sub with alpha, mul, div without rounding mode.
OpHandler binary(ir::OpKind op);
OpHandler adaptive_pool(ir::OpKind op);

}  // namespace compress::torch::aten_import
