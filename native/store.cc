// The rendezvous of jobs that meet over TCP (several machines, or an explicit --master-addr): freeadv's own
// c10d::Store, used with every libtorch in place of c10d's TCPStore, whose server listens on every interface in
// libtorch 1.13 and aborts its process when a flood of connections exhausts the file descriptors.
//
// Rank 0 serves the keys from one background thread, on a socket bound to --master-addr's address only. Every rank,
// rank 0 included, is a client. A connection counts only after its hello: a magic number, the protocol version,
// the job's token (FREEADV_RENDEZVOUS_TOKEN, set by the launcher; empty when none was given), the world size and a
// rank in [0, world size). Until then it may hold HELLO_LIMIT bytes for HELLO_DEADLINE; the connections that have
// not said hello are capped (a newcomer beyond the cap evicts the oldest), and so are those that have, so the
// server's descriptors stay far below the open-file limit whatever connects. A wrong hello is answered with a
// refusal and closed; a malformed request closes its connection only. Nothing that a connection sends stops the
// server or the job.
//
// Protocol (integers little-endian; "bytes" is a u32 length and the bytes):
//   hello    u32 MAGIC, u32 VERSION, u32 rank, u32 world size, bytes token  ->  u8 0 (welcome), or u8 1, bytes why
//   request  u8 op, arguments                                                ->  u8 0, result; or u8 1, bytes why
//            (an error of that request only)
//     SET key value -> ();  GET key -> u8 found, value;  ADD key i64 -> i64;  COMPARE_SET key expected desired
//     -> value;  CHECK u32 n, n keys -> u8;  DELETE key -> u8;  NUM_KEYS -> i64
// wait() polls CHECK (every 1 to 50 ms) until its keys exist or its timeout passes; get() waits for its key first,
// as c10d's stores do.

#include "dist.h"

#if FREEADV_GLOO
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace freeadv {
namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<uint8_t>;

constexpr uint32_t MAGIC = 0x56444146;  // "FADV"
constexpr uint32_t VERSION = 1;
constexpr size_t TOKEN_LIMIT = 256;
constexpr size_t HELLO_LIMIT = 20 + TOKEN_LIMIT;
constexpr auto HELLO_DEADLINE = std::chrono::seconds(5);
constexpr uint32_t FIELD_LIMIT = 64u << 20;  // one key or value of an authenticated rank
enum Op : uint8_t { SET = 1, GET, ADD, COMPARE_SET, CHECK, DELETE, NUM_KEYS };

[[noreturn]] void fail(const std::string& what) { TORCH_CHECK(false, what); }

std::string where(const std::string& host, int port) { return host + ":" + std::to_string(port); }

// Whether a stranger's token is the job's, in a time that does not depend on where they differ.
bool sameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); i++) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// ---- encoding ----
void putU32(std::string& s, uint32_t v) { for (int i = 0; i < 4; i++) s.push_back(static_cast<char>(v >> (8 * i))); }
void putI64(std::string& s, int64_t v) {
  for (int i = 0; i < 8; i++) s.push_back(static_cast<char>(static_cast<uint64_t>(v) >> (8 * i)));
}
void putBytes(std::string& s, const void* p, size_t n) {
  putU32(s, static_cast<uint32_t>(n));
  s.append(static_cast<const char*>(p), n);
}
void putStr(std::string& s, const std::string& v) { putBytes(s, v.data(), v.size()); }
void putVec(std::string& s, const Bytes& v) { putBytes(s, v.data(), v.size()); }

// Reads fields from a buffer that may hold only part of a message: every get returns false until it is complete.
struct Reader {
  const std::string& b;
  size_t pos = 0;
  bool bad = false;  // a length beyond FIELD_LIMIT
  bool u8(uint8_t& v) {
    if (b.size() < pos + 1) return false;
    v = static_cast<uint8_t>(b[pos++]);
    return true;
  }
  bool u32(uint32_t& v) {
    if (b.size() < pos + 4) return false;
    v = 0;
    for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[pos + i])) << (8 * i);
    pos += 4;
    return true;
  }
  bool i64(int64_t& v) {
    if (b.size() < pos + 8) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= static_cast<uint64_t>(static_cast<uint8_t>(b[pos + i])) << (8 * i);
    v = static_cast<int64_t>(u);
    pos += 8;
    return true;
  }
  bool str(std::string& v, uint32_t limit = FIELD_LIMIT) {
    uint32_t n;
    size_t at = pos;
    if (!u32(n)) return false;
    if (n > limit) { bad = true; return false; }
    if (b.size() < pos + n) { pos = at; return false; }
    v.assign(b, pos, n);
    pos += n;
    return true;
  }
};

// host's TCP addresses at port (getaddrinfo's return code; *found to be freed with freeaddrinfo).
int lookup(const std::string& host, int port, addrinfo** found) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  *found = nullptr;
  return getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, found);
}

// A listening socket on host's address only (the interface of --master-addr), not every interface.
int listenOn(const std::string& host, int port) {
  addrinfo* found = nullptr;
  int rc = lookup(host, port, &found);
  if (rc != 0) fail("the master address " + host + " does not resolve: " + gai_strerror(rc));
  int fd = -1;
  std::string why;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) { why = std::strerror(errno); continue; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      why = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) fail("rank 0 cannot listen on " + where(host, port) + " (the master address must be one of this machine's): " + why);
  return fd;
}

