#pragma once
// swarm_sim's job file: the schema (keys, types, defaults, help) and its translation into a
// validated SimConfig. Every rejected value names the file, the key and the value.
#include <boost/program_options.hpp>

#include "swarm/job_file.hpp"
#include "swarm/sim.hpp"

namespace swarm::sim {

[[nodiscard]] boost::program_options::options_description job_schema();

/// Builds and validates the config; throws ConfigError.
[[nodiscard]] SimConfig load_config(const JobFile& job);

}  // namespace swarm::sim
