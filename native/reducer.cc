// Gradient averaging overlapped with the backward pass: c10d's Reducer, the engine under PyTorch's
// DistributedDataParallel. It adds a post-hook to every parameter's gradient accumulator. In a backward pass
// armed by distReducerPrepare, each gradient is copied into its bucket (a flat buffer) as soon as it has been
// accumulated, and a bucket whose gradients are all in is all-reduced asynchronously while backward goes on
// (buckets start in a fixed order, the same on every rank). Once every bucket has started, the Reducer queues
// a final callback with the autograd engine, which waits for the buckets at the end of backward and copies the
// means back into .grad. Hooks that fire in an unarmed backward pass (attack steps) are ignored by the Reducer.
// After the first armed step the Reducer re-forms its buckets in the order the gradients arrived (rank 0's
// order, broadcast), as DDP does.
//
// The all-reduce is a C++ comm hook rather than the Reducer's default one so that it runs with the group's
// timeout, divides by the world size after summing (as distAllReduce's callers do), and leaves a failure
// message that says which collective failed. The hook's continuation runs on a Gloo thread.

#include "dist.h"

// c10d's Reducer takes a c10d::ProcessGroup. In libtorch 1.x ProcessGroupGloo is one; from 2.0 on it (and
// ProcessGroupNCCL) is a c10d::Backend, wrapped here in a ProcessGroup (the 2.3+ API, tested with 2.13 and,
// compiled, 2.14 with NCCL). The Reducer's constructor
// changed across 2.x, so makeReducer picks the signature this libtorch has; where none is known (2.0-2.2, or a
// future change) the overlapped averaging is left out and the JS layer averages after backward.
#if FREEADV_GLOO && (TORCH_VERSION_MAJOR < 2 || FREEADV_TORCH_2_3)
#define FREEADV_REDUCER 1
#include <torch/csrc/distributed/c10d/reducer.hpp>
#else
#define FREEADV_REDUCER 0
#endif

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common.h"

namespace freeadv {

#if FREEADV_REDUCER
namespace {

struct ReducerState {
  std::mutex mu;
  std::string failure;  // the first failed bucket all-reduce since the last prepare
  bool lastStarted = false;
  std::chrono::steady_clock::time_point lastStart;
};

class AverageHook final : public c10d::CommHookInterface {
 public:
  AverageHook(c10::intrusive_ptr<CollectiveBackend> pg, std::chrono::milliseconds timeout,
              std::shared_ptr<ReducerState> st)
      : pg_(std::move(pg)), timeout_(timeout), st_(std::move(st)) {}

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    if (bucket.isLast()) {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->lastStarted = true;
      st_->lastStart = std::chrono::steady_clock::now();
    }
    at::Tensor buf = bucket.getBufferRef();
    std::vector<at::Tensor> one{buf};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = timeout_;
    auto fut = pg_->allreduce(one, o)->getFuture();
    const int n = pg_->getSize();
    auto st = st_;
    return fut->then(
        [buf, n, st](c10::ivalue::Future& f) -> c10::IValue {
          if (f.hasError()) {
            std::string why = f.tryRetrieveErrorMessage();
            auto pos = why.find("\nException raised from");
            if (pos != std::string::npos) why = why.substr(0, pos);
            std::string msg = "allReduce of a gradient bucket failed (a peer process died, hung or was unreachable): " + why;
            {
              std::lock_guard<std::mutex> lock(st->mu);
              if (st->failure.empty()) st->failure = msg;
            }
            throw std::runtime_error(msg);
          }
          buf.div_(n);
          return buf;
        },
        c10::TensorType::get());
  }

  // (Not c10d::CppCommHookInterface: its version of this calls a function libtorch does not export.)
  at::Tensor parseHookResult(const c10::IValue& result) override { return result.toTensor(); }

 private:
  c10::intrusive_ptr<CollectiveBackend> pg_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<ReducerState> st_;
};

// The Reducer's bookkeeping is protected; this subclass only reads it.
class GradReducer final : public c10d::Reducer {
 public:
  using c10d::Reducer::Reducer;
  // True from prepare until the end-of-backward callback has started: false after a reduced backward pass.
  bool armed() {
    std::lock_guard<std::mutex> lock(mutex_);
    return expect_autograd_hooks_;
  }
  std::vector<std::vector<size_t>> bucketIndices() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::vector<size_t>> out;
    for (const auto& b : buckets_) out.push_back(b.variable_indices);
    return out;
  }
};

