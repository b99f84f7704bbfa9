#pragma once
// Batch inference from a file: the prompts (JSON Lines, one object per line) and the answers
// (JSON Lines in input order, written whole or not at all).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace swarm::job {

struct Prompt {
  std::string id;  // the line's "id" as JSON text (a string or an integer), echoed back as given
  std::vector<std::int32_t> tokens;
  int max_new_tokens = 0;
  bool stop_at_eos = true;
};

/// Reads `file`: one JSON object a line, {"id": "...", "tokens": [ids...], "max_new_tokens": N}
/// with an optional "stop_at_eos" (default true); blank lines are skipped. Throws ConfigError
/// "FILE:LINE: ..." naming the field and value for bad JSON, a missing, unknown or mistyped
/// field, a token outside [0, vocab_size), an empty prompt, max_new_tokens < 1, a prompt that
/// with its new tokens passes `max_positions`, a duplicate id, or no prompt at all.
[[nodiscard]] std::vector<Prompt> read_prompts(const std::filesystem::path& file, int vocab_size, int max_positions);

/// Writes one line {"id": ..., "tokens": [...]} per prompt, in input order, to a temporary file
/// beside `file` and renames it over `file` once complete and flushed, so that readers see the
/// whole answer or no file. Throws std::runtime_error (removing the temporary) when any write
/// fails, e.g. a full disk.
void write_answers(const std::filesystem::path& file, const std::vector<Prompt>& prompts,
                   const std::vector<std::vector<std::int32_t>>& answers);

}  // namespace swarm::job
