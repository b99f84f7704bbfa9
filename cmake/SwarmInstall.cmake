# `cmake --install BUILD --prefix P`: the programs and what they read, in the layout a cluster's
# module or Spack package expects (docs/install.md):
#   P/bin/swarm_pipe, P/bin/swarm_sim               the programs
#   P/libexec/swarm_pipe/bench_*                    the benchmarks (bench/*/ scripts take a build dir)
#   P/share/swarm_pipe/{jobs,scripts,slurm,docs}    job files, plot scripts, the batch script, docs
# The project's libraries are static, so nothing else is needed at run time but the system's
# MPI, HDF5, Boost, OpenBLAS, CBC (and CUDA/NCCL/cuDNN, oneDNN where built with them).
include(GNUInstallDirs)

foreach(program swarm_pipe swarm_sim)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
foreach(bench bench_balance bench_placement bench_dispatch bench_model_block bench_model_block_cuda bench_transport
              bench_compute_limit)
  if(TARGET ${bench})
    install(TARGETS ${bench} RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/swarm_pipe)
  endif()
endforeach()

set(SWARM_SHARE ${CMAKE_INSTALL_DATADIR}/swarm_pipe)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/jobs ${PROJECT_SOURCE_DIR}/scripts ${PROJECT_SOURCE_DIR}/slurm
                  ${PROJECT_SOURCE_DIR}/docs
        DESTINATION ${SWARM_SHARE} USE_SOURCE_PERMISSIONS)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${SWARM_SHARE})
