// PEM-RT PrototypeSelection: CUDA launchers (no TensorRT headers here).
//
// features [B, N, C] and queries [B, Q, C] share the element type T, mask_logits [B, Q, N] has type M
// (each float or __half); prototypes [B, Q, C] has type T. Scores accumulate in fp32.
#pragma once

#include "prototype_selection_math.cuh"

#include <cuda_runtime_api.h>

namespace pem
{

//! Bytes of device workspace one call needs (pem::ps::workspaceSize): O(B * heads * Q), independent of N.
size_t prototypeSelectionWorkspaceSize(PemPsShape const& shape);

//! Enqueue prototypes = PrototypeSelection(features, queries, maskLogits) on `stream`.
//! `indices` is optional (may be null): int32 [B, heads, Q], the selected token per head and query.
//! Returns cudaErrorInvalidValue for a bad shape or a too small workspace, else cudaGetLastError().
template <typename T, typename M>
cudaError_t launchPrototypeSelection(PemPsShape const& shape, T const* features, T const* queries,
    M const* maskLogits, T* prototypes, int32_t* indices, void* workspace, size_t workspaceBytes, cudaStream_t stream);

} // namespace pem

extern "C"
{
    __attribute__((visibility("default"))) size_t pem_prototype_selection_workspace_size(PemPsShape const* shape);

    //! C ABI of the launcher (GPU tests, benchmark): dtypes are PEM_FLOAT32 or PEM_FLOAT16.
    __attribute__((visibility("default"))) cudaError_t pem_prototype_selection(int32_t dtype, int32_t maskDtype,
        PemPsShape const* shape, void const* features, void const* queries, void const* maskLogits,
        void* prototypes, int32_t* indices, void* workspace, size_t workspaceBytes, cudaStream_t stream);
}
