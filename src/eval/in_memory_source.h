// A DataSource over samples held in one f32 tensor (IDX, NPY and user data).
#pragma once

#include "compress/eval/dataset.h"

namespace compress::eval {

class InMemorySource final : public DataSource {
 public:
  InMemorySource(ir::Tensor samples, std::vector<int64_t> labels, std::string description);

  int64_t size() const override { return samples_.shape()[0]; }
  const ir::Shape& sample_shape() const override { return sample_shape_; }
  bool has_labels() const override { return !labels_.empty(); }
  Expected<Batch> batch(int64_t start, int64_t count) const override;
  std::string describe() const override { return description_; }

 private:
  ir::Tensor samples_;
  std::vector<int64_t> labels_;
  ir::Shape sample_shape_;
  std::string description_;
};

}  // namespace compress::eval
