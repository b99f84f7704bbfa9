// swarm_model_run: greedy generation in one process, through one or several span executors.
// Used by the reference test (compares with tests/reference/llama_reference.py) and handy for
// checking a checkpoint before running the swarm:
//   swarm_model_run --model-dir D --prompt-tokens 1,2,3 --max-new-tokens 4 [--split 0,2,4] --json out.json
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "swarm/model/model.hpp"

namespace po = boost::program_options;
using namespace swarm::model;

namespace {

std::vector<int> parse_ints(const std::string& text, char separator) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, separator)) {
    if (!item.empty()) out.push_back(std::stoi(item));
  }
  return out;
}

// "1,2,3;4,5,6" -> batch 2 of length 3.
std::vector<std::int32_t> parse_prompts(const std::string& text, int& batch) {
  std::vector<std::int32_t> tokens;
  std::stringstream in(text);
  std::string sequence;
  batch = 0;
  while (std::getline(in, sequence, ';')) {
    for (const int id : parse_ints(sequence, ',')) tokens.push_back(id);
    ++batch;
  }
  return tokens;
}

std::vector<Span> parse_split(const std::string& text) {
  const std::vector<int> bounds = parse_ints(text, ',');
  std::vector<Span> spans;
  for (std::size_t i = 1; i < bounds.size(); ++i) spans.push_back({bounds[i - 1], bounds[i]});
  return spans;
}

std::unique_ptr<WeightSource> open_source(const po::variables_map& args) {
  if (args.count("model-dir")) return std::make_unique<Checkpoint>(args["model-dir"].as<std::string>());
  if (!args.count("config")) throw UsageError("give --model-dir or --config (random weights)");
  const auto config = ModelConfig::from_hf_json(args["config"].as<std::string>());
  return std::make_unique<RandomWeights>(config, args["seed"].as<std::uint64_t>());
}

int run(const po::variables_map& args) {
  const auto source = open_source(args);
  if (args.count("export")) {
    std::optional<DType> matrices;
    if (args.count("export-dtype")) matrices = parse_dtype(args["export-dtype"].as<std::string>(), "--export-dtype");
    save_checkpoint(*source, args["export"].as<std::string>(), matrices);
    std::cerr << "wrote " << source->describe() << " to " << args["export"].as<std::string>() << '\n';
  }
  int batch = 0;
  const auto prompt = parse_prompts(args["prompt-tokens"].as<std::string>(), batch);
  GreedyOptions options;
  options.max_new_tokens = args["max-new-tokens"].as<int>();
  if (args.count("eos-token-id")) options.eos_token_id = args["eos-token-id"].as<int>();
  const auto split = args.count("split") ? parse_split(args["split"].as<std::string>()) : std::vector<Span>{};
  const Backend backend = parse_backend(args["backend"].as<std::string>());
  const Generation result = generate_local(*source, backend, prompt, batch, options, split);

  for (const auto& sequence : result.tokens) {
    for (std::size_t i = 0; i < sequence.size(); ++i) std::cout << (i ? "," : "") << sequence[i];
    std::cout << '\n';
  }
  if (args.count("json")) {
    nlohmann::json out;
    out["source"] = source->describe();
    out["backend"] = std::string(to_string(backend));
    out["batch"] = result.batch;
    out["vocab_size"] = result.vocab_size;
    out["tokens"] = result.tokens;
    out["logits"] = result.logits;  // [steps, batch, vocab] flattened
    std::ofstream(args["json"].as<std::string>()) << out.dump() << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("swarm_model_run: greedy Llama generation on one process");
  desc.add_options()("help", "show this help")
      ("model-dir", po::value<std::string>(), "Hugging Face checkpoint directory (config.json + *.safetensors)")
      ("config", po::value<std::string>(), "config.json for random weights (when no --model-dir)")
      ("seed", po::value<std::uint64_t>()->default_value(0), "seed of the random weights")
      ("prompt-tokens", po::value<std::string>()->default_value("1"), "token ids, e.g. 1,2,3 ; ';' separates a batch")
      ("max-new-tokens", po::value<int>()->default_value(8), "tokens to generate")
      ("eos-token-id", po::value<int>(), "stop a sequence at this token")
      ("backend", po::value<std::string>()->default_value("cpu"), "cpu or cuda")
      ("split", po::value<std::string>(), "block boundaries of the executors, e.g. 0,2,3,6 (default: one)")
      ("json", po::value<std::string>(), "write tokens and per-step logits to this JSON file")
      ("export", po::value<std::string>(), "also save the weights as a Hugging Face checkpoint in this directory")
      ("export-dtype", po::value<std::string>(), "with --export: write the matrices in f32, bf16 or f16 (default: as stored)");
  po::variables_map args;
  try {
    po::store(po::parse_command_line(argc, argv, desc), args);
    po::notify(args);
  } catch (const po::error& e) {
    std::cerr << "swarm_model_run: " << e.what() << '\n' << desc;
    return 2;
  }
  if (args.count("help")) {
    std::cout << desc;
    return 0;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "swarm_model_run: error: " << e.what() << '\n';
    return 1;
  }
}
