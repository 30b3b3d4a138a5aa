// Caching CPU allocator: libtorch's CPU allocator while the addon is loaded, and its statistics for JS.
//
// glibc keeps freed large blocks in its heap, so a training loop that frees and re-allocates the same activation
// sizes every step grows RSS without bound (measured: 268 -> 4,020 MB over 200 steps). Training allocates the
// same sizes step after step, so a size-keyed free list serves nearly every request from the cache and never
// returns memory to malloc while it is in use. Blocks below kSmall go straight to malloc (glibc's bins handle
// those well). The cache is capped; past the cap, freed blocks go back to the system.
//
// FREEADV_CACHING_ALLOCATOR=0 leaves libtorch's own allocator in place (the statistics then count nothing).

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "compat.h"
#include "common.h"

namespace freeadv {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kSmall = 16 * 1024;
// Every block carries a kAlign-byte header in front of the data holding its rounded size, so that the raw
// deleter (which oneDNN uses: it frees by data pointer alone) can find the free list the block belongs to.
constexpr size_t kHeader = kAlign;

// libtorch >= 2.3 (the pip wheels, CUDA builds included) made allocate() non-const and copy_data() pure virtual.
#if FREEADV_TORCH_2_3
#define FREEADV_ALLOCATE_CONST
#else
#define FREEADV_ALLOCATE_CONST const
#endif

class CachingCPUAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) FREEADV_ALLOCATE_CONST override {
    void* p = const_cast<CachingCPUAllocator*>(this)->alloc(n);
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if FREEADV_TORCH_2_3
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif

  void* alloc(size_t n) {
    size_t size = round(n);
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = size < kSmall ? free_.end() : free_.find(size);
      if (size < kSmall) {
        // small blocks go straight to malloc (not counted as hits or misses)
      } else if (it != free_.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        hits_++;
      } else {
        misses_++;
      }
      allocated_ += size;
      if (allocated_ > peak_) peak_ = allocated_;
    }
    if (!base) {
      if (posix_memalign(&base, kAlign, size + kHeader) != 0 || !base) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          allocated_ -= size;
        }
        TORCH_CHECK(false, "freeadv allocator: out of memory allocating ", n, " bytes");
      }
      *static_cast<size_t*>(base) = size;
    }
    return static_cast<char*>(base) + kHeader;
  }

  static void release(void* data);

  void give(void* data) {
    if (!data) return;
    void* base = static_cast<char*>(data) - kHeader;
    size_t size = *static_cast<size_t*>(base);
    bool drop = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      allocated_ -= size;
      if (size < kSmall || cached_ + size > cap_) {
        drop = true;
      } else {
        free_[size].push_back(base);
        cached_ += size;
      }
    }
    if (drop) std::free(base);
  }

  void emptyCache() {
    std::vector<void*> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& kv : free_)
        for (auto* b : kv.second) all.push_back(b);
      free_.clear();
      cached_ = 0;
    }
    for (auto* b : all) std::free(b);
  }

  void setCap(size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cap_ = cap;
    }
    if (cached() > cap) emptyCache();
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

  void stats(size_t* allocated, size_t* cached, size_t* peak, size_t* hits, size_t* misses, size_t* cap) {
    std::lock_guard<std::mutex> lock(mu_);
    *allocated = allocated_;
    *cached = cached_;
    *peak = peak_;
    *hits = hits_;
    *misses = misses_;
    *cap = cap_;
  }

  void resetPeak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = allocated_;
  }

 private:
  static size_t round(size_t n) {
    if (n < kSmall) return std::max<size_t>(kAlign, (n + kAlign - 1) & ~(kAlign - 1));
    // Round large blocks up to 4 KiB pages so that near-identical sizes share a free list.
    return (n + 4095) & ~size_t(4095);
  }
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0, allocated_ = 0, peak_ = 0, hits_ = 0, misses_ = 0;
  size_t cap_ = size_t(2) << 30;
};

CachingCPUAllocator* g_alloc = nullptr;

void CachingCPUAllocator::release(void* data) { g_alloc->give(data); }

EXPORT(memoryStats) {
  Napi::Env env = info.Env();
  size_t allocated, cached, peak, hits, misses, cap;
  g_alloc->stats(&allocated, &cached, &peak, &hits, &misses, &cap);
  auto o = Napi::Object::New(env);
  o.Set("allocated", Napi::Number::New(env, static_cast<double>(allocated)));
  o.Set("cached", Napi::Number::New(env, static_cast<double>(cached)));
  o.Set("peak", Napi::Number::New(env, static_cast<double>(peak)));
  o.Set("hits", Napi::Number::New(env, static_cast<double>(hits)));
  o.Set("misses", Napi::Number::New(env, static_cast<double>(misses)));
  o.Set("cap", Napi::Number::New(env, static_cast<double>(cap)));
  return o;
}
EXPORT(emptyCache) {
  g_alloc->emptyCache();
  return info.Env().Undefined();
}
EXPORT(setCacheLimit) {
  g_alloc->setCap(static_cast<size_t>(toInt(info.Env(), info[0], "bytes")));
  return info.Env().Undefined();
}
EXPORT(resetPeakMemory) {
  g_alloc->resetPeak();
  return info.Env().Undefined();
}

}  // namespace

void installAllocator() {
  // once per process, whichever thread loads the module first (loader worker threads load it too)
  static std::once_flag once;
  std::call_once(once, [] {
    g_alloc = new CachingCPUAllocator();  // never freed: tensors may outlive the module
    const char* off = std::getenv("FREEADV_CACHING_ALLOCATOR");
    if (!(off && std::string(off) == "0")) c10::SetCPUAllocator(g_alloc, /*priority=*/100);
  });
}

void registerAllocator(Napi::Env env, Napi::Object exports) {
  REG(memoryStats); REG(emptyCache); REG(setCacheLimit); REG(resetPeakMemory);
}

}  // namespace freeadv
