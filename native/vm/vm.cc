// objget_vm: copy bytes between this process and another one with Linux process_vm_readv /
// process_vm_writev. Test-only: the S3-over-RDMA test gateway uses it to play the part of a
// one-sided RDMA read or write into the client's registered memory (it needs the right to ptrace
// the target, e.g. root or the same user with ptrace_scope 0).
//
//   readRemote(pid: number, addr: bigint, length: number): Buffer
//   writeRemote(pid: number, addr: bigint, data: Buffer | Uint8Array): number
//   addressOf(buf: Buffer | Uint8Array): bigint
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#ifdef __linux__
#include <sys/types.h>
#include <sys/uio.h>
#endif

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

[[noreturn]] void ThrowErrno(Napi::Env env, const char *op, int pid, uint64_t addr, size_t len,
                             size_t done, int err) {
  std::string msg = std::string(op) + "(pid " + std::to_string(pid) + ", " + Hex(addr) + ", " +
                    std::to_string(len) + " bytes) failed after " + std::to_string(done) +
                    " bytes: " + (err ? std::strerror(err) : "no progress");
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("bytesDone", Napi::Number::New(env, static_cast<double>(done)));
  throw e;
}

int ArgPid(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "pid must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::RangeError::New(info.Env(), "pid must be a positive integer");
  return static_cast<int>(d);
}

uint64_t ArgAddr(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() > i && info[i].IsBigInt()) {
    bool lossless = false;
    uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(info.Env(), "addr does not fit in 64 bits");
    return v;
  }
  if (info.Length() > i && info[i].IsNumber()) {
    double d = info[i].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= kMaxSafeInteger) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw Napi::RangeError::New(info.Env(), "addr must be a non-negative integer");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(info.Env(), "addr must be a bigint");
}

size_t ArgLength(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "length must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= kMaxSafeInteger) || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::RangeError::New(info.Env(), "length must be a non-negative integer");
  return static_cast<size_t>(d);
}

Napi::Uint8Array ArgBytes(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() > i && info[i].IsTypedArray()) {
    Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_uint8_array) return ta.As<Napi::Uint8Array>();
  }
  throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Buffer or Uint8Array");
}

#ifdef __linux__
// One call moves at most MAX_RW_COUNT bytes and stops early at an unmapped page: loop until all
// bytes are moved; a call that moves nothing is an error.
template <typename Fn>
void CopyAll(Napi::Env env, const char *op, Fn fn, int pid, uint64_t addr, uint8_t *local,
             size_t len) {
  size_t done = 0;
  while (done < len) {
    struct iovec l = {local + done, len - done};
    struct iovec r = {reinterpret_cast<void *>(static_cast<uintptr_t>(addr + done)), len - done};
    ssize_t n = fn(static_cast<pid_t>(pid), &l, 1, &r, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ThrowErrno(env, op, pid, addr, len, done, n < 0 ? errno : EFAULT);
    done += static_cast<size_t>(n);
  }
}
#endif

Napi::Value ReadRemote(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pid = ArgPid(info, 0);
  uint64_t addr = ArgAddr(info, 1);
  size_t len = ArgLength(info, 2);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, len);
#ifdef __linux__
  CopyAll(env, "process_vm_readv", process_vm_readv, pid, addr, out.Data(), len);
#else
  if (len) throw Napi::Error::New(env, "readRemote needs Linux process_vm_readv");
#endif
  return out;
}

Napi::Value WriteRemote(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int pid = ArgPid(info, 0);
  uint64_t addr = ArgAddr(info, 1);
  Napi::Uint8Array data = ArgBytes(info, 2, "data");
  size_t len = data.ByteLength();
#ifdef __linux__
  CopyAll(env, "process_vm_writev", process_vm_writev, pid, addr, data.Data(), len);
#else
  if (len) throw Napi::Error::New(env, "writeRemote needs Linux process_vm_writev");
#endif
  return Napi::Number::New(env, static_cast<double>(len));
}

Napi::Value AddressOf(const Napi::CallbackInfo &info) {
  Napi::Uint8Array buf = ArgBytes(info, 0, "buf");
  // Data() is already adjusted by the view's byte offset.
  return Napi::BigInt::New(info.Env(),
                           static_cast<uint64_t>(reinterpret_cast<uintptr_t>(buf.Data())));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("readRemote", Napi::Function::New(env, ReadRemote, "readRemote"));
  exports.Set("writeRemote", Napi::Function::New(env, WriteRemote, "writeRemote"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  return exports;
}

}  // namespace

NODE_API_MODULE(objget_vm, Init)
