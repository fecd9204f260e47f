/*
 * objget_rdma: a C ABI over NVIDIA cuObject's cuObjClient (manual-token pattern).
 *
 * The Rust engine loads libobjget_rdma.so with dlopen the first time RDMA is asked for; the Node
 * addon never links libcuobjclient, so it loads on every machine. Every function catches C++
 * exceptions at the boundary and answers with an integer status; after a failure,
 * objget_rdma_last_error() describes it (thread-local, valid until the next call on the thread).
 *
 * Calls on the one process-wide client are serialized inside the shim: whether cuObjClient may
 * be used from several threads at once is not documented.
 */
#ifndef OBJGET_RDMA_H
#define OBJGET_RDMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OBJGET_RDMA_ABI_VERSION 2

/* Status codes. */
#define OBJGET_RDMA_OK 0
#define OBJGET_RDMA_EINVAL -1     /* a bad argument (null handle, zero size, unaligned, ...) */
#define OBJGET_RDMA_EFAIL -2      /* the library answered CU_OBJ_FAIL */
#define OBJGET_RDMA_ENOTCONN -3   /* the client is not connected */
#define OBJGET_RDMA_ENOMEM -4     /* allocation failed */
#define OBJGET_RDMA_EEXCEPTION -5 /* the library threw */
#define OBJGET_RDMA_ERANGE -6     /* a size or slice beyond what the library allows */

/* Operation a token is minted for (cuObjOpType_t). */
#define OBJGET_RDMA_OP_GET 0
#define OBJGET_RDMA_OP_PUT 1

/* Memory types (cuObjMemoryType_t). */
#define OBJGET_RDMA_MEMORY_SYSTEM 0
#define OBJGET_RDMA_MEMORY_CUDA_MANAGED 1
#define OBJGET_RDMA_MEMORY_CUDA_DEVICE 2
#define OBJGET_RDMA_MEMORY_UNKNOWN 3

typedef struct objget_rdma objget_rdma; /* opaque */

/* OBJGET_RDMA_ABI_VERSION of the shim. The loader refuses a shim of another version. */
int objget_rdma_abi_version(void);

/* "sdk" when built against NVIDIA's cuobjclient.h, "simulator" when built against the project's
 * simulated library (tests only). */
const char *objget_rdma_backend(void);

/* Largest registration the library accepts, in bytes (4 GiB - 64 KiB). */
uint64_t objget_rdma_max_registration(void);

/* The cuobjclient.h the shim was compiled against, sizeof(cuObjClient) by that header, and the
 * size of the block the client is constructed in (rounded up generously, so that a library whose
 * class is larger than the header says cannot write past it). */
const char *objget_rdma_header(void);
uint64_t objget_rdma_client_size(void);
uint64_t objget_rdma_client_block(void);

/* Create the process-wide client (manual-token pattern: callbacks that fail if ever called).
 * A second call returns the same client. */
int objget_rdma_create(objget_rdma **out);

/* Destroy the client: deregisters what is still registered, releases outstanding tokens. */
void objget_rdma_destroy(objget_rdma *h);

/* 1 when connected, 0 when not, < 0 on error. */
int objget_rdma_is_connected(objget_rdma *h);

/* Register / deregister host memory (page-aligned, dedicated; at most max_registration bytes).
 * Deregistration takes the same start address and releases that buffer's outstanding tokens. */
int objget_rdma_register(objget_rdma *h, void *ptr, size_t size);
int objget_rdma_deregister(objget_rdma *h, void *ptr);

/* Mint a token for `size` bytes at `buffer_offset` within the registration starting at `ptr`
 * (at most 1 GiB, what a server moves in one request; a larger or out-of-bounds slice is ERANGE).
 * *token_out is a NUL-terminated string owned by the library until objget_rdma_token_release. */
int objget_rdma_token(objget_rdma *h, void *ptr, size_t size, size_t buffer_offset, int op,
                      char **token_out);
int objget_rdma_token_release(objget_rdma *h, char *token);

/* Memory type of a pointer (OBJGET_RDMA_MEMORY_*). */
int objget_rdma_memory_type(const void *ptr);

/* What the shim holds now: live registrations and tokens minted but not released. */
void objget_rdma_stats(objget_rdma *h, uint64_t *registrations, uint64_t *tokens);

/* The message of this thread's last failure ("" if none). */
const char *objget_rdma_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* OBJGET_RDMA_H */
