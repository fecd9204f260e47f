/*
 * Exercises the whole C ABI of libobjget_rdma.so against the simulated libcuobjclient.
 * Built and run (through ctest) by scripts/build-rdma.sh when the backend is the simulator.
 * Prints one line per failed check and exits non-zero if any failed.
 */
#define _GNU_SOURCE
#include "objget_rdma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "shim_test:%d: CHECK(%s) failed (last error: %s)\n", __LINE__,   \
                    #cond, objget_rdma_last_error());                                        \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)

/* Parses field `index` (0-based, colon-separated) of a token as hex; -1 if malformed. */
static long long token_field(const char *token, int index, size_t expect_len) {
    const char *p = token;
    for (int i = 0; i < index; i++) {
        p = strchr(p, ':');
        if (p == NULL) return -1;
        p++;
    }
    size_t len = strcspn(p, ":");
    if (len != expect_len) return -1;
    if (len > 16) len = 16; /* the gid is checked as text */
    char buf[17];
    memcpy(buf, p, len);
    buf[len] = '\0';
    return (long long)strtoull(buf, NULL, 16);
}

static const char *token_gid(const char *token) { return strrchr(token, ':') + 1; }

/* 81 characters, lowercase hex in seven fields of the documented widths. */
static int token_well_formed(const char *token) {
    static const size_t widths[] = {16, 8, 8, 4, 6, 1, 32};
    if (strlen(token) != 81) return 0;
    const char *p = token;
    for (size_t f = 0; f < sizeof widths / sizeof widths[0]; f++) {
        for (size_t i = 0; i < widths[f]; i++, p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
        }
        if (*p != (f + 1 < sizeof widths / sizeof widths[0] ? ':' : '\0')) return 0;
        if (*p) p++;
    }
    return 1;
}

static void check_token(const char *token, const void *addr, size_t size, int op) {
    CHECK(token != NULL);
    if (token == NULL) return;
    CHECK(token_well_formed(token));
    CHECK(token_field(token, 0, 16) == (long long)(uintptr_t)addr);
    CHECK(token_field(token, 1, 8) == (long long)size);
    CHECK(token_field(token, 2, 8) == (long long)getpid());
    CHECK(token_field(token, 3, 4) == 1);
    CHECK(token_field(token, 5, 1) == 1);
    CHECK(strncmp(token_gid(token), "0b1ec75e", 8) == 0);
    char op_hex[9];
    snprintf(op_hex, sizeof op_hex, "%08x", (unsigned)op);
    CHECK(strncmp(token_gid(token) + 8, op_hex, 8) == 0);
}

static void check_stats(objget_rdma *h, uint64_t want_regs, uint64_t want_tokens) {
    uint64_t regs = 99, tokens = 99;
    objget_rdma_stats(h, &regs, &tokens);
    CHECK(regs == want_regs);
    CHECK(tokens == want_tokens);
}

