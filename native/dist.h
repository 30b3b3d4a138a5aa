// Declarations shared by dist.cc (process groups and collectives) and reducer.cc (c10d's gradient Reducer): the
// c10d headers this libtorch has, and the process group of this process. It defines no macros beyond compat.h's,
// so that files include it before their other headers (and common.h last).
#pragma once

#include "compat.h"

#if FREEADV_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <napi.h>

#include <chrono>

namespace freeadv {

#if FREEADV_GLOO
// The process group of this process (dist.cc): made by distInit, left by distDestroy.
struct DistGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{300000};
  c10::intrusive_ptr<c10d::ProcessGroup> wrapped;  // pg as a ProcessGroup, for the Reducer (made on first use)
};

// The group; a TorchError if this process has none.
DistGroup& group(Napi::Env env);
#endif

}  // namespace freeadv
