// libobjget_rdma.so: the C ABI of native/include/objget_rdma.h over NVIDIA cuObject's cuObjClient.
//
// Manual-token pattern: one process-wide client whose callbacks fail if ever called; objget
// registers a buffer, mints a token for a slice, sends an ordinary S3 request carrying it, then
// releases the token. cuObjGet/cuObjPut are never used.
//
// Built against NVIDIA's cuobjclient.h (backend "sdk") or the project's simulated one
// (backend "simulator", OBJGET_RDMA_SIMULATOR defined). Only the class API common to both is
// used, so the same source compiles against either.
//
// Every entry point takes one mutex (whether cuObjClient is thread-safe is not documented) and
// catches every exception; only the objget_rdma_* symbols are exported.

#include <cuobjclient.h>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

// The header's declarations take default visibility; everything else stays hidden
// (-fvisibility=hidden, plus a version script at link time).
#pragma GCC visibility push(default)
#include "objget_rdma.h"
#pragma GCC visibility pop

#define OBJGET_RDMA_EXPORT extern "C" __attribute__((visibility("default")))

#ifndef OBJGET_RDMA_HEADER_PATH
#define OBJGET_RDMA_HEADER_PATH "cuobjclient.h"
#endif

namespace {

// The client lives in a block far larger than the header says it needs: the class's size
// differs between copies of cuobjclient.h (72 bytes in NVIDIA's, 64 in another public copy),
// and a constructor from a library newer than the header must not write past the allocation.
constexpr size_t kClientAlign = 64;
constexpr size_t kClientBlock =
    ((sizeof(cuObjClient) * 8 > 4096 ? sizeof(cuObjClient) * 8 : 4096) + 4095) / 4096 * 4096;

struct ClientDeleter {
    void operator()(cuObjClient *c) const noexcept {
        if (c == nullptr) return;
        c->~cuObjClient();
        std::free(static_cast<void *>(c));
    }
};
using ClientPtr = std::unique_ptr<cuObjClient, ClientDeleter>;

// Placement-new into a zeroed, generously rounded block (see kClientBlock).
ClientPtr make_client(CUObjOps_t &ops) {
    void *block = std::aligned_alloc(kClientAlign, kClientBlock);
    if (block == nullptr) throw std::bad_alloc();
    std::memset(block, 0, kClientBlock);
    try {
        return ClientPtr(new (block) cuObjClient(ops, CUOBJ_PROTO_RDMA_DC_V1));
    } catch (...) {
        std::free(block);
        throw;
    }
}

}  // namespace

struct objget_rdma {
    ClientPtr client;
    std::map<uintptr_t, size_t> regs;            // registration start -> size
    std::unordered_map<char *, uintptr_t> tokens;  // outstanding token -> its registration start
};

namespace {

constexpr uint64_t kMaxRegistration = 4ULL * 1024 * 1024 * 1024 - 64 * 1024;
// A server moves at most 1 GiB per request, so a token never covers more.
constexpr size_t kMaxTransfer = size_t{1} << 30;

std::mutex g_mu;                  // serializes every call on the client and guards g_client
objget_rdma *g_client = nullptr;  // the process-wide client, or null
CUObjOps_t g_ops{};               // outlives the client: the library may keep a reference
thread_local std::string t_last_error;

ssize_t refuse_get(const void *, char *, size_t, loff_t, const cufileRDMAInfo_t *) { return -1; }
ssize_t refuse_put(const void *, const char *, size_t, loff_t, const cufileRDMAInfo_t *) {
    return -1;
}

void set_error(const char *fn, const char *msg) noexcept {
    try {
        t_last_error.assign(fn).append(": ").append(msg);
    } catch (...) {
        t_last_error.clear();
    }
}

int fail(int code, const char *fn, const char *msg) noexcept {
    set_error(fn, msg);
    return code;
}

// Runs `body` under the mutex; a C++ exception becomes a status (it must never cross the C ABI).
template <class Body>
int guarded(const char *fn, Body &&body) noexcept {
    try {
        std::lock_guard<std::mutex> lock(g_mu);
        return body();
    } catch (const std::bad_alloc &) {
        return fail(OBJGET_RDMA_ENOMEM, fn, "out of memory");
    } catch (const std::exception &e) {
        return fail(OBJGET_RDMA_EEXCEPTION, fn, e.what());
    } catch (...) {
        return fail(OBJGET_RDMA_EEXCEPTION, fn, "unknown exception");
    }
}

// A handle is usable only while it is the live client: a null or destroyed one is EINVAL.
bool live(const objget_rdma *h) { return h != nullptr && h == g_client; }

// The library said CU_OBJ_FAIL: tell "not connected" apart from other failures.
int library_failure(objget_rdma *h, const char *fn, const char *call) {
    if (!h->client->isConnected()) {
        return fail(OBJGET_RDMA_ENOTCONN, fn,
                    "the cuObject client is not connected (check CUFILE_ENV_PATH_JSON and "
                    "properties.rdma_dev_addr_list)");
    }
    return fail(OBJGET_RDMA_EFAIL, fn, call);
}

// Releases the outstanding tokens of one registration (start != 0) or of all (start == 0).
// Returns how many the library refused; they are forgotten either way.
size_t release_tokens(objget_rdma *h, uintptr_t start) {
    size_t refused = 0;
    for (auto it = h->tokens.begin(); it != h->tokens.end();) {
        if (start != 0 && it->second != start) {
            ++it;
            continue;
        }
        try {
            if (h->client->cuMemObjPutRDMAToken(it->first) != CU_OBJ_SUCCESS) ++refused;
        } catch (...) {
            ++refused;
        }
        it = h->tokens.erase(it);
    }
    return refused;
}

}  // namespace

