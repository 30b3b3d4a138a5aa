// Stand-in for a header that Debian's libtorch-dev (1.13) leaves out although c10d/reducer.hpp includes it.
//
// reducer.hpp needs only two names from it: DistAutogradContext::GradCallback (for a static_assert) and
// ContextPtr (a std::shared_ptr member of Reducer, whose size does not depend on the pointee). freeadv never
// uses distributed autograd (RPC), so nothing else is declared here. The build adds this directory with
// -idirafter, i.e. after every other include directory: a libtorch that ships the real header uses that one.
#pragma once

#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
