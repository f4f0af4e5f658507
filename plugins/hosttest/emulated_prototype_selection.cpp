// PEM-RT host tests: the PrototypeSelection kernels and launcher, compiled for the CPU emulation
// (hosttest/cuda_emulation.h). Part of libpem_plugins_hostref.so only.
#define PEM_CUDA_EMULATION 1
#include "cuda_emulation.h"

#include "../prototype_selection/prototype_selection_kernel.cu"
