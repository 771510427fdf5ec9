"""BPE tokenizers trained with HF `tokenizers` on the KJV corpus (tools/corpus_kjv.sh).

Two styles, the two that real Llama-family checkpoints ship and that engine/tokenizer.h reads:
- "byte_level": GPT-2 / Llama 3 style; ByteLevel pre-tokenizer with the GPT-2 regex, no unknown
  token, BOS added by a TemplateProcessing post-processor.
- "sentencepiece": Llama 2 / Mistral style; normalizer Prepend("▁") + Replace(" ", "▁"), no
  pre-tokenizer, BPE with byte fallback to <0xXX> tokens, the matching decoder chain.
Training is deterministic for a given corpus and settings (tokenizers breaks count ties by
lexical order), so the scripts that call this reproduce the same vocabulary.
"""
import json

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers


def _train(tokenizer, corpus_lines, vocab_size, special_tokens, initial_alphabet=()):
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=list(initial_alphabet),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus_lines, trainer=trainer)
    return tokenizer


def byte_level(corpus_lines, vocab_size, bos, eos, extra_special=()):
    """Byte-level BPE; special tokens take the first ids (bos, eos, then extra_special)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = [bos, eos, *extra_special]
    _train(tok, corpus_lines, vocab_size, specials, pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return tok


def sentencepiece(corpus_lines, vocab_size, unk="<unk>", bos="<s>", eos="</s>"):
    """SentencePiece-style BPE laid out like Llama 2's tokenizer.json: ids 0-2 are <unk>, <s>,
    </s>; ids 3-258 the byte-fallback tokens <0x00>..<0xFF>; merged pieces follow."""
    specials = [unk, bos, eos]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    # Train on words split like SentencePiece does ("▁word"), so no merge crosses a word start;
    # the saved tokenizer then needs no pre-tokenizer, like Llama 2's.
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    _train(trainer_tok, corpus_lines, vocab_size - len(byte_tokens), specials)
    trained = json.loads(trainer_tok.to_str())["model"]

    vocab = {t: i for i, t in enumerate(specials + byte_tokens)}
    for token, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]],
                   unk_token=unk, byte_fallback=True, fuse_unk=True)
    )
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
    )
    return tok


def save(tok, folder, bos, eos, chat_template, unk=None, model_max_length=None):
    """Writes tokenizer.json and a tokenizer_config.json that transformers' fast tokenizer reads."""
    tok.save(f"{folder}/tokenizer.json")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "clean_up_tokenization_spaces": False,
        "chat_template": chat_template,
    }
    if unk is not None:
        config["unk_token"] = unk
    if model_max_length is not None:
        config["model_max_length"] = model_max_length
    with open(f"{folder}/tokenizer_config.json", "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]