// ---- the server (rank 0) ----
class Server {
 public:
  Server(const std::string& host, int port, std::string token, int size)
      : token_(std::move(token)), size_(size), listen_(listenOn(host, port)) {
    if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      close(listen_);
      fail(std::string("rendezvous server: pipe: ") + std::strerror(errno));
    }
    rlimit rl{};
    size_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1 << 20;
    pendingCap_ = std::clamp<size_t>(soft / 8, 8, 128);
    rankCap_ = 4 * static_cast<size_t>(size) + 8;
    thread_ = std::thread([this] { loop(); });
  }
  ~Server() {
    stop_ = true;
    char c = 0;
    (void)!write(wake_[1], &c, 1);
    thread_.join();
    for (auto& c : conns_) close(c.fd);
    close(listen_);
    close(wake_[0]);
    close(wake_[1]);
  }

  // Blocks until every rank has said hello (rank 0 in distInit), or fails naming the missing ones.
  void waitForRanks(std::chrono::milliseconds timeout, const std::string& at) {
    std::unique_lock<std::mutex> lk(m_);
    if (cv_.wait_for(lk, timeout, [&] { return static_cast<int>(joined_.size()) == size_; })) return;
    std::string missing;
    for (int r = 0; r < size_; r++)
      if (!joined_.count(r)) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    fail("rank(s) " + missing + " did not join the rendezvous at " + at + " within " + std::to_string(timeout.count()) + " ms");
  }

 private:
  struct Conn {
    Conn(int f, Clock::time_point t) : fd(f), since(t) {}
    int fd;
    Clock::time_point since;
    bool hello = false;   // said a valid hello
    bool closing = false; // refused: closed once its reply is sent
    std::string in, out;
  };

  void loop() {
    Clock::time_point acceptAgain{};
    while (!stop_) {
      auto now = Clock::now();
      // the connections that have not said hello in time go
      for (auto& c : conns_)
        if (!c.hello && now - c.since > HELLO_DEADLINE) c.closing = true, c.out.clear();
      sweep();
      std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {now >= acceptAgain ? listen_ : -1, POLLIN, 0}};
      for (auto& c : conns_) fds.push_back({c.fd, static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)), 0});
      if (poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) break;
      if (stop_) break;
      for (size_t i = 2; i < fds.size(); i++) {
        Conn& c = conns_[i - 2];
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) receive(c);
        if (!c.out.empty()) flush(c);
      }
      if (fds[1].revents & POLLIN) acceptAll(acceptAgain);  // after: it adds and removes connections
    }
  }

  void acceptAll(Clock::time_point& acceptAgain) {
    for (;;) {
      int fd = accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        // out of descriptors (the rest of the process holds them): leave the queue to the kernel for a while
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) acceptAgain = Clock::now() + std::chrono::milliseconds(100);
        return;
      }
      size_t pending = std::count_if(conns_.begin(), conns_.end(), [](const Conn& c) { return !c.hello; });
      if (pending >= pendingCap_) {
        // a newcomer evicts the connection that has waited longest without a hello
        auto oldest = std::find_if(conns_.begin(), conns_.end(), [](const Conn& c) { return !c.hello; });
        close(oldest->fd);
        conns_.erase(oldest);
      }
      conns_.emplace_back(fd, Clock::now());
    }
  }

  void sweep() {
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](Conn& c) {
      if (c.closing && c.out.empty()) { close(c.fd); return true; }
      return false;
    }), conns_.end());
  }

  void receive(Conn& c) {
    char buf[65536];
    ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { c.closing = true; c.out.clear(); return; }
    if (n < 0 || c.closing) return;
    c.in.append(buf, static_cast<size_t>(n));
    if (!c.hello) hello(c);
    while (c.hello && !c.closing && !c.in.empty() && request(c)) {}
  }

  void refuse(Conn& c, const std::string& why) {
    c.out.push_back(1);
    putStr(c.out, why);
    c.closing = true;
    c.in.clear();
  }

  void hello(Conn& c) {
    Reader r{c.in};
    uint32_t magic, version, rank, size;
    std::string token;
    if (!r.u32(magic)) return;
    if (magic != MAGIC || c.in.size() > HELLO_LIMIT) { c.closing = true; c.out.clear(); return; }  // not ours
    if (!r.u32(version) || !r.u32(rank) || !r.u32(size) || !r.str(token, TOKEN_LIMIT)) {
      if (r.bad) c.closing = true;
      return;
    }
    c.in.erase(0, r.pos);
    size_t ranks = std::count_if(conns_.begin(), conns_.end(), [](const Conn& o) { return o.hello; });
    if (version != VERSION) return refuse(c, "protocol version " + std::to_string(version) + ", this is " + std::to_string(VERSION) + " (every machine needs the same freeadv)");
    if (!sameToken(token, token_)) return refuse(c, "wrong job token (every rank needs the FREEADV_RENDEZVOUS_TOKEN of rank 0)");
    if (static_cast<int>(size) != size_ || static_cast<int>(rank) >= size_)
      return refuse(c, "rank " + std::to_string(rank) + " of " + std::to_string(size) + " does not fit this job of " + std::to_string(size_) + " ranks");
    if (ranks >= rankCap_) return refuse(c, "too many connections from the job's ranks");
    c.hello = true;
    c.out.push_back(0);
    {
      std::lock_guard<std::mutex> lk(m_);
      joined_.insert(static_cast<int>(rank));
    }
    cv_.notify_all();
  }

  // Serves one complete request from c.in; false when it is not complete yet (or was malformed: then c closes).
  bool request(Conn& c) {
    Reader r{c.in};
    uint8_t op;
    std::string key, a, b;
    int64_t n = 0;
    uint32_t count = 0;
    std::vector<std::string> keys;
    bool complete = r.u8(op);
    switch (complete ? op : 0) {
      case SET: complete = r.str(key) && r.str(a); break;
      case GET: case DELETE: complete = r.str(key); break;
      case ADD: complete = r.str(key) && r.i64(n); break;
      case COMPARE_SET: complete = r.str(key) && r.str(a) && r.str(b); break;
      case CHECK:
        complete = r.u32(count);
        if (complete && count > 65536) r.bad = true, complete = false;
        for (uint32_t i = 0; complete && i < count; i++) complete = r.str(keys.emplace_back());
        break;
      case NUM_KEYS: break;
      default: if (complete) r.bad = true; complete = false;
    }
    if (!complete) {
      if (r.bad) { c.closing = true; c.out.clear(); }
      return false;
    }
    c.in.erase(0, r.pos);
    std::string& o = c.out;
    auto ok = [&] { o.push_back(0); };
    switch (op) {
      case SET: kv_[key] = a; ok(); break;
      case GET: {
        auto it = kv_.find(key);
        ok();
        o.push_back(it != kv_.end());
        putStr(o, it != kv_.end() ? it->second : std::string());
        break;
      }
      case ADD: {
        // stored as decimal text, as c10d's TCPStore does
        auto it = kv_.find(key);
        int64_t v = 0;
        if (it != kv_.end()) {
          char* end = nullptr;
          errno = 0;
          v = std::strtoll(it->second.c_str(), &end, 10);
          if (it->second.empty() || *end || errno) {
            o.push_back(1);
            putStr(o, "add: the value of key '" + key + "' is not an integer");
            break;
          }
        }
        v += n;
        kv_[key] = std::to_string(v);
        ok();
        putI64(o, v);
        break;
      }
      case COMPARE_SET: {
        // c10d's rule: a missing key is created only when `expected` is empty; the reply is the value now held
        // (or `expected` when the key is missing and stays so)
        auto it = kv_.find(key);
        ok();
        if (it == kv_.end()) {
          if (a.empty()) kv_[key] = b;
          putStr(o, a.empty() ? b : a);
        } else {
          if (it->second == a) it->second = b;
          putStr(o, it->second);
        }
        break;
      }
      case CHECK:
        ok();
        o.push_back(std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return kv_.count(k) > 0; }));
        break;
      case DELETE: ok(); o.push_back(kv_.erase(key) > 0); break;
      case NUM_KEYS: ok(); putI64(o, static_cast<int64_t>(kv_.size())); break;
    }
    return true;
  }

  void flush(Conn& c) {
    ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) c.out.erase(0, static_cast<size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EINTR) { c.closing = true; c.out.clear(); }
  }

  const std::string token_;
  const int size_;
  int listen_;
  int wake_[2]{-1, -1};
  size_t pendingCap_ = 0, rankCap_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<Conn> conns_;               // the server thread's
  std::map<std::string, std::string> kv_;  // the server thread's
  std::mutex m_;
  std::condition_variable cv_;
  std::set<int> joined_;  // ranks that said hello (under m_)
  std::thread thread_;
};

