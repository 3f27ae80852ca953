// Include this instead of catch.hpp in torch tests: LibTorch pulls in glog,
// whose CHECK macro would otherwise replace Catch's CHECK.
#pragma once

#include <torch/torch.h>
#include <torch/script.h>

#undef CHECK
#include <catch2/catch.hpp>
