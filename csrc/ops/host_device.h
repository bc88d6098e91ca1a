// CSL_HOST_DEVICE: marks the scalar helpers of the *_math.h headers that the
// CPU (.cpp) and CUDA (.cu) epilogues share. Defined here only.
#pragma once

#if defined(__CUDACC__)
#define CSL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CSL_HOST_DEVICE inline
#endif
