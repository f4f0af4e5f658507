// PEM-RT host tests: the ModulatedDeformConv2d kernel and launcher, compiled for the CPU emulation
// (hosttest/cuda_emulation.h). Part of libpem_plugins_hostref.so only.
#define PEM_CUDA_EMULATION 1
#include "cuda_emulation.h"

#include "../modulated_deform_conv/deform_conv_kernel.cu"