// The group as the c10d::ProcessGroup the Reducer takes (null where this libtorch offers no known way).
c10::intrusive_ptr<c10d::ProcessGroup> asProcessGroup(DistGroup& g) {
#if TORCH_VERSION_MAJOR < 2
  return g.pg;
#else
  if (!g.wrapped) {
    if constexpr (std::is_constructible_v<c10d::ProcessGroup, c10::intrusive_ptr<c10d::Store>, int, int>) {
      auto pg = c10::make_intrusive<c10d::ProcessGroup>(g.store, g.rank, g.size);
      // NCCL serves CUDA tensors, Gloo CPU ones (as torch.distributed's "cuda:nccl,cpu:gloo")
      auto type = g.nccl ? c10d::ProcessGroup::BackendType::NCCL : c10d::ProcessGroup::BackendType::GLOO;
      pg->setDefaultBackend(type);
      pg->setBackend(g.nccl ? c10::DeviceType::CUDA : c10::DeviceType::CPU, type, g.pg);
      g.wrapped = pg;
    }
  }
  return g.wrapped;
#endif
}

// The Reducer's constructor by libtorch version: the 1.13 form (per-bucket limits, then the group; also taken
// where later parameters have defaults) and the 2.13 form (no per-bucket limits; skip-unused and python-reducer
// flags and a cap list).
// Unused parameters are all-reduced like the rest (skip = false), as in 1.x.
using RParams = std::vector<at::Tensor>;
using RBuckets = std::vector<std::vector<size_t>>;
using RLimits = std::vector<size_t>;
using RGroup = c10::intrusive_ptr<c10d::ProcessGroup>;
using RSparse = std::vector<bool>;
using RNames = std::unordered_map<size_t, std::string>;
constexpr bool kReducer113 =
    std::is_constructible_v<GradReducer, RParams, RBuckets, RLimits, RGroup, RSparse, int64_t, bool, bool, RNames, int64_t>;
constexpr bool kReducer213 = std::is_constructible_v<GradReducer, RParams, RBuckets, RGroup, RSparse, int64_t, bool, bool,
                                                     RNames, int64_t, bool, bool, std::vector<int64_t>>;
constexpr bool kReducerKnown = kReducer113 || kReducer213;

std::unique_ptr<GradReducer> makeReducer(RParams params, RBuckets buckets, RLimits limits, RGroup pg, int64_t cap,
                                         bool findUnused, int64_t first) {
  const size_t n = params.size();
  if constexpr (kReducer113) {
    return std::make_unique<GradReducer>(std::move(params), std::move(buckets), std::move(limits), std::move(pg),
                                         RSparse(n, false), cap, findUnused, /*gradient_as_bucket_view=*/false,
                                         RNames(), first);
  } else if constexpr (kReducer213) {
    return std::make_unique<GradReducer>(std::move(params), std::move(buckets), std::move(pg), RSparse(n, false), cap,
                                         findUnused, /*gradient_as_bucket_view=*/false, RNames(), first,
                                         /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
                                         std::vector<int64_t>());
  } else {
    return nullptr;
  }
}

struct ReducerHolder {
  std::unique_ptr<GradReducer> reducer;
  std::shared_ptr<ReducerState> state;
};
const napi_type_tag kReducerTag = {0x6672656561647621ULL, 0x72656475636572bbULL};

void dropReducer(ReducerHolder* h) {
  try {
    h->reducer.reset();  // removes its hooks from the gradient accumulators
  } catch (...) {
  }
}

ReducerHolder& reducerOf(const Napi::Value& v) {
  Napi::Env env = v.Env();
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kReducerTag, &ok);
  if (!ok) typeError(env, "expected a reducer handle");
  auto* h = v.As<Napi::External<ReducerHolder>>().Data();
  if (!h->reducer) throw Napi::Error::New(env, "the gradient reducer was disposed");
  return *h;
}