// ---- the client (every rank) ----
class RendezvousStore : public c10d::Store {
 public:
  RendezvousStore(std::string host, int port, std::string token, int rank, int size, std::chrono::milliseconds timeout,
                  std::shared_ptr<Server> server)
      : c10d::Store(timeout), host_(std::move(host)), port_(port), token_(std::move(token)), rank_(rank), size_(size),
        server_(std::move(server)) {
    connectToServer();
  }
  ~RendezvousStore() override {
    if (fd_ >= 0) close(fd_);
  }

  // libtorch 2.x: a store of its own (another connection) to the same server.
  c10::intrusive_ptr<c10d::Store> clone() {
    return c10::make_intrusive<RendezvousStore>(host_, port_, token_, rank_, size_, timeout_, server_);
  }

  void set(const std::string& key, const Bytes& value) override {
    std::string m(1, SET);
    putStr(m, key);
    putVec(m, value);
    call(m, "set");
  }
  Bytes get(const std::string& key) override {
    wait({key});
    std::string m(1, GET);
    putStr(m, key);
    std::string rep = call(m, "get");
    Reader r{rep};
    uint8_t found;
    std::string v;
    if (!r.u8(found) || !r.str(v)) lost("get");
    if (!found) fail("get: key '" + key + "' was deleted while it was read");
    return Bytes(v.begin(), v.end());
  }
  int64_t add(const std::string& key, int64_t value) override {
    std::string m(1, ADD);
    putStr(m, key);
    putI64(m, value);
    std::string rep = call(m, "add");
    Reader r{rep};
    int64_t v;
    if (!r.i64(v)) lost("add");
    return v;
  }
  Bytes compareSet(const std::string& key, const Bytes& expected, const Bytes& desired) override {
    std::string m(1, COMPARE_SET);
    putStr(m, key);
    putVec(m, expected);
    putVec(m, desired);
    std::string rep = call(m, "compareSet");
    Reader r{rep};
    std::string v;
    if (!r.str(v)) lost("compareSet");
    return Bytes(v.begin(), v.end());
  }
  bool deleteKey(const std::string& key) override {
    std::string m(1, DELETE);
    putStr(m, key);
    std::string rep = call(m, "deleteKey");
    Reader r{rep};
    uint8_t v;
    if (!r.u8(v)) lost("deleteKey");
    return v != 0;
  }
  bool check(const std::vector<std::string>& keys) override {
    std::string m(1, CHECK);
    putU32(m, static_cast<uint32_t>(keys.size()));
    for (auto& k : keys) putStr(m, k);
    std::string rep = call(m, "check");
    Reader r{rep};
    uint8_t v;
    if (!r.u8(v)) lost("check");
    return v != 0;
  }
  int64_t getNumKeys() override {
    std::string rep = call(std::string(1, NUM_KEYS), "getNumKeys");
    Reader r{rep};
    int64_t v;
    if (!r.i64(v)) lost("getNumKeys");
    return v;
  }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    auto deadline = Clock::now() + timeout;
    auto pause = std::chrono::milliseconds(1);
    while (!check(keys)) {
      if (timeout != kNoTimeout && Clock::now() >= deadline) {
        std::string names;
        for (auto& k : keys) names += (names.empty() ? "'" : ", '") + k + "'";
        fail("waiting for key(s) " + names + " in the rendezvous at " + where(host_, port_) + " timed out after " + std::to_string(timeout.count()) + " ms");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
  }

  Server* server() const { return server_.get(); }
  std::string at() const { return where(host_, port_); }

 private:
  [[noreturn]] void lost(const std::string& what) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    fail(what + ": lost the connection to the rendezvous at " + at() + " (rank 0 ended or is unreachable)");
  }

