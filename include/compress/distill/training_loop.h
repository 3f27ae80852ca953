// The training-loop options every training pass takes (epochs, steps, batch, optimizer, lr, ...), parsed once.
#pragma once

#include <cstdint>
#include <string>

#include "compress/pass/options.h"

namespace compress::distill {

// What a training pass hands to torch::Trainer (trainer_options(),
// training_data.h). No LibTorch here, so pass headers can hold it.
struct TrainingLoop {
  int64_t epochs = 1;
  int64_t steps = 0;     // > 0: exactly this many optimizer steps instead of `epochs`
  int64_t samples = -1;  // use only the first `samples` training samples (-1: all)
  int64_t batch = 32;
  bool shuffle = true;  // false: data order every epoch (to compare with another tool step for step)
  std::string optimizer = "adam";      // adam | sgd
  double lr = 1e-3;
  std::string lr_schedule = "cosine";  // constant | cosine (decays to 0 over the run)
  double momentum = 0.9;               // sgd only
  double weight_decay = 0.0;
};

// Reads epochs (>= min_epochs), steps, samples, batch, shuffle, optimizer, lr,
// lr_schedule, momentum (sgd only), weight_decay; absent keys keep `defaults`.
// Errors name the key (and say so when both epochs and steps are given).
Expected<TrainingLoop> parse_training_loop(const pass::PassOptions& options, TrainingLoop defaults,
                                           int64_t min_epochs = 1);

}  // namespace compress::distill
