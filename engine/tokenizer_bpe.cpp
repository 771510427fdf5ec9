#include "engine/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "engine/error.h"
#include "engine/tokenizer_unicode.h"
#include "loader/json_text.h"

namespace nibble {

BpeModel::BpeModel(const nlohmann::json& model, const std::string& origin) {
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") fail(origin + ": model type '" + type + "' is not supported (only BPE)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      fail(origin + ": BPE " + key + " is not supported");
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() > 0)
    fail(origin + ": BPE dropout is not supported");

  const auto& vocab = model.at("vocab");
  if (!vocab.is_object()) fail(origin + ": BPE vocab is not an object");
  // Vocabularies are dense; the bound keeps a hostile file from making us allocate gigabytes.
  const int64_t max_id = 2 * int64_t(vocab.size()) + 1024;
  for (const auto& [token, id_json] : vocab.items()) {
    const int64_t id = json_integer(id_json, origin + ": vocab id of '" + token + "'");
    if (id < 0 || id >= max_id) fail(origin + ": vocab id " + std::to_string(id) + " out of range");
    vocab_.emplace(token, int(id));
    if (size_t(id) >= id_to_token_.size()) id_to_token_.resize(size_t(id) + 1);
    id_to_token_[size_t(id)] = token;
  }

  const auto& merges = model.at("merges");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    std::string left, right;
    if (merges[rank].is_string()) {  // "a b", exactly one space as HF requires
      const std::string text = merges[rank].get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
        fail(origin + ": merge '" + text + "' is not two tokens");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else {  // ["a", "b"]
      if (!merges[rank].is_array() || merges[rank].size() != 2)
        fail(origin + ": merge " + merges[rank].dump() + " is not a pair");
      left = merges[rank][0].get<std::string>();
      right = merges[rank][1].get<std::string>();
    }
    const int a = id_of(left), b = id_of(right), merged = id_of(left + right);
    if (a < 0 || b < 0 || merged < 0)
      fail(origin + ": merge '" + left + " " + right + "' uses a token missing from the vocab");
    merges_.emplace(pair_key(a, b), Merge{int(rank), merged});  // the first (lowest) rank wins
  }

  byte_fallback_ = model.value("byte_fallback", false);
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    unk_id_ = id_of(model["unk_token"].get<std::string>());
    if (unk_id_ < 0)
      fail(origin + ": unk_token '" + model["unk_token"].get<std::string>() +
           "' is not in the vocab");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids_[size_t(b)] = id_of(name);
  }
}

int BpeModel::id_of(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int id = id_of(word); id >= 0) {
      ids.push_back(id);
      return;
    }
  }
  std::vector<int> symbols;
  bool last_was_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    unicode::next_codepoint(word, i);
    const std::string_view ch = word.substr(start, i - start);
    if (int id = id_of(ch); id >= 0) {
      symbols.push_back(id);
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : ch) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : ch) symbols.push_back(byte_ids_[b]);
        last_was_unk = false;
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // HF drops the character when there is no unk token
    if (!(fuse_unk_ && last_was_unk)) symbols.push_back(unk_id_);
    last_was_unk = true;
  }
  merge_all(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

// HF's Word::merge_all: a min-heap of candidate pairs by (rank, position) over a linked list of
// symbols; entries made stale by an earlier merge are recognized and skipped. O(n log n).
void BpeModel::merge_all(std::vector<int>& symbols) const {
  const int n = int(symbols.size());
  if (n < 2) return;
  std::vector<int> prev(symbols.size()), next(symbols.size());
  std::vector<bool> alive(symbols.size(), true);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int rank, pos, merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto consider = [&](int pos) {
    if (next[pos] < 0) return;
    auto it = merges_.find(pair_key(symbols[pos], symbols[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.merged_id});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int pos = top.pos;
    if (!alive[pos] || next[pos] < 0) continue;
    const int right = next[pos];
    auto it = merges_.find(pair_key(symbols[pos], symbols[right]));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;  // stale
    symbols[pos] = top.merged_id;
    alive[right] = false;
    next[pos] = next[right];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    if (prev[pos] >= 0) consider(prev[pos]);
    consider(pos);
  }
  std::vector<int> out;
  for (int i = 0; i >= 0; i = next[i]) out.push_back(symbols[i]);
  symbols = std::move(out);
}

}  // namespace nibble
