#!/usr/bin/env python3
"""Writes the loader's test fixtures with Hugging Face's own writers (transformers save_pretrained,
which uses the `safetensors` package), so the tests prove Nibble reads what HF writes:

  tests/fixtures/loader/tiny-llama/          config.json + model.safetensors (bf16, GQA)
  tests/fixtures/loader/tiny-llama-sharded/  the same weights as model.safetensors.index.json + shards
  tests/fixtures/loader/tiny-llama.expected.json  per tensor: dtype, shape, float64 sum of the values

and, from the real bitsandbytes outputs in ../shared/fixtures/bnb (made on the H100 machine):

  tests/fixtures/loader/bnb-sizes.json       per case: numel, blocksize, double quant, and the bytes
                                             of the packed weight plus its quant-state tensors
  tests/fixtures/loader/bnb-nf4-dq.safetensors  one case file as bitsandbytes wrote it (U8 codes,
                                             absmax, quant maps, the packed quant_state JSON)

and the fuzzers' seed corpora, tests/fuzz/corpus/fuzz_*/ (small files written by HF's writers).

Run from the repository root: python3 tools/make_loader_fixtures.py (needs torch, transformers).
"""
import json
import pathlib
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig

OUT = pathlib.Path("tests/fixtures/loader")
BNB = pathlib.Path("../shared/fixtures/bnb")


def bnb_fixtures():
    # The device memory of a 4-bit weight: the codes and the float/uint8 state tensors; the
    # quant_state JSON becomes scalars (the nested offset is one float32).
    cases = json.loads((BNB / "index.json").read_text())["cases"]
    sizes = []
    for case in cases:
        with safe_open(BNB / (case["name"] + ".safetensors"), "pt") as f:
            state = [k for k in f.keys() if k.startswith("state.") and "quant_state" not in k]
            nbytes = sum(f.get_tensor(k).nbytes for k in ["packed"] + state)
            numel = f.get_tensor("input").numel()
        sizes.append({"name": case["name"], "numel": numel, "blocksize": case["blocksize"],
                      "double_quant": case["double_quant"],
                      "bytes": nbytes + (4 if case["double_quant"] else 0)})
    (OUT / "bnb-sizes.json").write_text("[\n" + ",\n".join(json.dumps(s) for s in sizes) + "\n]\n")
    shutil.copyfile(BNB / "nf4_dq1_bs64_float16_3x200.safetensors", OUT / "bnb-nf4-dq.safetensors")


def fuzz_seeds():
    corpus = pathlib.Path("tests/fuzz/corpus")
    st = corpus / "fuzz_safetensors"
    st.mkdir(parents=True, exist_ok=True)
    save_file({"f32": torch.ones(2, 3), "f16": torch.zeros(3, dtype=torch.float16),
               "bf16": torch.ones(1, dtype=torch.bfloat16), "u8": torch.arange(5, dtype=torch.uint8),
               "i32": torch.tensor([-1, 7], dtype=torch.int32), "empty": torch.zeros(0, 4)},
              st / "all_dtypes.safetensors", metadata={"format": "pt"})
    save_file({"w": torch.ones(1)}, st / "one.safetensors")
    save_file({"x": torch.ones(1, dtype=torch.float64)}, st / "f64.safetensors")
    shutil.copyfile(OUT / "bnb-nf4-dq.safetensors", st / "bnb.safetensors")

    index = corpus / "fuzz_safetensors_index"
    index.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(OUT / "tiny-llama-sharded/model.safetensors.index.json", index / "tiny.json")

    configs = corpus / "fuzz_model_config"
    configs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(OUT / "tiny-llama/config.json", configs / "tiny-llama.json")
    mistral = MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, sliding_window=16,
                            architectures=["MistralForCausalLM"])
    (configs / "mistral.json").write_text(mistral.to_json_string())
    llama3 = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, head_dim=32, tie_word_embeddings=True,
                         eos_token_id=[1, 2], architectures=["LlamaForCausalLM"],
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 64})
    (configs / "llama3.json").write_text(llama3.to_json_string())


def main():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    for d in ("tiny-llama", "tiny-llama-sharded"):
        shutil.rmtree(OUT / d, ignore_errors=True)
    model.save_pretrained(OUT / "tiny-llama")
    model.save_pretrained(OUT / "tiny-llama-sharded", max_shard_size="8KB")
    for d in ("tiny-llama", "tiny-llama-sharded"):  # only what the loader reads
        (OUT / d / "generation_config.json").unlink(missing_ok=True)
    expected = {name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                       "sum": float(t.double().sum())}
                for name, t in model.state_dict().items()}
    (OUT / "tiny-llama.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    bnb_fixtures()
    fuzz_seeds()


if __name__ == "__main__":
    main()
