/*
 * Simulated cuobjclient.h: the class API of NVIDIA cuObject's libcuobjclient, for tests only.
 *
 * Same type, enum, struct and method names and signatures as NVIDIA's header, so the shim builds
 * unchanged against either. Behind the API nothing touches a NIC: registrations are bookkeeping,
 * and tokens carry the client's own address and pid so that the project's test gateway can move
 * the bytes with process_vm_readv / process_vm_writev. See native/README.md for the token layout.
 */
#ifndef OBJGET_SIM_CUOBJCLIENT_H
#define OBJGET_SIM_CUOBJCLIENT_H

#include <cstddef>
#include <sys/types.h> /* ssize_t, loff_t */

/* glibc declares loff_t only under _GNU_SOURCE / _DEFAULT_SOURCE (g++ always defines the first). */
#if defined(__GLIBC__) && !defined(__USE_MISC)
typedef __loff_t loff_t;
#endif

/* From cufile.h in the real SDK: how a callback receives the descriptor. */
typedef struct cufileRDMAInfo {
    int version;
    int desc_len;
    const char *desc_str;
} cufileRDMAInfo_t;

typedef enum cuObjErr_enum { CU_OBJ_SUCCESS = 0, CU_OBJ_FAIL = 1 } cuObjErr_t;

typedef enum cuObjProto_enum { CUOBJ_PROTO_RDMA_DC_V1 = 1001, CUOBJ_PROTO_MAX } cuObjProto_t;

typedef enum cuObjOpType_enum { CUOBJ_GET = 0, CUOBJ_PUT = 1, CUOBJ_INVALID = 9999 } cuObjOpType_t;

typedef enum cuObjMemoryType_enum {
    CUOBJ_MEMORY_SYSTEM = 0,
    CUOBJ_MEMORY_CUDA_MANAGED = 1,
    CUOBJ_MEMORY_CUDA_DEVICE = 2,
    CUOBJ_MEMORY_UNKNOWN = 3,
    CUOBJ_MEMORY_INVALID = 4 /* in NVIDIA's header; the simulator never returns it */
} cuObjMemoryType_t;

typedef struct CUObjIOOps {
    ssize_t (*get)(const void *handle, char *ptr, size_t size, loff_t offset,
                   const cufileRDMAInfo_t *info);
    ssize_t (*put)(const void *handle, const char *ptr, size_t size, loff_t offset,
                   const cufileRDMAInfo_t *info);
} CUObjOps_t;

class cuObjClient {
  public:
    /* Connected unless CUFILE_ENV_PATH_JSON (default /etc/cufile.json) cannot be parsed, as
     * with the real library; registration fails when properties.rdma_dev_addr_list is empty.
     * OBJGET_RDMA_SIM_HANG=1 makes construction block forever. */
    cuObjClient(CUObjOps_t &ops, cuObjProto_t proto = CUOBJ_PROTO_RDMA_DC_V1);
    cuObjClient(const cuObjClient &) = delete;
    cuObjClient &operator=(const cuObjClient &) = delete;
    ~cuObjClient();

    cuObjErr_t cuMemObjGetDescriptor(void *ptr, size_t size);
    cuObjErr_t cuMemObjPutDescriptor(void *ptr);
    ssize_t cuMemObjGetMaxRequestCallbackSize(void *ptr);
    cuObjErr_t cuMemObjGetRDMAToken(void *ptr, size_t size, size_t buffer_offset,
                                    cuObjOpType_t operation, char **desc_str_out);
    cuObjErr_t cuMemObjPutRDMAToken(char *desc_str);
    /* The callback pattern is not simulated: both return -1. */
    ssize_t cuObjGet(void *ctx, void *ptr, size_t size, loff_t offset = 0, loff_t buf_offset = 0);
    ssize_t cuObjPut(void *ctx, void *ptr, size_t size, loff_t offset = 0, loff_t buf_offset = 0);
    bool isConnected(void);
    static void *getCtx(const void *handle);
    static cuObjMemoryType_t getMemoryType(const void *ptr);

  private:
    struct Impl;
    Impl *impl_;
};

#endif /* OBJGET_SIM_CUOBJCLIENT_H */
