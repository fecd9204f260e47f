# objget_vm: a tiny test-only Node addon over Linux process_vm_readv / process_vm_writev.
# The S3-over-RDMA test gateway (scripts/lib/rdma-gateway.mjs) uses it to do the "remote memory
# access" of a simulated RDMA NIC. Built on demand with `npm run build:vm` (package.json keeps
# "gypfile": false so npm install never builds it). Output: build/Release/objget_vm.node.
{
  'targets': [
    {
      'target_name': 'objget_vm',
      'sources': ['native/vm/vm.cc'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      'defines': ['NAPI_VERSION=8'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra'],
      'cflags_cc!': ['-std=gnu++17', '-std=gnu++20', '-fno-exceptions'],
      'xcode_settings': {
        'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
        'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
      },
    },
  ],
}
