#pragma once
// Umbrella header of the Llama model library (see docs/model.md).
#include "swarm/model/client.hpp"
#include "swarm/model/config.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/model/weights.hpp"