int main(void) {
    objget_rdma *h = NULL, *again = NULL;
    char *get_tok = NULL, *put_tok = NULL, *tok = NULL;

    CHECK(objget_rdma_abi_version() == OBJGET_RDMA_ABI_VERSION);
    CHECK(strcmp(objget_rdma_backend(), "simulator") == 0);
    CHECK(objget_rdma_max_registration() == 4ULL * 1024 * 1024 * 1024 - 64 * 1024);
    CHECK(strcmp(objget_rdma_last_error(), "") == 0);
    CHECK(objget_rdma_memory_type(&h) == OBJGET_RDMA_MEMORY_SYSTEM);
    CHECK(objget_rdma_memory_type(NULL) == OBJGET_RDMA_MEMORY_UNKNOWN);
    CHECK(objget_rdma_create(NULL) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_is_connected(NULL) == OBJGET_RDMA_EINVAL);

    void *buf = NULL;
    CHECK(posix_memalign(&buf, (size_t)sysconf(_SC_PAGESIZE), 2 * MIB) == 0);
    char *base = buf;

    CHECK(strstr(objget_rdma_header(), "cuobjclient.h") != NULL);
    CHECK(objget_rdma_client_size() > 0);
    CHECK(objget_rdma_client_block() >= 4096 && objget_rdma_client_block() % 4096 == 0);
    CHECK(objget_rdma_client_block() >= 8 * objget_rdma_client_size());

    /* cuFile's log goes where CUFILE_LOGFILE_PATH says, never into the current directory. */
    char log_path[] = "/tmp/objget-shim-log-XXXXXX";
    int log_fd = mkstemp(log_path);
    CHECK(log_fd >= 0);
    close(log_fd);
    setenv("CUFILE_LOGFILE_PATH", log_path, 1);

    /* Like the real library: with no device configured (no JSON at all) the client connects,
     * and registration is what fails, with the reason in cuFile's log. */
    setenv("CUFILE_ENV_PATH_JSON", "/nonexistent/objget-cufile.json", 1);
    CHECK(objget_rdma_create(&h) == OBJGET_RDMA_OK && h != NULL);
    CHECK(objget_rdma_is_connected(h) == 1);
    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_EFAIL);
    CHECK(strlen(objget_rdma_last_error()) > 0);
    check_stats(h, 0, 0);
    objget_rdma_destroy(h);
    CHECK(objget_rdma_is_connected(h) == OBJGET_RDMA_EINVAL); /* destroyed handle */
    {
        char line[256] = {0};
        FILE *f = fopen(log_path, "r");
        CHECK(f != NULL);
        CHECK(fgets(line, sizeof line, f) != NULL);
        fclose(f);
        CHECK(strstr(line, "no devices found in configuration") != NULL);
    }
    unlink(log_path);

    /* A configuration that does not parse: not connected, and registration says so. */
    char bad_path[] = "/tmp/objget-shim-bad-XXXXXX";
    int bad_fd = mkstemp(bad_path);
    CHECK(bad_fd >= 0);
    CHECK(write(bad_fd, "{\"properties\":", 14) == 14);
    close(bad_fd);
    setenv("CUFILE_ENV_PATH_JSON", bad_path, 1);
    CHECK(objget_rdma_create(&h) == OBJGET_RDMA_OK && h != NULL);
    CHECK(objget_rdma_is_connected(h) == 0);
    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_ENOTCONN);
    objget_rdma_destroy(h);
    unlink(bad_path);

    /* With a cuFile JSON that lists an RDMA device it is. */
    char json_path[] = "/tmp/objget-shim-test-XXXXXX";
    int fd = mkstemp(json_path);
    CHECK(fd >= 0);
    static const char json[] = "{\"properties\":{\"rdma_dev_addr_list\":[\"192.0.2.10\"]}}";
    CHECK(write(fd, json, sizeof json - 1) == (ssize_t)(sizeof json - 1));
    close(fd);
    setenv("CUFILE_ENV_PATH_JSON", json_path, 1);

    CHECK(objget_rdma_create(&h) == OBJGET_RDMA_OK && h != NULL);
    CHECK(objget_rdma_create(&again) == OBJGET_RDMA_OK && again == h); /* process-wide */
    CHECK(objget_rdma_is_connected(h) == 1);

    /* Registration arguments. */
    CHECK(objget_rdma_register(NULL, buf, 2 * MIB) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_register(h, NULL, 2 * MIB) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_register(h, buf, 0) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_register(h, buf, objget_rdma_max_registration() + 1) == OBJGET_RDMA_ERANGE);
    CHECK(objget_rdma_register(h, base + 1, MIB) == OBJGET_RDMA_EINVAL); /* not page-aligned */
    CHECK(strstr(objget_rdma_last_error(), "aligned") != NULL);

    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_OK);
    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_EINVAL);        /* twice */
    CHECK(objget_rdma_register(h, base + MIB, MIB) == OBJGET_RDMA_EINVAL);     /* overlaps */
    check_stats(h, 1, 0);

    /* Tokens: GET for a slice, PUT for the whole buffer. */
    CHECK(objget_rdma_token(h, buf, 65536, 4096, OBJGET_RDMA_OP_GET, &get_tok) == OBJGET_RDMA_OK);
    check_token(get_tok, base + 4096, 65536, OBJGET_RDMA_OP_GET);
    CHECK(objget_rdma_token(h, buf, 2 * MIB, 0, OBJGET_RDMA_OP_PUT, &put_tok) == OBJGET_RDMA_OK);
    check_token(put_tok, base, 2 * MIB, OBJGET_RDMA_OP_PUT);
    if (get_tok && put_tok) {
        CHECK(token_field(get_tok, 4, 6) != token_field(put_tok, 4, 6)); /* distinct qp */
        CHECK(strcmp(token_gid(get_tok) + 16, token_gid(put_tok) + 16) == 0); /* same buffer */
    }
    check_stats(h, 1, 2);

    /* Token arguments. */
    tok = (char *)1;
    CHECK(objget_rdma_token(h, buf, 8192, 2 * MIB - 4096, OBJGET_RDMA_OP_GET, &tok) ==
          OBJGET_RDMA_ERANGE); /* runs past the end */
    CHECK(tok == NULL);
    CHECK(objget_rdma_token(h, buf, 1, (size_t)-1, OBJGET_RDMA_OP_GET, &tok) == OBJGET_RDMA_ERANGE);
    /* A zero-length slice (an empty object's token) is a valid token with size 0. */
    CHECK(objget_rdma_token(h, buf, 0, 0, OBJGET_RDMA_OP_PUT, &tok) == OBJGET_RDMA_OK);
    CHECK(tok != NULL && strlen(tok) == 81 && strncmp(tok + 17, "00000000", 8) == 0);
    CHECK(objget_rdma_token_release(h, tok) == OBJGET_RDMA_OK);
    CHECK(objget_rdma_token(h, buf, 4096, 0, 7, &tok) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_token(h, buf, 4096, 0, OBJGET_RDMA_OP_GET, NULL) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_token(h, base + 4096, 4096, 0, OBJGET_RDMA_OP_GET, &tok) ==
          OBJGET_RDMA_EINVAL); /* not the start of the registration */
    CHECK(objget_rdma_token(NULL, buf, 4096, 0, OBJGET_RDMA_OP_GET, &tok) == OBJGET_RDMA_EINVAL);
    check_stats(h, 1, 2);

    /* Largest registration, on reserved address space (the simulator never touches it), and
     * the 1 GiB cap per token. */
    size_t big_size = (size_t)objget_rdma_max_registration();
    void *big = mmap(NULL, big_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(big != MAP_FAILED);
    if (big != MAP_FAILED) {
        CHECK(objget_rdma_register(h, big, big_size) == OBJGET_RDMA_OK);
        CHECK(objget_rdma_token(h, big, GIB, big_size - GIB, OBJGET_RDMA_OP_PUT, &tok) ==
              OBJGET_RDMA_OK);
        check_token(tok, (char *)big + big_size - GIB, GIB, OBJGET_RDMA_OP_PUT);
        CHECK(objget_rdma_token(h, big, GIB + 4096, 0, OBJGET_RDMA_OP_GET, &tok) ==
              OBJGET_RDMA_ERANGE);
        check_stats(h, 2, 3);
        /* Deregistering releases the buffer's outstanding token. */
        CHECK(objget_rdma_deregister(h, big) == OBJGET_RDMA_OK);
        check_stats(h, 1, 2);
        munmap(big, big_size);
    }

    /* Release and deregister. */
    CHECK(objget_rdma_token_release(h, get_tok) == OBJGET_RDMA_OK);
    CHECK(objget_rdma_token_release(h, get_tok) == OBJGET_RDMA_EINVAL); /* released already */
    CHECK(objget_rdma_token_release(h, NULL) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_token_release(h, put_tok) == OBJGET_RDMA_OK);
    check_stats(h, 1, 0);
    CHECK(objget_rdma_deregister(h, base + 4096) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_deregister(h, NULL) == OBJGET_RDMA_EINVAL);
    CHECK(objget_rdma_deregister(h, buf) == OBJGET_RDMA_OK);
    CHECK(objget_rdma_deregister(h, buf) == OBJGET_RDMA_EINVAL);
    check_stats(h, 0, 0);

    /* Destroy cleans up what is left; a new client starts empty. */
    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_OK);
    CHECK(objget_rdma_token(h, buf, 4096, 0, OBJGET_RDMA_OP_GET, &tok) == OBJGET_RDMA_OK);
    check_stats(h, 1, 1);
    objget_rdma_destroy(h);
    check_stats(h, 0, 0); /* a destroyed handle reports nothing */
    CHECK(objget_rdma_create(&h) == OBJGET_RDMA_OK);
    check_stats(h, 0, 0);
    CHECK(objget_rdma_register(h, buf, 2 * MIB) == OBJGET_RDMA_OK); /* was deregistered */
    objget_rdma_destroy(h);

    unlink(json_path);
    free(buf);
    if (failures != 0) {
        fprintf(stderr, "shim_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("shim_test: all checks passed (backend %s)\n", objget_rdma_backend());
    return 0;
}