OBJGET_RDMA_EXPORT int objget_rdma_abi_version(void) { return OBJGET_RDMA_ABI_VERSION; }

OBJGET_RDMA_EXPORT const char *objget_rdma_backend(void) {
#ifdef OBJGET_RDMA_SIMULATOR
    return "simulator";
#else
    return "sdk";
#endif
}

OBJGET_RDMA_EXPORT uint64_t objget_rdma_max_registration(void) { return kMaxRegistration; }

OBJGET_RDMA_EXPORT const char *objget_rdma_header(void) { return OBJGET_RDMA_HEADER_PATH; }

OBJGET_RDMA_EXPORT uint64_t objget_rdma_client_size(void) { return sizeof(cuObjClient); }

OBJGET_RDMA_EXPORT uint64_t objget_rdma_client_block(void) { return kClientBlock; }

OBJGET_RDMA_EXPORT int objget_rdma_create(objget_rdma **out) {
    static const char fn[] = "objget_rdma_create";
    return guarded(fn, [&] {
        if (out == nullptr) return fail(OBJGET_RDMA_EINVAL, fn, "out is null");
        if (g_client == nullptr) {
            auto h = std::make_unique<objget_rdma>();
            g_ops.get = refuse_get;
            g_ops.put = refuse_put;
            h->client = make_client(g_ops);
            g_client = h.release();
        }
        *out = g_client;
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT void objget_rdma_destroy(objget_rdma *h) {
    static const char fn[] = "objget_rdma_destroy";
    guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        g_client = nullptr;
        std::unique_ptr<objget_rdma> owned(h);
        size_t refused = release_tokens(h, 0);
        for (const auto &reg : h->regs) {
            try {
                if (h->client->cuMemObjPutDescriptor(reinterpret_cast<void *>(reg.first)) !=
                    CU_OBJ_SUCCESS) {
                    ++refused;
                }
            } catch (...) {
                ++refused;
            }
        }
        h->regs.clear();
        owned->client.reset();
        if (refused != 0) {
            return fail(OBJGET_RDMA_EFAIL, fn, "the library refused to release some leftovers");
        }
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_is_connected(objget_rdma *h) {
    static const char fn[] = "objget_rdma_is_connected";
    return guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        return h->client->isConnected() ? 1 : 0;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_register(objget_rdma *h, void *ptr, size_t size) {
    static const char fn[] = "objget_rdma_register";
    return guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        if (ptr == nullptr) return fail(OBJGET_RDMA_EINVAL, fn, "ptr is null");
        if (size == 0) return fail(OBJGET_RDMA_EINVAL, fn, "size is 0");
        if (size > kMaxRegistration) {
            return fail(OBJGET_RDMA_ERANGE, fn, "size exceeds the largest registration (4 GiB - 64 KiB)");
        }
        const auto start = reinterpret_cast<uintptr_t>(ptr);
        const long page = sysconf(_SC_PAGESIZE);
        if (page > 0 && start % static_cast<uintptr_t>(page) != 0) {
            return fail(OBJGET_RDMA_EINVAL, fn, "ptr is not page-aligned");
        }
        // No overlap with a live registration: the next one starting at or after ptr, and the
        // one before it.
        auto next = h->regs.lower_bound(start);
        if (next != h->regs.end() && next->first - start < size) {
            return fail(OBJGET_RDMA_EINVAL, fn, "memory overlaps a registered buffer");
        }
        if (next != h->regs.begin()) {
            auto prev = std::prev(next);
            if (start - prev->first < prev->second) {
                return fail(OBJGET_RDMA_EINVAL, fn, "memory overlaps a registered buffer");
            }
        }
        if (cuObjClient::getMemoryType(ptr) == CUOBJ_MEMORY_CUDA_MANAGED) {
            return fail(OBJGET_RDMA_EINVAL, fn, "CUDA managed memory cannot be registered");
        }
        // Make room first, so that a successful registration is never left untracked.
        auto slot = h->regs.emplace_hint(next, start, size);
        cuObjErr_t rc;
        try {
            rc = h->client->cuMemObjGetDescriptor(ptr, size);
        } catch (...) {
            h->regs.erase(slot);
            throw;
        }
        if (rc != CU_OBJ_SUCCESS) {
            h->regs.erase(slot);
            return library_failure(h, fn, "cuMemObjGetDescriptor failed");
        }
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_deregister(objget_rdma *h, void *ptr) {
    static const char fn[] = "objget_rdma_deregister";
    return guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        const auto start = reinterpret_cast<uintptr_t>(ptr);
        auto reg = h->regs.find(start);
        if (ptr == nullptr || reg == h->regs.end()) {
            return fail(OBJGET_RDMA_EINVAL, fn, "ptr is not the start of a registered buffer");
        }
        // Tokens of this buffer are worthless once it is deregistered: release them first.
        release_tokens(h, start);
        if (h->client->cuMemObjPutDescriptor(ptr) != CU_OBJ_SUCCESS) {
            return fail(OBJGET_RDMA_EFAIL, fn, "cuMemObjPutDescriptor failed");
        }
        h->regs.erase(reg);
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_token(objget_rdma *h, void *ptr, size_t size,
                                         size_t buffer_offset, int op, char **token_out) {
    static const char fn[] = "objget_rdma_token";
    return guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        if (token_out == nullptr) return fail(OBJGET_RDMA_EINVAL, fn, "token_out is null");
        *token_out = nullptr;
        if (op != OBJGET_RDMA_OP_GET && op != OBJGET_RDMA_OP_PUT) {
            return fail(OBJGET_RDMA_EINVAL, fn, "op is neither GET nor PUT");
        }
        // A zero-length slice is allowed: it is how an empty object moves (nothing to move).
        const auto start = reinterpret_cast<uintptr_t>(ptr);
        const auto reg = h->regs.find(start);
        if (ptr == nullptr || reg == h->regs.end()) {
            return fail(OBJGET_RDMA_EINVAL, fn, "ptr is not the start of a registered buffer");
        }
        if (buffer_offset > reg->second || size > reg->second - buffer_offset) {
            return fail(OBJGET_RDMA_ERANGE, fn, "slice lies outside its registration");
        }
        if (size > kMaxTransfer) {
            return fail(OBJGET_RDMA_ERANGE, fn, "slice exceeds 1 GiB, the most one request moves");
        }
        h->tokens.reserve(h->tokens.size() + 1);  // so the insert below cannot throw
        char *token = nullptr;
        const cuObjOpType_t cu_op = op == OBJGET_RDMA_OP_GET ? CUOBJ_GET : CUOBJ_PUT;
        if (h->client->cuMemObjGetRDMAToken(ptr, size, buffer_offset, cu_op, &token) !=
                CU_OBJ_SUCCESS ||
            token == nullptr) {
            return library_failure(h, fn, "cuMemObjGetRDMAToken failed");
        }
        h->tokens.emplace(token, start);
        *token_out = token;
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_token_release(objget_rdma *h, char *token) {
    static const char fn[] = "objget_rdma_token_release";
    return guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        auto it = token != nullptr ? h->tokens.find(token) : h->tokens.end();
        if (it == h->tokens.end()) {
            return fail(OBJGET_RDMA_EINVAL, fn, "not an outstanding token");
        }
        h->tokens.erase(it);  // forgotten even if the library refuses: never released twice
        if (h->client->cuMemObjPutRDMAToken(token) != CU_OBJ_SUCCESS) {
            return fail(OBJGET_RDMA_EFAIL, fn, "cuMemObjPutRDMAToken failed");
        }
        return OBJGET_RDMA_OK;
    });
}

OBJGET_RDMA_EXPORT int objget_rdma_memory_type(const void *ptr) {
    static const char fn[] = "objget_rdma_memory_type";
    return guarded(fn, [&] {
        switch (cuObjClient::getMemoryType(ptr)) {
            case CUOBJ_MEMORY_SYSTEM: return OBJGET_RDMA_MEMORY_SYSTEM;
            case CUOBJ_MEMORY_CUDA_MANAGED: return OBJGET_RDMA_MEMORY_CUDA_MANAGED;
            case CUOBJ_MEMORY_CUDA_DEVICE: return OBJGET_RDMA_MEMORY_CUDA_DEVICE;
            default: return OBJGET_RDMA_MEMORY_UNKNOWN;  // includes the SDK's CUOBJ_MEMORY_INVALID
        }
    });
}

OBJGET_RDMA_EXPORT void objget_rdma_stats(objget_rdma *h, uint64_t *registrations,
                                          uint64_t *tokens) {
    static const char fn[] = "objget_rdma_stats";
    uint64_t r = 0, t = 0;
    guarded(fn, [&] {
        if (!live(h)) return fail(OBJGET_RDMA_EINVAL, fn, "invalid handle");
        r = h->regs.size();
        t = h->tokens.size();
        return OBJGET_RDMA_OK;
    });
    if (registrations != nullptr) *registrations = r;
    if (tokens != nullptr) *tokens = t;
}

OBJGET_RDMA_EXPORT const char *objget_rdma_last_error(void) { return t_last_error.c_str(); }
