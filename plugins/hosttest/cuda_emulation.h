// PEM-RT host tests: just enough of CUDA's execution model to run our kernels on CPU threads.
//
// Include first (before any CUDA header) and define PEM_CUDA_EMULATION. A launch runs its blocks one
// after another; each block runs blockDim.x std::threads that share the block's __shared__ arrays
// (static in the emulated kernel) and meet at __syncthreads() on a std::barrier. Kernels that index,
// tile or synchronise wrongly give wrong results (or hang) here as on a GPU. One launch at a time.
#pragma once

#define __shared__ static
#define __launch_bounds__(...)

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

using std::max;
using std::min;

namespace pem_emulation
{

struct Block
{
    explicit Block(std::ptrdiff_t threads)
        : barrier(threads)
    {
    }
    std::barrier<> barrier;
    std::atomic<int> any{0};
};

inline thread_local uint3 tThreadIdx{};
inline thread_local uint3 tBlockIdx{};
inline dim3 gBlockDim{};
inline dim3 gGridDim{};
inline Block* gBlock = nullptr;
inline std::vector<unsigned char> gDynamicShared;

template <typename T>
T* dynamicShared()
{
    return reinterpret_cast<T*>(gDynamicShared.data());
}

inline void syncthreads()
{
    gBlock->barrier.arrive_and_wait();
}

inline int syncthreadsOr(int predicate)
{
    if (predicate)
    {
        gBlock->any.store(1);
    }
    gBlock->barrier.arrive_and_wait();
    int const result = gBlock->any.load();
    gBlock->barrier.arrive_and_wait();
    if (tThreadIdx.x == 0)
    {
        gBlock->any.store(0);
    }
    gBlock->barrier.arrive_and_wait();
    return result;
}

template <typename... Params>
struct Launch
{
    void (*kernel)(Params...);
    dim3 grid;
    dim3 block;
    size_t sharedBytes;

    template <typename... Args>
    void operator()(Args&&... args) const
    {
        std::ptrdiff_t const threads = static_cast<std::ptrdiff_t>(block.x) * block.y * block.z;
        Block state(threads);
        gBlock = &state;
        gBlockDim = block;
        gGridDim = grid;
        gDynamicShared.assign(sharedBytes + 16, 0);
        std::vector<std::thread> pool;
        for (std::ptrdiff_t t = 0; t < threads; ++t)
        {
            pool.emplace_back([&, t]() {
                tThreadIdx = uint3{static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                    static_cast<unsigned>(t / (block.x * block.y))};
                for (unsigned z = 0; z < grid.z; ++z)
                {
                    for (unsigned y = 0; y < grid.y; ++y)
                    {
                        for (unsigned x = 0; x < grid.x; ++x)
                        {
                            tBlockIdx = uint3{x, y, z};
                            kernel(args...);
                            state.barrier.arrive_and_wait(); // the block is done before the next reuses __shared__
                        }
                    }
                }
            });
        }
        for (auto& thread : pool)
        {
            thread.join();
        }
        gBlock = nullptr;
    }
};

template <typename... Params>
Launch<Params...> launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t sharedBytes)
{
    return Launch<Params...>{kernel, grid, block, sharedBytes};
}

} // namespace pem_emulation

#define threadIdx (::pem_emulation::tThreadIdx)
#define blockIdx (::pem_emulation::tBlockIdx)
#define blockDim (::pem_emulation::gBlockDim)
#define gridDim (::pem_emulation::gGridDim)
#define __syncthreads() ::pem_emulation::syncthreads()
#define __syncthreads_or(p) ::pem_emulation::syncthreadsOr(p)