  // Sends request m and returns its reply after the status byte; an error reply becomes an exception. The reply's
  // length shows only when it is parsed, so it reads until `complete` finds it whole.
  std::string call(const std::string& m, const char* what) {
    std::lock_guard<std::mutex> lk(mu_);
    if (fd_ < 0) lost(what);
    auto deadline = Clock::now() + (timeout_ == kNoTimeout ? std::chrono::hours(24) : std::max(timeout_, std::chrono::milliseconds(1000)));
    if (!sendAll(m, deadline)) lost(what);
    std::string buf;
    while (!complete(static_cast<uint8_t>(m[0]), buf))
      if (!recvSome(buf, deadline)) lost(what);
    if (buf[0] != 0) {
      Reader r{buf, 1};
      std::string why;
      r.str(why);
      fail(std::string(what) + ": " + why);
    }
    return buf.substr(1);
  }
  // Whether buf holds a whole reply (status byte, then op's result or an error message).
  static bool complete(uint8_t op, const std::string& buf) {
    Reader r{buf};
    uint8_t status, u;
    int64_t i;
    std::string s;
    if (!r.u8(status)) return false;
    if (status != 0) return r.str(s);
    switch (op) {
      case SET: return true;
      case GET: return r.u8(u) && r.str(s);
      case ADD: case NUM_KEYS: return r.i64(i);
      case COMPARE_SET: return r.str(s);
      default: return r.u8(u);  // CHECK, DELETE
    }
  }

  bool sendAll(const std::string& m, Clock::time_point deadline) {
    size_t off = 0;
    while (off < m.size()) {
      ssize_t n = send(fd_, m.data() + off, m.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) { off += static_cast<size_t>(n); continue; }
      if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      if (!waitFor(POLLOUT, deadline)) return false;
    }
    return true;
  }
  bool recvSome(std::string& buf, Clock::time_point deadline) {
    for (;;) {
      char b[65536];
      ssize_t n = recv(fd_, b, sizeof b, MSG_DONTWAIT);
      if (n > 0) { buf.append(b, static_cast<size_t>(n)); return true; }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) return false;
      if (!waitFor(POLLIN, deadline)) return false;
    }
  }
  bool waitFor(short events, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, events, 0};
    return poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30))) > 0;
  }

  // Connects and says hello, retrying (rank 0 not up yet, or its server busy) until the timeout; a refusal ends it.
  void connectToServer() {
    auto deadline = Clock::now() + timeout_;
    std::string why = "no answer";
    for (auto pause = std::chrono::milliseconds(10);; pause = std::min(pause * 2, std::chrono::milliseconds(500))) {
      if (attempt(deadline, why)) return;
      if (Clock::now() + pause >= deadline)
        fail("rank " + std::to_string(rank_) + " could not reach the rendezvous at " + at() + " within " + std::to_string(timeout_.count()) + " ms: " + why);
      std::this_thread::sleep_for(pause);
    }
  }
  bool attempt(Clock::time_point deadline, std::string& why) {
    addrinfo* found = nullptr;
    int rc = lookup(host_, port_, &found);
    if (rc == EAI_NONAME) fail("the master address " + host_ + " does not resolve: " + gai_strerror(rc));
    if (rc != 0) { why = std::string("the address does not resolve: ") + gai_strerror(rc); return false; }
    for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
      fd_ = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd_ < 0) { why = std::strerror(errno); continue; }
      int err = 0;
      socklen_t len = sizeof err;
      if (::connect(fd_, a->ai_addr, a->ai_addrlen) != 0 &&
          (errno != EINPROGRESS || !waitFor(POLLOUT, std::min(deadline, Clock::now() + std::chrono::seconds(5))) ||
           getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        why = std::strerror(err ? err : errno ? errno : ETIMEDOUT);
        close(fd_);
        fd_ = -1;
      }
    }
    freeaddrinfo(found);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string m;
    putU32(m, MAGIC);
    putU32(m, VERSION);
    putU32(m, static_cast<uint32_t>(rank_));
    putU32(m, static_cast<uint32_t>(size_));
    putStr(m, token_);
    std::string rep, msg;
    uint8_t status = 0;
    auto until = std::min(deadline, Clock::now() + std::chrono::seconds(10));
    bool ok = sendAll(m, until);
    while (ok && !(Reader{rep}.u8(status) && complete(SET, rep))) ok = recvSome(rep, until);
    if (ok && status != 0) Reader{rep, 1}.str(msg);
    if (!ok) {  // closed before answering: the server is busy (or not ours); try again
      why = "the server closed the connection before answering";
      close(fd_);
      fd_ = -1;
      return false;
    }
    if (status != 0) {
      close(fd_);
      fd_ = -1;
      fail("the rendezvous at " + at() + " refused rank " + std::to_string(rank_) + ": " + msg);
    }
    return true;
  }

  const std::string host_;
  const int port_;
  const std::string token_;
  const int rank_, size_;
  std::shared_ptr<Server> server_;  // rank 0's: it serves as long as a store of this process uses it
  int fd_ = -1;
  std::mutex mu_;
};

}  // namespace

c10::intrusive_ptr<c10d::Store> tcpRendezvous(const std::string& host, int port, const std::string& token, int rank, int size,
                                              std::chrono::milliseconds timeout) {
  if (token.size() > TOKEN_LIMIT) fail("the job token (FREEADV_RENDEZVOUS_TOKEN) is longer than " + std::to_string(TOKEN_LIMIT) + " bytes");
  auto server = rank == 0 ? std::make_shared<Server>(host, port, token, size) : nullptr;
  auto store = c10::make_intrusive<RendezvousStore>(host, port, token, rank, size, timeout, server);
  if (server) server->waitForRanks(timeout, store->at());
  return store;
}

}  // namespace freeadv
#endif  // FREEADV_GLOO
