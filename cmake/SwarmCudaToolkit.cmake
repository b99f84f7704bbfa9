# Enables CUDA when the toolkit (nvcc, cudart, cuBLAS) is found, unless SWARM_CUDA is OFF; sets
# SWARM_CUDA_TOOLKIT ON then. Shared by cmake/SwarmCuda.cmake (which also needs NCCL and cuDNN
# for the job) and tests/gpu (the model library alone).
set(SWARM_CUDA_TOOLKIT OFF)
if(NOT SWARM_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES ${SWARM_CUDA_ARCHITECTURES})
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND)
      set(CMAKE_CUDA_STANDARD 17)   # CMake 3.25 knows no CUDA 20 dialect
      set(CMAKE_CUDA_STANDARD_REQUIRED ON)
      set(SWARM_CUDA_TOOLKIT ON)
    endif()
  endif()
endif()
