#!/usr/bin/env python3
"""Writes tests/fixtures/models/{llama-gqa,mistral-swa,llama3-rope}: tiny random-weight Hugging Face
checkpoints (save_pretrained) plus what HF transformers computes for them in float32 on the CPU,
so our engine can be checked against the reference implementation:

  llama-gqa    LlamaForCausalLM, GQA (4 heads / 2 KV heads), bf16 weights, byte-level BPE.
  mistral-swa  MistralForCausalLM, sliding_window 8 (shorter than the prompt), head_dim 32 given
               explicitly (hidden/heads would be 16), f16 weights in 2+ safetensors shards,
               SentencePiece-style BPE with byte fallback, a [INST] chat template.
  llama3-rope  LlamaForCausalLM, llama3 rope scaling with original_max_position_embeddings 64 (so
               it changes every position), rope_theta 500000, MQA (1 KV head), tied embeddings, f32.

Every matrix's in_features is a multiple of 64 (the 4-bit block size); some out_features are not
(vocab 509, KV dims 32/64). Weights are N(0, 0.02) and norm weights 1 + N(0, 0.1): a realistic
spread with no symmetry that could hide an indexing bug.

llama-gqa and llama3-rope keep config.json in the layout of Hub checkpoints written by
transformers 4 (rope_theta, rope_scaling, torch_dtype); mistral-swa keeps what transformers 5
writes (rope_parameters, dtype). transformers reads both; so must we.

Each folder gets reference.json (+ reference_logits.bin: little-endian float32, row-major
[prompt + 16 greedy tokens, vocab]). tests/fixtures/models/README.md lists the keys.

Usage: tools/corpus_kjv.sh && python3 tools/make_fixture_models.py  (CPU, ~1 minute)
"""
import json
import os
import shutil
import sys

import numpy as np
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, MistralConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kjv_tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")
CORPUS = os.path.join(ROOT, ".dev", "kjv.txt")
SEED = 1234
NEW_TOKENS = 16
MIN_MARGIN = 0.01  # of the greedy winner's logit over the runner-up
PROMPT = "And God said, Let there be light: and there was light. And God saw the light,"

CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
INST = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)
CHAT_MESSAGES = [
    {"role": "user", "content": "Who made the light?"},
    {"role": "assistant", "content": "God made the light."},
    {"role": "user", "content": "And the darkness?"},
]
# Strings that exercise the tokenizers' corners: leading/multiple spaces, newlines, digits,
# contractions, punctuation runs, non-ASCII (byte fallback), and special tokens written in text.
TOKENIZER_CASES = [
    "In the beginning God created the heaven and the earth.",
    " Leading space, and  two  spaces;\nnew line\n\n\ttab.",
    "Verse 3:16 hath 1234567 numbers, and they're the LORD's words!?",
    "Zoë said: naïve café — “quoted” ✓ 日本語 🙂",
    "<s>already has a bos</s> and <|im_start|>user\nhi<|im_end|>",
    "",
]


def random_init(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif "q_proj" in name or "k_proj" in name:
                # Peaked attention, as in trained models: with 0.02 every position would get
                # nearly the same weight and position bugs (RoPE, windows, masks) would hide.
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.02 * noise)


def to_transformers4_layout(folder):
    """Rewrites config.json the way transformers 4 wrote it (and most Hub checkpoints are)."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope["rope_type"] == "default" else rope
    cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w") as f:
        json.dump(dict(sorted(cfg.items())), f, indent=2)
        f.write("\n")


def load(folder, **overrides):
    return AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", **overrides
    ).eval()


def reference(folder, feature_off):
    """Everything HF transformers computes for the saved checkpoint, in float32 on the CPU.
    `feature_off` (or None) are config overrides that disable the feature this fixture is
    about; the logits must then change, or the fixture would not test it."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = load(folder)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        gen = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            eos_token_id=[],  # no stop token, so all NEW_TOKENS come (None means "the model's")
            pad_token_id=0,
        )
        out = gen[0, ids.shape[1] :].tolist()
        assert len(out) == NEW_TOKENS
        # generate() used the KV cache; one plain forward over the whole sequence must agree,
        # which also shows that no logits processor changed the greedy picks.
        logits = model(gen).logits[0].float()
        top2 = logits[ids.shape[1] - 1 : -1].topk(2, dim=-1)
        assert top2.indices[:, 0].tolist() == out, "cached and uncached greedy picks differ"
        margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
        feature_change = None
        if feature_off is not None:
            feature_change = (load(folder, **feature_off)(gen).logits[0] - logits).abs().max().item()
            assert feature_change > 0.05, f"{feature_off} barely changes the logits ({feature_change})"

    logits.numpy().astype("<f4").tofile(os.path.join(folder, "reference_logits.bin"))
    chat_text = tok.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
    return {
        "prompt": PROMPT,
        "prompt_ids": ids[0].tolist(),
        "greedy_new_tokens": NEW_TOKENS,
        "greedy_ids": out,
        "greedy_text": tok.decode(out),
        "greedy_top2_margin": [round(m, 6) for m in margins],
        "logits_file": "reference_logits.bin",
        "logits_shape": list(logits.shape),
        "logits_rows": "row i: logits after token i of prompt_ids + greedy_ids",
        "feature_off": feature_off,
        "feature_off_max_logit_change": feature_change and round(feature_change, 6),
        "chat": {
            "messages": CHAT_MESSAGES,
            "add_generation_prompt": True,
            "text": chat_text,
            "ids": tok(chat_text, add_special_tokens=False).input_ids,
        },
        "tokenizer_cases": [
            {
                "text": t,
                "ids": tok(t).input_ids,
                "ids_no_special": tok(t, add_special_tokens=False).input_ids,
                "decoded": tok.decode(tok(t).input_ids),
                "decoded_skip_special": tok.decode(tok(t).input_ids, skip_special_tokens=True),
            }
            for t in TOKENIZER_CASES
        ],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "generator": "tools/make_fixture_models.py",
    }


