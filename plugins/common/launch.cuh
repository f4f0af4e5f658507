// PEM-RT: kernel launch and dynamic shared memory, spelled so the same kernel source also runs on the CPU.
//
// nvcc: PEM_LAUNCH(k, grid, block, bytes, stream)(args...) is k<<<grid, block, bytes, stream>>>(args...).
// PEM_CUDA_EMULATION (the host test library only): hosttest/cuda_emulation.h runs every block of the
// launch on CPU threads with real barriers, so the kernels' indexing, tiling and synchronisation are
// exercised by the host tests on machines without a GPU.
#pragma once

#if defined(PEM_CUDA_EMULATION)
#define PEM_LAUNCH(kernel, grid, block, sharedBytes, stream)                                                          \
    (static_cast<void>(stream), ::pem_emulation::launch(kernel, grid, block, sharedBytes))
#define PEM_DYNAMIC_SHARED(type, name) type* const name = ::pem_emulation::dynamicShared<type>()
#else
#define PEM_LAUNCH(kernel, grid, block, sharedBytes, stream) kernel<<<grid, block, sharedBytes, stream>>>
#define PEM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif
