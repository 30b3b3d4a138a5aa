// Process groups (c10d): a TCP rendezvous (store.cc) or a FileStore, and ProcessGroupGloo (or ProcessGroupNCCL for CUDA tensors, in
// builds against a CUDA libtorch with NCCL), one group per process. Collectives are
// issued asynchronously (one c10d work per tensor, so several buckets are in flight at once) and then waited
// for with the group's timeout; a dead or hung peer surfaces as a TorchError, never a hang or a crash.
// Built only when gloo's headers are present (Debian: libgloo-dev); distAvailable says whether they were.

#include "dist.h"

#include <ATen/ops/empty_like.h>
#if FREEADV_NCCL
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace freeadv {

#if FREEADV_GLOO
namespace {

// Deliberately leaked at exit: destroying a group whose peer died can block in gloo's threads.
DistGroup* g_dist = nullptr;

}  // namespace

DistGroup& group(Napi::Env env) {
  if (!g_dist) throw torchError(env, "no process group: call distInit first");
  return *g_dist;
}

namespace {

void waitAll(DistGroup& g, std::vector<c10::intrusive_ptr<c10d::Work>>& works, const char* what) {
  for (auto& w : works) {
    bool ok = false;
    try {
      ok = w->wait(g.timeout);
    } catch (const c10::Error& e) {
      throw std::runtime_error(std::string(what) + " failed (a peer process died, hung or was unreachable): " +
                               e.what_without_backtrace());
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(what) + " failed (a peer process died, hung or was unreachable): " +
                               e.what());
    }
    if (!ok)
      throw std::runtime_error(std::string(what) + " timed out after " + std::to_string(g.timeout.count()) + " ms");
  }
}

std::vector<at::Tensor> denseList(Napi::Env env, const Napi::Value& v, const char* what) {
  auto ts = tensorVec(v);
  for (auto& t : ts) {
    if (!t.defined()) typeError(env, std::string(what) + ": expected tensors");
    if (!t.is_contiguous()) throw torchError(env, std::string(what) + ": tensors must be contiguous");
  }
  return ts;
}

// distInit(host, port, rank, worldSize, timeoutMs, ifname, storeFile, cudaDevice, token) -- blocks until all ranks
// joined or timeout. With storeFile (one machine) the rendezvous is a c10d::FileStore in that file and Gloo binds to
// loopback: nothing listens on the network. Otherwise rank 0 serves freeadv's rendezvous store (store.cc) at
// host:port, on that address only, for the whole job; ranks join it with the job's token. cudaDevice >= 0 (builds
// with NCCL): the group is a ProcessGroupNCCL on that GPU, else Gloo.
EXPORT(distInit) {
  Napi::Env env = info.Env();
  if (g_dist) throw torchError(env, "distInit: this process already belongs to a process group");
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int64_t port = toInt(env, info[1], "port");
  int64_t rank = toInt(env, info[2], "rank");
  int64_t size = toInt(env, info[3], "worldSize");
  int64_t ms = toInt(env, info[4], "timeoutMs");
  std::string ifname = info.Length() > 5 && info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "";
  std::string storeFile = info.Length() > 6 && info[6].IsString() ? info[6].As<Napi::String>().Utf8Value() : "";
  int64_t cudaDevice = info.Length() > 7 && info[7].IsNumber() ? toInt(env, info[7], "cudaDevice") : -1;
  std::string token = info.Length() > 8 && info[8].IsString() ? info[8].As<Napi::String>().Utf8Value() : "";
#if !FREEADV_NCCL
  if (cudaDevice >= 0) throw torchError(env, "distInit: this build of the native addon has no NCCL (it needs a CUDA libtorch with c10d's ProcessGroupNCCL)");
#endif
  if (port < 1 || port > 65535) throw torchError(env, "distInit: port must be in [1, 65535], got " + std::to_string(port));
  if (size < 1 || rank < 0 || rank >= size)
    throw torchError(env, "distInit: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(size) + ")");
  if (ms < 1) throw torchError(env, "distInit: timeout must be positive");
  auto timeout = std::chrono::milliseconds(ms);
  c10::intrusive_ptr<c10d::Store> base;
  if (!storeFile.empty()) {
    base = c10::make_intrusive<c10d::FileStore>(storeFile, static_cast<int>(size));
    base->setTimeout(timeout);
  } else {
    base = tcpRendezvous(host, static_cast<int>(port), token, static_cast<int>(rank), static_cast<int>(size), timeout);
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>("freeadv/default_pg", base);
#if FREEADV_NCCL
  if (cudaDevice >= 0) {
    // one GPU per process, as DDP: the communicator is made on it at the first collective
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(cudaDevice));
    auto nopts = c10d::ProcessGroupNCCL::Options::create();
    nopts->timeout = timeout;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank), static_cast<int>(size), nopts);
    g_dist = new DistGroup{base, pg, static_cast<int>(rank), static_cast<int>(size), timeout, /*wrapped=*/{}, /*nccl=*/true};
    return env.Undefined();
  }
#endif
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (!storeFile.empty() || host == "127.0.0.1" || host == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(size), opts);
  g_dist = new DistGroup{base, pg, static_cast<int>(rank), static_cast<int>(size), timeout, /*wrapped=*/{}};
  return env.Undefined();
}

EXPORT(distInfo) {
  Napi::Env env = info.Env();
  if (!g_dist) return env.Undefined();
  auto o = Napi::Object::New(env);
  o.Set("rank", Napi::Number::New(env, g_dist->rank));
  o.Set("worldSize", Napi::Number::New(env, g_dist->size));
  o.Set("backend", Napi::String::New(env, g_dist->pg->getBackendName()));
  o.Set("timeoutMs", Napi::Number::New(env, static_cast<double>(g_dist->timeout.count())));
  return o;
}