def build(name, model_cls, config, tokenizer, tok_args, weight_dtype, save_args, v4_layout, feature_off):
    """Saves the model for the first seed (from SEED up) whose greedy picks all win by at least
    MIN_MARGIN, so an engine that matches HF to float32 rounding reproduces them exactly."""
    folder = os.path.join(OUT, name)
    for seed in range(SEED, SEED + 50):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        model = model_cls(config)
        random_init(model, seed)
        model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id)
        model.to(weight_dtype).save_pretrained(folder, **save_args)
        kjv_tokenizer.save(tokenizer, folder, **tok_args)
        if v4_layout:
            to_transformers4_layout(folder)
        ref = reference(folder, feature_off)
        if min(ref["greedy_top2_margin"]) >= MIN_MARGIN:
            break
    else:
        sys.exit(f"error: no seed gives {name} greedy margins >= {MIN_MARGIN}")
    ref = {"model": name, "seed": seed, **ref}
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(f"{name}: seed {seed}, {size / 1024:.0f} KiB, prompt {len(ref['prompt_ids'])} tokens, "
          f"greedy {ref['greedy_text']!r}, min margin {min(ref['greedy_top2_margin']):.4f}, "
          f"{feature_off} changes logits by {ref['feature_off_max_logit_change']}")


def main():
    if not os.path.exists(CORPUS):
        sys.exit(f"error: {CORPUS} missing; run tools/corpus_kjv.sh first")
    lines = kjv_tokenizer.read_corpus(CORPUS)
    chatml = ["<|im_start|>", "<|im_end|>"]
    byte_bpe = kjv_tokenizer.byte_level(lines, 509, "<s>", "</s>", chatml)
    sp_bpe = kjv_tokenizer.sentencepiece(lines, 512)
    byte_ids = {"bos_token_id": byte_bpe.token_to_id("<s>"), "eos_token_id": byte_bpe.token_to_id("</s>")}
    sp_ids = {"bos_token_id": sp_bpe.token_to_id("<s>"), "eos_token_id": sp_bpe.token_to_id("</s>")}
    byte_tok_args = {"bos": "<s>", "eos": "</s>", "chat_template": CHATML}

    build(
        "llama-gqa",
        transformers.LlamaForCausalLM,
        LlamaConfig(
            vocab_size=509, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, **byte_ids,
        ),
        byte_bpe, byte_tok_args, torch.bfloat16, {}, v4_layout=True,
        feature_off=None,  # GQA cannot be switched off: the K/V weights fix the head count
    )
    build(
        "mistral-swa",
        transformers.MistralForCausalLM,
        MistralConfig(
            vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, sliding_window=8,
            max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, **sp_ids,
        ),
        sp_bpe, {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "chat_template": INST},
        torch.float16, {"max_shard_size": "200KB"}, v4_layout=False,
        feature_off={"sliding_window": None},
    )
    build(
        "llama3-rope",
        transformers.LlamaForCausalLM,
        LlamaConfig(
            vocab_size=509, hidden_size=128, intermediate_size=192, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
            rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
            },
            **byte_ids,
        ),
        byte_bpe, byte_tok_args, torch.float32, {}, v4_layout=True,
        feature_off={"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}},
    )


if __name__ == "__main__":
    main()
