// Adapts a HandlerFunc (std::function) to the Handler interface.
#pragma once

#include <utility>

#include "spool/worker.h"

namespace spool::internal {

class FunctionHandler : public Handler {
 public:
  explicit FunctionHandler(HandlerFunc f) : f_(std::move(f)) {}
  Outcome Handle(const Job& job) override { return f_(job); }

 private:
  HandlerFunc f_;
};

}  // namespace spool::internal
