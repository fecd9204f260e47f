// Simulated libcuobjclient.so.1 (tests only). See cuobjclient.h and native/README.md.
//
// Registrations and tokens are bookkeeping; no memory is touched. A token is the 81-character
// descriptor addr(16):size(8):rkey(8):lid(4):qp(6):gid_present(1):gid(32) with
//   addr = registration start + buffer_offset, size = slice size,
//   rkey = getpid()  (the test gateway reaches the client process through it),
//   lid  = 0001, qp = a per-process counter (mod 2^24), gid_present = 1,
//   gid  = "0b1ec75e" (simulator marker) + op as 8 hex digits + registration id as 16.
// Like the library it stands in for, it stays quiet on stderr.

#include "cuobjclient.h"

#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>

namespace {

constexpr uint64_t kMaxRegistration = 4ULL * 1024 * 1024 * 1024 - 64 * 1024;
constexpr uint64_t kMaxTransfer = 1ULL << 30;  // what a server moves in one call
constexpr size_t kTokenLen = 81;
constexpr const char *kGidMarker = "0b1ec75e";

std::mutex g_counter_mu;
uint64_t g_next_registration_id = 1;
uint32_t g_next_qp = 1;

// Tolerant check that the cuFile JSON has a non-empty properties.rdma_dev_addr_list: finds the
// key after "properties" and looks for a non-empty quoted string inside the [...] that follows.
bool has_rdma_devices(const char *path) {
    if (path == nullptr || *path == '\0') return false;
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

    const size_t props = s.find("\"properties\"");
    if (props == std::string::npos) return false;
    const std::string key = "\"rdma_dev_addr_list\"";
    size_t i = s.find(key, props);
    if (i == std::string::npos) return false;
    i += key.size();
    auto skip_ws = [&] {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    };
    skip_ws();
    if (i >= s.size() || s[i] != ':') return false;
    ++i;
    skip_ws();
    if (i >= s.size() || s[i] != '[') return false;
    ++i;

    bool found = false;
    while (i < s.size() && s[i] != ']') {
        if (s[i] == '"') {
            size_t len = 0;
            for (++i; i < s.size() && s[i] != '"'; ++i, ++len) {
                if (s[i] == '\\') ++i;
            }
            if (i >= s.size()) return false;  // unterminated string
            if (len > 0) found = true;
        }
        ++i;
    }
    return found && i < s.size();
}

struct Registration {
    size_t size;
    uint64_t id;
};

}  // namespace

struct cuObjClient::Impl {
    std::mutex mu;
    bool connected = false;
    std::map<uintptr_t, Registration> regs;  // start address -> registration
    std::set<char *> tokens;                 // descriptors handed out, not yet released
};

cuObjClient::cuObjClient(CUObjOps_t &ops, cuObjProto_t proto) : impl_(nullptr) {
    (void)ops;  // callbacks are never invoked: the callback pattern is not simulated
    (void)proto;
    const bool connected = has_rdma_devices(std::getenv("CUFILE_ENV_PATH_JSON"));
    impl_ = new Impl;
    impl_->connected = connected;
}

cuObjClient::~cuObjClient() {
    for (char *t : impl_->tokens) std::free(t);
    delete impl_;
}

cuObjErr_t cuObjClient::cuMemObjGetDescriptor(void *ptr, size_t size) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->connected || ptr == nullptr || size == 0 || size > kMaxRegistration) {
        return CU_OBJ_FAIL;
    }
    const auto start = reinterpret_cast<uintptr_t>(ptr);
    if (impl_->regs.count(start) != 0) return CU_OBJ_FAIL;
    uint64_t id;
    {
        std::lock_guard<std::mutex> counter(g_counter_mu);
        id = g_next_registration_id++;
    }
    impl_->regs.emplace(start, Registration{size, id});
    return CU_OBJ_SUCCESS;
}

cuObjErr_t cuObjClient::cuMemObjPutDescriptor(void *ptr) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->regs.erase(reinterpret_cast<uintptr_t>(ptr)) == 1 ? CU_OBJ_SUCCESS : CU_OBJ_FAIL;
}

ssize_t cuObjClient::cuMemObjGetMaxRequestCallbackSize(void *ptr) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->regs.count(reinterpret_cast<uintptr_t>(ptr)) != 0
               ? static_cast<ssize_t>(kMaxTransfer)
               : -1;
}

cuObjErr_t cuObjClient::cuMemObjGetRDMAToken(void *ptr, size_t size, size_t buffer_offset,
                                             cuObjOpType_t operation, char **desc_str_out) {
    if (desc_str_out == nullptr) return CU_OBJ_FAIL;
    *desc_str_out = nullptr;
    if (operation != CUOBJ_GET && operation != CUOBJ_PUT) return CU_OBJ_FAIL;
    // Zero-length slices are accepted: the token of an empty object.
    if (size > kMaxTransfer) return CU_OBJ_FAIL;

    std::lock_guard<std::mutex> lock(impl_->mu);
    const auto start = reinterpret_cast<uintptr_t>(ptr);
    const auto it = impl_->regs.find(start);
    if (it == impl_->regs.end()) return CU_OBJ_FAIL;
    const Registration &reg = it->second;
    if (buffer_offset > reg.size || size > reg.size - buffer_offset) return CU_OBJ_FAIL;

    uint32_t qp;
    {
        std::lock_guard<std::mutex> counter(g_counter_mu);
        qp = g_next_qp;
        g_next_qp = (g_next_qp + 1) & 0xffffffu;
    }
    char *desc = static_cast<char *>(std::malloc(kTokenLen + 1));
    if (desc == nullptr) return CU_OBJ_FAIL;
    const int n = std::snprintf(
        desc, kTokenLen + 1, "%016llx:%08llx:%08x:%04x:%06x:%01x:%s%08x%016llx",
        static_cast<unsigned long long>(start + buffer_offset),
        static_cast<unsigned long long>(size), static_cast<unsigned>(getpid()), 1u, qp, 1u,
        kGidMarker, static_cast<unsigned>(operation), static_cast<unsigned long long>(reg.id));
    if (n != static_cast<int>(kTokenLen)) {
        std::free(desc);
        return CU_OBJ_FAIL;
    }
    try {
        impl_->tokens.insert(desc);
    } catch (...) {
        std::free(desc);
        return CU_OBJ_FAIL;
    }
    *desc_str_out = desc;
    return CU_OBJ_SUCCESS;
}

cuObjErr_t cuObjClient::cuMemObjPutRDMAToken(char *desc_str) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->tokens.erase(desc_str) != 1) return CU_OBJ_FAIL;
    std::free(desc_str);
    return CU_OBJ_SUCCESS;
}

ssize_t cuObjClient::cuObjGet(void *, void *, size_t, loff_t, loff_t) { return -1; }

ssize_t cuObjClient::cuObjPut(void *, void *, size_t, loff_t, loff_t) { return -1; }

bool cuObjClient::isConnected(void) { return impl_->connected; }

void *cuObjClient::getCtx(const void *) { return nullptr; }

cuObjMemoryType_t cuObjClient::getMemoryType(const void *ptr) {
    return ptr != nullptr ? CUOBJ_MEMORY_SYSTEM : CUOBJ_MEMORY_UNKNOWN;
}
