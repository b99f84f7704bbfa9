#pragma once
// swarm_sim's job file: the schema (keys, types, defaults, help) and its translation into a
// validated SimConfig. Every rejected value names the file, the key and the value.
#include <boost/program_options.hpp>

#include "swarm/config/job_file.hpp"
#include "swarm/sim/simulator.hpp"

namespace swarm::sim {

[[nodiscard]] boost::program_options::options_description job_schema();

/// The keys of a [class.NAME] device table, for messages.
inline constexpr const char* kDeviceKeys =
    "share, span, block_rps, bandwidth_mbps, relay_fraction, load_seconds_per_block, compute_jitter, "
    "speed_drift, leave_at";

/// Parses key `field` (raw text `raw`) of table [class.NAME] into `device`, checking its value
/// against a model of `blocks` blocks; returns false when `field` is not a device key (tables
/// that extend the device, like the dispatch study's, handle their own keys then).
bool parse_device_key(const JobFile& job, const std::string& name, const std::string& field, const std::string& raw,
                      int blocks, DeviceClass& device);

/// Parses a schedule key "TIME NAME, TIME NAME, ..." (e.g. "600 a100, 900 t4") into (time, name)
/// pairs, times in [0, limit]; `limit_key` names the key that sets the limit, for messages.
[[nodiscard]] std::vector<std::pair<double, std::string>> parse_schedule(const JobFile& job, const std::string& key,
                                                                         double limit, const std::string& limit_key);

/// Builds and validates the config; throws ConfigError.
[[nodiscard]] SimConfig load_config(const JobFile& job);

}  // namespace swarm::sim
