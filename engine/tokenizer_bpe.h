// The BPE model of tokenizer.json: a word is split into characters (unknown ones into <0xAB> byte
// tokens when byte_fallback), then adjacent pairs are merged lowest rank first, as HF does.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nibble {

class BpeModel {
 public:
  BpeModel(const nlohmann::json& model, const std::string& origin);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int>& ids) const;

  int id_of(std::string_view token) const;  // -1 if absent
  // All ids in [0, size()) with their entry; ids the vocabulary skips map to "".
  const std::vector<std::string>& tokens() const { return id_to_token_; }

 private:
  struct Merge {
    int rank;
    int merged_id;
  };
  static uint64_t pair_key(int left, int right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  void merge_all(std::vector<int>& symbols) const;

  std::unordered_map<std::string, int> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int, 256> byte_ids_;  // the <0xAB> tokens, -1 where absent
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
};

}  // namespace nibble
