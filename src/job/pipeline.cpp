// swarm_pipe's MPI edge: the world, the options, the backend and transport every rank agrees
// on, and the fabric; then the job itself runs on that fabric (rank.cpp), the same code the
// in-process tests run. Design: docs/job.md.
#include "swarm/job/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <optional>

#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/fabric.hpp"
#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/transport.hpp"
#include "swarm/study/dispatch_study.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/rank.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/sim/sim_job.hpp"
#include "swarm/version.hpp"

namespace po = boost::program_options;

namespace swarm::job {
namespace {

std::atomic<bool> g_terminate{false};
extern "C" void on_terminate(int) { g_terminate = true; }

}  // namespace

int run_swarm_pipe(int argc, char** argv) {
  comm::MpiWorld world(argc, argv);
  const comm::Communicator& comm = world.comm();
  const std::vector<std::string> args(argv + 1, argv + argc);
  const po::options_description all = schema();
  const std::string tables[] = {"class"};
  po::variables_map pre;
  std::optional<std::string> error;
  try {
    pre = preview_command_line(args, all, tables);
  } catch (const po::error& e) {
    error = std::string("command line: ") + e.what();
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  if (pre.count("help")) {
    if (comm.rank() == 0) {
      std::cout << "swarm_pipe " << kVersion
                << ": Petals-style pipeline inference over MPI ranks with epoch balancing\n"
                   "usage: mpirun -n N swarm_pipe --job FILE.ini [--trace OUT.h5] [--section.key VALUE ...]\n"
                   "       mpirun -n N swarm_pipe [--job FILE.ini] --workload.prompts IN.jsonl --workload.outputs "
                   "OUT.jsonl\n"
                   "       mpirun -n N swarm_pipe --model-dir DIR --prompt-tokens 5,17,42 --max-new-tokens 4 "
                   "--dump-output OUT.h5\n\n"
                << all
                << "\nDevice classes: [class.NAME] with compute_factor, link_mbps, latency_ms, span,\n"
                   "slowdown_sigma, slowdown_from, slowdown_factor (docs/job.md).\n";
    }
    return 0;
  }
  std::optional<JobFile> file;
  std::optional<JobConfig> config;
  try {
    if (pre.count("job") && pre["job"].as<std::string>().empty()) throw ConfigError("command line: --job is empty");
    const std::string path = pre.count("job") ? pre["job"].as<std::string>() : std::string();
    // The simulator's jobs share sections with this job's: say which program a file is for.
    const OtherJobKind others[] = {
        {sim::job_schema(), "a simulator job", "swarm_sim --job FILE --trace OUT.h5"},
        {dispatch_job_schema(), "a dispatch-study job", "swarm_sim dispatch --job FILE --trace OUT.h5"}};
    file.emplace(read_job_file(path, all, tables, args, others));
    config.emplace(load_config(*file, comm.size()));
    // Every output against every input (job file, prompts, the checkpoint's files) and each other.
    refuse_outputs_over_inputs(
        {{"--trace", config->trace},
         {"--dump-output", config->generate ? config->generate->dump_output : std::string()},
         {"workload.outputs", config->workload.outputs}},
        {{"the job file", pre.count("job") ? pre["job"].as<std::string>() : std::string()},
         {"workload.prompts", config->workload.prompts},
         {"model.dir", config->model_dir}});
    // A trace or dump left by an earlier run at these paths must not pass for this run's output
    // if this run fails before writing its own (the outputs were just checked to be no input).
    if (comm.rank() == 0) {
      for (const std::string& out : {config->trace, config->generate ? config->generate->dump_output : std::string()}) {
        std::error_code ec;
        if (!out.empty() && std::filesystem::is_regular_file(out, ec)) std::filesystem::remove(out, ec);
      }
    }
    if (!pre.count("job") && !config->generate && config->workload.prompts.empty()) {
      throw ConfigError("command line: --job FILE.ini is required (or --prompt-tokens for generation, or --workload.prompts); see --help");
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  if (comm.rank() == 0) {
    for (const std::string& note : config->notes) std::cerr << "swarm_pipe: note: " << note << '\n';
  }
  world.set_timeout(std::chrono::duration<double>(config->comm_timeout));

  // Backend and transport: the GPU path only when every rank has its own GPU.
  const int devices = comm::device_count();
  const bool cpu_only = config->backend == model::Backend::cpu;
  const int have = cpu_only ? 0 : (model::cuda_available() ? 1 : 0);
  const auto gpus = comm::allgather_values(comm, have);
  const bool every_gpu = std::all_of(gpus.begin(), gpus.end(), [](int x) { return x == 1; });
  RankOptions options;
  options.backend = config->backend.value_or(every_gpu ? model::Backend::cuda : model::Backend::cpu);
  comm::TransportKind kind = comm::TransportKind::mpi;
  if (config->transport) {
    kind = *config->transport;
  } else if (options.backend == model::Backend::cuda) {
    kind = comm::default_transport_kind(world.layout(), devices);
  }
  options.device = devices > 0 ? world.layout().device_for(devices) : 0;
  options.transport = kind;
  options.terminate = &g_terminate;
  std::unique_ptr<comm::Transport> transport;
  try {
    if (config->backend == model::Backend::cuda && have == 0) {
      file->fail("model.backend", "cuda", "rank " + std::to_string(comm.rank()) +
                                              " sees no usable GPU (or the build has no CUDA backend)");
    }
    if (kind == comm::TransportKind::nccl && options.backend != model::Backend::cuda) {
      file->fail("run.transport", "nccl", "needs the cuda backend on every rank (model.backend)");
    }
    if (options.backend == model::Backend::cuda) comm::set_device(options.device);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  try {
    transport = comm::make_transport(kind, comm, options.device, {std::chrono::duration<double>(config->comm_timeout)});
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  comm::FabricOptions fabric_options;
  fabric_options.max_header_bytes = job_header_bytes(*config, comm.size());
  fabric_options.timeout = std::chrono::duration<double>(config->comm_timeout);
  fabric_options.rows = kind == comm::TransportKind::nccl ? comm::MemoryLocation::device : comm::MemoryLocation::host;
  const std::unique_ptr<comm::Fabric> fabric = comm::make_mpi_fabric(comm, std::move(transport), fabric_options);
  std::signal(SIGTERM, on_terminate);
  std::signal(SIGINT, on_terminate);
  return run_rank(*fabric, *config, *file, options);
}

}  // namespace swarm::job
