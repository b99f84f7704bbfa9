#pragma once
// The dispatch study's job file: the schema (keys, types, defaults, help) and its translation
// into a validated StudyConfig. Every rejected value names the file, the key and the value.
#include <boost/program_options.hpp>

#include "swarm/study/dispatch_study.hpp"
#include "swarm/config/job_file.hpp"

namespace swarm::study {

[[nodiscard]] boost::program_options::options_description job_schema();

/// Help text for the [class.NAME] tables (their keys are not in the schema).
[[nodiscard]] const char* class_help();

/// Builds and validates the config; throws ConfigError.
[[nodiscard]] StudyConfig load_config(const JobFile& job);

}  // namespace swarm::study
