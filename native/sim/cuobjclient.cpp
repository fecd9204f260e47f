// Simulated libcuobjclient.so.1 (tests only). See cuobjclient.h and native/README.md.
//
// Registrations and tokens are bookkeeping; no memory is touched. A token is the 81-character
// descriptor addr(16):size(8):rkey(8):lid(4):qp(6):gid_present(1):gid(32) with
//   addr = registration start + buffer_offset, size = slice size,
//   rkey = getpid()  (the test gateway reaches the client process through it),
//   lid  = 0001, qp = a per-process counter (mod 2^24), gid_present = 1,
//   gid  = "0b1ec75e" (simulator marker) + op as 8 hex digits + registration id as 16.
// Like the library it stands in for, it stays quiet on stderr: errors go to cuFile's log
// (CUFILE_LOGFILE_PATH, the JSON's logging.dir, or ./cufile.log).

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
bool has_rdma_devices(const std::string &s) {
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

// The string value of "key" after "section" ("" if absent): enough for logging.dir.
std::string string_in(const std::string &s, const char *section, const char *key) {
    const size_t at = s.find(std::string("\"") + section + "\"");
    if (at == std::string::npos) return "";
    const std::string k = std::string("\"") + key + "\"";
    size_t i = s.find(k, at);
    if (i == std::string::npos) return "";
    i = s.find('"', s.find(':', i + k.size()));
    if (i == std::string::npos) return "";
    const size_t end = s.find('"', i + 1);
    return end == std::string::npos ? "" : s.substr(i + 1, end - i - 1);
}

// Whether the configuration parses, as far as the simulator cares: an object whose braces and
// brackets balance outside strings. The real library is not connected only when it cannot parse
// its configuration; a missing file or an empty device list still connects.
bool parsable(const std::string &s) {
    size_t i = s.find_first_not_of(" \t\r\n");
    if (i == std::string::npos || s[i] != '{') return false;
    std::string stack;
    bool in_string = false;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '{' || c == '[') stack.push_back(c);
        else if (c == '}' || c == ']') {
            if (stack.empty() || stack.back() != (c == '}' ? '{' : '[')) return false;
            stack.pop_back();
        }
    }
    return stack.empty() && !in_string;
}

// Where cuFile writes its log: CUFILE_LOGFILE_PATH, else <logging.dir>/cufile.log from the JSON,
// else ./cufile.log in the current directory (what the real library does unconfigured).
std::string log_path(const std::string &config) {
    const char *env = std::getenv("CUFILE_LOGFILE_PATH");
    if (env != nullptr && *env != '\0') return env;
    const std::string dir = string_in(config, "logging", "dir");
    if (!dir.empty()) return dir + "/cufile.log";
    return "cufile.log";
}

// An error line in cuFile's log (never on stdout or stderr). Level NONE keeps it quiet.
void log_error(const std::string &path, const char *msg) {
    const char *level = std::getenv("CUFILE_LOGGING_LEVEL");
    if (level != nullptr && std::string(level) == "NONE") return;
    if (FILE *f = std::fopen(path.c_str(), "a")) {
        std::fprintf(f, "%d ERROR cuobj: %s\n", static_cast<int>(getpid()), msg);
        std::fclose(f);
    }
}

struct Registration {
    size_t size;
    uint64_t id;
};

}  // namespace

struct cuObjClient::Impl {
    std::mutex mu;
    bool connected = false;
    bool devices = false;  // properties.rdma_dev_addr_list names at least one address
    std::string log;       // cuFile's log file
    std::map<uintptr_t, Registration> regs;  // start address -> registration
    std::set<char *> tokens;                 // descriptors handed out, not yet released
};

cuObjClient::cuObjClient(CUObjOps_t &ops, cuObjProto_t proto) : impl_(nullptr) {
    (void)ops;  // callbacks are never invoked: the callback pattern is not simulated
    (void)proto;
    // OBJGET_RDMA_SIM_HANG=1: construction never returns, like cuFile's initialisation on a
    // kernel without /proc/modules (it polls that file forever).
    const char *hang = std::getenv("OBJGET_RDMA_SIM_HANG");
    if (hang != nullptr && *hang != '\0' && std::string(hang) != "0") {
        for (;;) sleep(3600);
    }
    // Like the real library: connected unless the configuration cannot be parsed, whatever its
    // device list says (no file at all, or an empty list, still connects); registration is what
    // fails without a device.
    const char *env = std::getenv("CUFILE_ENV_PATH_JSON");
    const std::string path = env != nullptr && *env != '\0' ? env : "/etc/cufile.json";
    std::string config;
    bool ok = true;
    {
        std::ifstream in(path, std::ios::binary);
        if (in) {
            config.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
            ok = parsable(config);
        }
    }
    impl_ = new Impl;
    impl_->connected = ok;
    impl_->devices = ok && has_rdma_devices(config);
    impl_->log = log_path(config);
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
    if (!impl_->devices) {
        log_error(impl_->log, "failed to register with RDMA, no devices found in configuration");
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