// distReducerNew(params[], bucketBytes, firstBucketBytes, findUnused) -> handle. Initial buckets: parameters in
// reverse order (their gradients come first in backward), each bucket at most bucketBytes.
EXPORT(distReducerNew) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto params = tensorVec(info[0]);
  int64_t cap = toInt(env, info[1], "bucketBytes");
  int64_t first = toInt(env, info[2], "firstBucketBytes");
  bool findUnused = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (params.empty()) throw torchError(env, "gradient reducer: no parameters");
  if (cap < 1 || first < 1) throw torchError(env, "gradient reducer: bucket sizes must be positive");
  for (size_t i = 0; i < params.size(); i++) {
    const auto& p = params[i];
    if (!p.defined()) typeError(env, "gradient reducer: expected tensors");
    if (!p.requires_grad() || !p.is_leaf())
      throw torchError(env, "gradient reducer: parameter " + std::to_string(i) + " is not a leaf that requires grad");
    for (size_t j = 0; j < i; j++)
      if (params[j].unsafeGetTensorImpl() == p.unsafeGetTensorImpl())
        throw torchError(env, "gradient reducer: parameter " + std::to_string(i) + " is listed twice");
  }
  std::vector<std::vector<size_t>> buckets;
  std::vector<size_t> limits;
  std::tie(buckets, limits) = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(cap)});
  std::reverse(buckets.begin(), buckets.end());
  std::reverse(limits.begin(), limits.end());
  auto st = std::make_shared<ReducerState>();
  auto wrapped = asProcessGroup(g);
  if (!wrapped) throw torchError(env, "gradient reducer: this libtorch cannot wrap the Gloo group for c10d's Reducer");
  auto r = makeReducer(std::move(params), std::move(buckets), std::move(limits), wrapped, cap, findUnused, first);
  if (!r) throw torchError(env, "gradient reducer: this libtorch's c10d::Reducer has an unknown constructor");
  r->register_comm_hook(std::make_unique<AverageHook>(g.pg, g.timeout, st));
  auto* h = new ReducerHolder{std::move(r), std::move(st)};
  auto ext = Napi::External<ReducerHolder>::New(env, h, [](Napi::Env, ReducerHolder* h) {
    dropReducer(h);
    delete h;
  });
  napi_type_tag_object(env, ext, &kReducerTag);
  return ext;
}

// distReducerPrepare(handle, outputs[]): arms the reducer for the next backward pass (call on every rank, once
// per step, before backward). From the second step on, first re-forms the buckets once (a broadcast).
EXPORT(distReducerPrepare) {
  ReducerHolder& h = reducerOf(info[0]);
  auto outputs = tensorVec(info[1]);
  {
    std::lock_guard<std::mutex> lock(h.state->mu);
    h.state->failure.clear();
    h.state->lastStarted = false;
  }
  h.reducer->prepare_for_forward();
  h.reducer->rebuild_buckets();
  h.reducer->prepare_for_backward(outputs);
  return info.Env().Undefined();
}

// distReducerStatus(handle) -> { armed, failure, tailMs }: after backward. armed: the pass did not finish its
// reduction (some parameter got no gradient); failure: a bucket's all-reduce failed; tailMs: milliseconds from
// the start of the last bucket's all-reduce to now (communication not hidden behind backward), or -1.
EXPORT(distReducerStatus) {
  Napi::Env env = info.Env();
  ReducerHolder& h = reducerOf(info[0]);
  auto o = Napi::Object::New(env);
  o.Set("armed", Napi::Boolean::New(env, h.reducer->armed()));
  std::lock_guard<std::mutex> lock(h.state->mu);
  o.Set("failure", h.state->failure.empty() ? env.Null() : Napi::String::New(env, h.state->failure));
  double ms = -1;
  if (h.state->lastStarted)
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - h.state->lastStart).count();
  o.Set("tailMs", Napi::Number::New(env, ms));
  return o;
}

// distReducerBuckets(handle) -> parameter indices of each bucket, in the order they are all-reduced.
EXPORT(distReducerBuckets) {
  Napi::Env env = info.Env();
  auto b = reducerOf(info[0]).reducer->bucketIndices();
  auto arr = Napi::Array::New(env, b.size());
  for (size_t i = 0; i < b.size(); i++) {
    auto a = Napi::Array::New(env, b[i].size());
    for (size_t j = 0; j < b[i].size(); j++) a.Set(j, Napi::Number::New(env, static_cast<double>(b[i][j])));
    arr.Set(i, a);
  }
  return arr;
}

// distReducerFree(handle): removes the hooks now (the finalizer is a backstop).
EXPORT(distReducerFree) {
  Napi::Env env = info.Env();
  bool ok = false;
  if (info[0].IsExternal()) napi_check_object_type_tag(env, info[0], &kReducerTag, &ok);
  if (!ok) typeError(env, "expected a reducer handle");
  dropReducer(info[0].As<Napi::External<ReducerHolder>>().Data());
  return env.Undefined();
}

}  // namespace
#endif  // FREEADV_REDUCER

void registerReducer(Napi::Env env, Napi::Object exports) {
#if FREEADV_REDUCER
  if (kReducerKnown) {
    REG(distReducerNew); REG(distReducerPrepare); REG(distReducerStatus); REG(distReducerBuckets); REG(distReducerFree);
  }
#endif
}

}  // namespace freeadv
