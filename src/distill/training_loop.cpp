// parse_training_loop: the training options shared by distill.finetune and quant.qat.
#include "compress/distill/training_loop.h"

namespace compress::distill {

Expected<TrainingLoop> parse_training_loop(const pass::PassOptions& options, TrainingLoop o, int64_t min_epochs) {
  COMPRESS_ASSIGN_OR_RETURN(o.epochs, options.integer("epochs", o.epochs, min_epochs, 1 << 20));
  COMPRESS_ASSIGN_OR_RETURN(o.steps, options.integer("steps", o.steps, 1, int64_t{1} << 40));
  if (options.has("epochs") && options.has("steps")) {
    return invalid_argument("{}: give either 'epochs' or 'steps', not both", options.where("steps"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.samples, options.integer("samples", o.samples, 1, int64_t{1} << 40));
  COMPRESS_ASSIGN_OR_RETURN(o.batch, options.integer("batch", o.batch, 1, 1 << 16));
  COMPRESS_ASSIGN_OR_RETURN(o.shuffle, options.boolean("shuffle", o.shuffle));
  COMPRESS_ASSIGN_OR_RETURN(o.optimizer, options.string("optimizer", o.optimizer, {"adam", "sgd"}));
  COMPRESS_ASSIGN_OR_RETURN(o.lr, options.number("lr", o.lr, pass::Range::positive()));
  COMPRESS_ASSIGN_OR_RETURN(o.lr_schedule, options.string("lr_schedule", o.lr_schedule, {"constant", "cosine"}));
  COMPRESS_ASSIGN_OR_RETURN(o.momentum, options.number("momentum", o.momentum, pass::Range::half_open(0, 1)));
  if (options.has("momentum") && o.optimizer != "sgd") {
    return invalid_argument("{}: momentum applies to optimizer 'sgd' only", options.where("momentum"));
  }
  COMPRESS_ASSIGN_OR_RETURN(o.weight_decay, options.number("weight_decay", o.weight_decay, pass::Range::at_least(0)));
  return o;
}

}  // namespace compress::distill
