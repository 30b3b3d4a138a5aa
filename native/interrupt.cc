// The interrupt flag: whether SIGINT or SIGTERM arrived while JavaScript was busy (inside one attack on one batch,
// say), readable with a cheap synchronous call. Node runs JS signal handlers only when the event loop gets a
// turn; this flag is set as the signal arrives.
//
// A watcher thread runs a libuv loop of its own with uv_signal_t handles for SIGINT and SIGTERM. libuv's signal
// handler writes to every loop that watches a signal, so Node's own handlers still run (at the next turn of the
// main loop); the watcher only records the first signal's number in an atomic. A watched signal no longer kills
// the process by default, so the watcher is armed only while JS has installed handlers of its own
// (src/train/signals.ts): interruptArm(true) when they are installed, interruptArm(false) when they go.
//
//   interruptArm(on)     arms (clearing the flag) or disarms the watcher; returns once the watcher has done so
//   interruptPending()   the number of the first signal since arming, or 0 (always 0 while disarmed)
//
// The uv handles belong to the watcher's loop and are started and stopped on its thread only (libuv is not
// thread-safe): interruptArm asks through a uv_async_t and waits for the answer.

#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <pthread.h>

#include "common.h"

namespace freeadv {
namespace {

std::atomic<int> pending{0};

struct Watcher {
  uv_loop_t loop;
  uv_async_t wake;
  uv_signal_t signals[2];
  uv_thread_t thread;
  std::mutex m;
  std::condition_variable cv;
  bool want = false;   // the state JS asked for
  bool armed = false;  // the state the watcher's thread has applied
  int error = 0;       // a libuv error of the last change, for interruptArm to throw
};

Watcher* watcher = nullptr;  // started on the first interruptArm(true); lives as long as the process

constexpr int kSignals[2] = {SIGINT, SIGTERM};

void onSignal(uv_signal_t*, int signum) {
  int none = 0;
  pending.compare_exchange_strong(none, signum);
}

void onWake(uv_async_t* h) {
  auto* w = static_cast<Watcher*>(h->data);
  std::lock_guard<std::mutex> lock(w->m);
  if (w->want != w->armed) {
    pending.store(0);
    w->error = 0;
    for (int i = 0; i < 2; i++) {
      int r = w->want ? uv_signal_start(&w->signals[i], onSignal, kSignals[i]) : uv_signal_stop(&w->signals[i]);
      if (r != 0 && w->error == 0) w->error = r;
    }
    if (!w->want) pending.store(0);
    w->armed = w->want;
  }
  w->cv.notify_all();
}

void run(void* arg) {
  // no signal is delivered to this thread: libuv's handler (on whichever thread the kernel picks) reaches this
  // loop through its signal pipe
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  uv_run(&static_cast<Watcher*>(arg)->loop, UV_RUN_DEFAULT);  // runs as long as the process (wake keeps it alive)
}

Watcher* start(Napi::Env env) {
  auto* w = new Watcher();
  int r = uv_loop_init(&w->loop);
  if (r == 0) r = uv_async_init(&w->loop, &w->wake, onWake);
  for (auto& s : w->signals)
    if (r == 0) r = uv_signal_init(&w->loop, &s);
  w->wake.data = w;
  if (r == 0) r = uv_thread_create(&w->thread, run, w);
  if (r != 0) throw torchError(env, std::string("interruptArm: cannot start the signal watcher: ") + uv_strerror(r));
  return w;
}

EXPORT(interruptArm) {
  Napi::Env env = info.Env();
  if (!info[0].IsBoolean()) typeError(env, "interruptArm: on must be a boolean");
  bool on = info[0].As<Napi::Boolean>().Value();
  if (!watcher) {
    if (!on) return env.Undefined();
    watcher = start(env);
  }
  std::unique_lock<std::mutex> lock(watcher->m);
  watcher->want = on;
  uv_async_send(&watcher->wake);
  if (!watcher->cv.wait_for(lock, std::chrono::seconds(10), [] { return watcher->armed == watcher->want; }))
    throw torchError(env, "interruptArm: the signal watcher did not answer");
  if (watcher->error != 0) throw torchError(env, std::string("interruptArm: cannot watch SIGINT/SIGTERM: ") + uv_strerror(watcher->error));
  return env.Undefined();
}

EXPORT(interruptPending) { return Napi::Number::New(info.Env(), pending.load(std::memory_order_relaxed)); }

}  // namespace

void registerInterrupt(Napi::Env env, Napi::Object exports) {
  REG(interruptArm); REG(interruptPending);
}

}  // namespace freeadv