// Starts one c10d work per tensor (all in flight at once), then waits for them with the group's timeout.
template <typename Start>
void eachInFlight(DistGroup& g, std::vector<at::Tensor>& ts, const char* what, Start start) {
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t};
    works.push_back(start(one));
  }
  waitAll(g, works, what);
}

// distAllReduce(tensors[], op) -- in place; op 0 sum, 1 max, 2 min. One c10d work per tensor, all in flight.
EXPORT(distAllReduce) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseList(env, info[0], "allReduce");
  int64_t op = info.Length() > 1 ? toInt(env, info[1], "op") : 0;
  c10d::AllreduceOptions o;
  o.reduceOp = op == 1 ? c10d::ReduceOp::MAX : op == 2 ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
  o.timeout = g.timeout;
  eachInFlight(g, ts, "allReduce", [&](std::vector<at::Tensor>& one) { return g.pg->allreduce(one, o); });
  return env.Undefined();
}

// distBroadcast(tensors[], root) -- in place.
EXPORT(distBroadcast) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseList(env, info[0], "broadcast");
  int64_t root = toInt(env, info[1], "root");
  if (root < 0 || root >= g.size) throw torchError(env, "broadcast: root " + std::to_string(root) + " is not a rank");
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = g.timeout;
  eachInFlight(g, ts, "broadcast", [&](std::vector<at::Tensor>& one) { return g.pg->broadcast(one, o); });
  return env.Undefined();
}

// distAllGather(tensor) -> tensors[worldSize] (rank order).
EXPORT(distAllGather) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  auto ts = denseList(env, Napi::Value(info[0]).IsArray() ? info[0] : env.Undefined(), "allGather");
  if (ts.size() != 1) typeError(env, "allGather: expected [tensor]");
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < g.size; i++) out[0].push_back(at::empty_like(ts[0]));
  c10d::AllgatherOptions o;
  o.timeout = g.timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.pg->allgather(out, ts, o)};
  waitAll(g, works, "allGather");
  auto arr = Napi::Array::New(env, out[0].size());
  for (size_t i = 0; i < out[0].size(); i++) arr.Set(i, wrap(env, out[0][i]));
  return arr;
}

EXPORT(distBarrier) {
  Napi::Env env = info.Env();
  DistGroup& g = group(env);
  c10d::BarrierOptions o;
  o.timeout = g.timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.pg->barrier(o)};
  waitAll(g, works, "barrier");
  return env.Undefined();
}

// distStore(op, key|keys, ...) -- the group's rendezvous store, for tests and diagnosis: 'set' key value, 'get' key
// -> string, 'add' key n -> number, 'compareSet' key expected desired -> string, 'check' keys -> boolean, 'wait'
// keys timeoutMs, 'deleteKey' key -> boolean, 'numKeys' -> number. Values are strings (UTF-8).
EXPORT(distStore) {
  Napi::Env env = info.Env();
  c10d::Store& st = *group(env).store;
  std::string op = info[0].As<Napi::String>().Utf8Value();
  auto str = [&](size_t i) { return info[i].As<Napi::String>().Utf8Value(); };
  auto bytes = [&](size_t i) { auto s = str(i); return std::vector<uint8_t>(s.begin(), s.end()); };
  auto keys = [&](size_t i) {
    std::vector<std::string> ks;
    auto a = info[i].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) ks.push_back(a.Get(k).As<Napi::String>().Utf8Value());
    return ks;
  };
  auto text = [&](const std::vector<uint8_t>& v) { return Napi::String::New(env, std::string(v.begin(), v.end())); };
  if (op == "set") st.set(str(1), bytes(2));
  else if (op == "get") return text(st.get(str(1)));
  else if (op == "add") return Napi::Number::New(env, static_cast<double>(st.add(str(1), toInt(env, info[2], "n"))));
  else if (op == "compareSet") return text(st.compareSet(str(1), bytes(2), bytes(3)));
  else if (op == "check") return Napi::Boolean::New(env, st.check(keys(1)));
  else if (op == "wait") st.wait(keys(1), std::chrono::milliseconds(toInt(env, info[2], "timeoutMs")));
  else if (op == "deleteKey") return Napi::Boolean::New(env, st.deleteKey(str(1)));
  else if (op == "numKeys") return Napi::Number::New(env, static_cast<double>(st.getNumKeys()));
  else typeError(env, "distStore: unknown op " + op);
  return env.Undefined();
}

// Leaves the group (after a final barrier by the caller). The group object is released only on success paths.
EXPORT(distDestroy) {
  if (g_dist) {
    DistGroup* g = g_dist;
    g_dist = nullptr;
    delete g;
  }
  return info.Env().Undefined();
}

}  // namespace
#endif  // FREEADV_GLOO

namespace {

EXPORT(distAvailable) { return Napi::Boolean::New(info.Env(), FREEADV_GLOO ? true : false); }
EXPORT(ncclAvailable) { return Napi::Boolean::New(info.Env(), FREEADV_GLOO && FREEADV_NCCL ? true : false); }

}  // namespace

void registerDist(Napi::Env env, Napi::Object exports) {
  REG(distAvailable); REG(ncclAvailable);
#if FREEADV_GLOO
  REG(distInit); REG(distInfo); REG(distAllReduce); REG(distBroadcast); REG(distAllGather); REG(distBarrier);
  REG(distDestroy); REG(distStore);
#endif
}

}  // namespace freeadv
