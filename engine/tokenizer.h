// Tokenizers read from Hugging Face `tokenizer.json` (+ `tokenizer_config.json`), no Python:
// SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral) and byte-level BPE with
// regex pre-tokenization (Llama 3, Qwen2, GPT-2, SmolLM).
#pragma once
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nibble {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json.
  static Tokenizer from_folder(const std::filesystem::path& dir);
  // From the two files' text (tokenizer_config may be empty); `origin` names them in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                             const std::string& origin);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Special tokens written in the text (e.g. "<|eot_id|>") are matched as such. With
  // add_special, BOS/EOS are added as the tokenizer's post-processor says (HF add_special_tokens).
  std::vector<int> encode(std::string_view text, bool add_special = true) const;
  // Decodes ids to UTF-8; special tokens are dropped when skip_special.
  std::string decode(std::span<const int> ids, bool skip_special = false) const;
  std::string token_text(int id) const;  // the vocabulary entry, as stored

  int vocab_size() const;
  int bos_id() const;  // -1 if none
  int eos_id() const;  // -1 if none
  bool is_special(int id) const;
  int token_id(std::string_view token) const;  // -1 if absent

  // Streaming decoder: push ids one at a time; returns the text that became complete (a
  // multi-byte character split across tokens is returned once it is whole). The pieces add up
  // to decode(all ids, skip_special); each push decodes only a short window of recent ids.
  class Stream {
   public:
    explicit Stream(const Tokenizer& t, bool skip_special = false)
        : tok_(&t), skip_special_(skip_special) {}
    std::string push(int id);
    std::string flush();  // whatever is left, invalid bytes replaced; ends the stream
   private:
    const Tokenizer* tok_;
    bool skip_special_;
    std::vector<int> ids_;  // the window: context_ ids already returned, then pending ones
    size_t context_ = 0;
    size_t emitted_ = 0;  // bytes of decode(ids_) already returned
  };

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble
