// Declarations shared by dist.cc (process groups and collectives), store.cc (the TCP rendezvous) and reducer.cc
// (c10d's gradient Reducer): the c10d headers this libtorch has, and the process group of this process. It defines no macros beyond compat.h's,
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
#endif

// Set by scripts/libtorch.cjs for a CUDA libtorch whose headers have c10d's ProcessGroupNCCL and nccl.h (the
// CUDA pip wheels and CUDA libtorch downloads of 2.x; never Debian's 1.13): --device cuda with several processes
// then all-reduces over NCCL. The header compiles only with USE_C10D_NCCL.
#ifndef FREEADV_NCCL
#define FREEADV_NCCL 0
#endif
#if FREEADV_GLOO && FREEADV_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <napi.h>

#include <chrono>
#include <string>

namespace freeadv {

#if FREEADV_GLOO
// What a process group's collectives are called on: in libtorch 1.x ProcessGroupGloo is a c10d::ProcessGroup;
// from 2.0 on it and ProcessGroupNCCL are c10d::Backends (with the same collectives).
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// The process group of this process (dist.cc): made by distInit, left by distDestroy.
struct DistGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBackend> pg;  // ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors)
  int rank = 0, size = 1;
  std::chrono::milliseconds timeout{300000};
  c10::intrusive_ptr<c10d::ProcessGroup> wrapped;  // pg as a ProcessGroup, for the Reducer (made on first use)
  bool nccl = false;
};

// The group; a TorchError if this process has none.
DistGroup& group(Napi::Env env);

// store.cc: the rendezvous of a job that meets over TCP. Rank 0 serves it on host:port (that address only) until
// the store is released, and returns once every rank has joined; every rank connects with the job's token.
c10::intrusive_ptr<c10d::Store> tcpRendezvous(const std::string& host, int port, const std::string& token, int rank,
                                              int size, std::chrono::milliseconds timeout);
#endif

}  // namespace freeadv
