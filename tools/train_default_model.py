#!/usr/bin/env python3
"""Trains Nibble's bundled default model, models/kjv-tiny: a small LlamaForCausalLM (GQA) on the
King James Bible (Debian bible-kjv-text; tools/corpus_kjv.sh extracts it), with its own byte-level
BPE tokenizer trained on the same text by HF `tokenizers`.

The training stream mixes two kinds of documents, each opened by <s> and closed by </s>:
- a whole chapter, its verses one a line (so a prompt is continued as scripture), and
- a short ChatML conversation in which each user turn is a verse and the assistant answers with
  the verse that follows it, closed by <|im_end|> (so `nibble chat` gets an answer that ends).
Every 50th chapter is held out for the validation loss; the weights kept are those of the
evaluation with the lowest validation loss (on 1M tokens a model this size overfits late in
a run, and the best point is where it reads most like new KJV text rather than recited text).

Afterwards, from the saved folder (bf16 weights read back as float32), HF transformers computes
the greedy continuation of a fixed prompt (the engine's token-for-token fixture) and a few
sampled texts for the README.

Usage (on a CUDA machine; about a minute on one H100):
  tools/corpus_kjv.sh && python3 tools/train_default_model.py --out OUTDIR
Writes OUTDIR/kjv-tiny/ (the model folder), OUTDIR/kjv-tiny-greedy.json and OUTDIR/train_log.json.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kjv_tokenizer  # noqa: E402

BOS, EOS, IM_START, IM_END = "<s>", "</s>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GREEDY_PROMPT = "In the beginning"
GREEDY_TOKENS = 32
SAMPLE_PROMPTS = ["And the LORD spake unto Moses, saying,", "Blessed are they"]
CHAT_SAMPLE = [{"role": "user", "content": "The LORD is my shepherd; I shall not want."}]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=".dev/kjv.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=768)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--time-limit", type=float, default=420, help="seconds; stops early (and says so) past it")
    return p.parse_args()


def read_chapters(path):
    with open(path, encoding="utf-8") as f:
        return [c.split("\n") for c in f.read().strip("\n").split("\n\n")]


def chat_documents(chapters, rng):
    """Conversations of 1-3 exchanges over consecutive verses of a chapter."""
    docs = []
    for verses in chapters:
        i = int(rng.integers(0, 3))
        while i + 1 < len(verses):
            turns = int(rng.integers(1, 4))
            text = BOS
            for _ in range(turns):
                if i + 1 >= len(verses):
                    break
                text += f"{IM_START}user\n{verses[i]}{IM_END}\n{IM_START}assistant\n{verses[i + 1]}{IM_END}\n"
                i += 2
            docs.append(text + EOS)
            i += int(rng.integers(1, 6))
    return docs


def encode_stream(tok, docs):
    """Token ids of the documents back to back, and where each document starts."""
    ids, starts = [], []
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        starts.append(len(ids))
        ids.extend(enc.ids)
    return np.array(ids, dtype=np.int64), np.array(starts, dtype=np.int64)


def make_batch(stream, starts, batch, context, rng, device):
    """Half the rows begin at a document start (so a prompt after <s> at position 0 is in
    distribution), half at a random offset."""
    n = len(stream) - context - 1
    aligned = starts[starts < n]
    offs = np.where(
        rng.random(batch) < 0.5, aligned[rng.integers(0, len(aligned), batch)], rng.integers(0, n, batch)
    )
    rows = np.stack([stream[o : o + context + 1] for o in offs])
    t = torch.from_numpy(rows).to(device, non_blocking=True)
    return t[:, :-1], t[:, 1:]


@torch.no_grad()
def evaluate(model, stream, context, device):
    model.eval()
    n = (len(stream) - 1) // context
    x = torch.from_numpy(stream[: n * context].reshape(n, context)).to(device)
    y = torch.from_numpy(stream[1 : n * context + 1].reshape(n, context)).to(device)
    total = 0.0
    for i in range(0, n, 32):
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            logits = model(input_ids=x[i : i + 32]).logits
        total += F.cross_entropy(logits.float().flatten(0, 1), y[i : i + 32].flatten(), reduction="sum").item()
    model.train()
    return total / (n * context)


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args, tok, train_stream, train_starts, val_stream, device):
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.context,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(device)
    model.config._attn_implementation = "sdpa"
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params:,} ({params * 2 / 1e6:.1f} MB in bf16)", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda",
    )
    rng = np.random.default_rng(args.seed)
    log, best, best_state = [], float("inf"), None
    start, train_sum, train_n, stopped_early = time.time(), 0.0, 0, False
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, y = make_batch(train_stream, train_starts, args.batch, args.context, rng, device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_sum += loss.item() if (step + 1) % 50 == 0 else 0.0
        train_n += 1 if (step + 1) % 50 == 0 else 0
        last = step + 1 == args.steps
        over_time = time.time() - start > args.time_limit
        if (step + 1) % args.eval_every == 0 or last or over_time:
            val = evaluate(model, val_stream, args.context, device)
            entry = {
                "step": step + 1,
                "tokens": (step + 1) * args.batch * args.context,
                "train_loss": round(train_sum / max(1, train_n), 4),
                "val_loss": round(val, 4),
                "lr": round(lr_at(step, args), 6),
                "seconds": round(time.time() - start, 1),
            }
            log.append(entry)
            train_sum, train_n = 0.0, 0
            if val < best:
                best = val
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            print(json.dumps(entry), flush=True)
        if over_time and not last:
            print(f"time limit reached at step {step + 1}: stopping early", flush=True)
            stopped_early = True
            break
    model.load_state_dict(best_state)
    return model, params, log, best, stopped_early


@torch.no_grad()
def greedy_fixture(folder, device):
    """The fixture our engine must reproduce: HF, float32 compute from the saved bf16 weights."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").to(device).eval()
    ids = tok(GREEDY_PROMPT, return_tensors="pt").input_ids.to(device)
    gen = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=GREEDY_TOKENS,
        eos_token_id=[], pad_token_id=tok.pad_token_id or 0,
    )
    out = gen[0, ids.shape[1] :].tolist()
    assert len(out) == GREEDY_TOKENS
    top2 = model(gen).logits[0, ids.shape[1] - 1 : -1].float().topk(2, dim=-1)
    assert top2.indices[:, 0].tolist() == out, "cached and uncached greedy picks differ"
    return {
        "model": "models/kjv-tiny",
        "prompt": GREEDY_PROMPT,
        "prompt_ids": ids[0].tolist(),
        "new_tokens": GREEDY_TOKENS,
        "output_ids": out,
        "text": tok.decode(out),
        "top2_margin": [round(m, 5) for m in (top2.values[:, 0] - top2.values[:, 1]).tolist()],
        "dtype": "float32 compute from the bf16 weights, attn_implementation=eager, no stop token",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


@torch.no_grad()
def samples(folder, device, seed):
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    out = []
    for i, prompt in enumerate(SAMPLE_PROMPTS + [None]):
        torch.manual_seed(seed + i)
        if prompt is None:
            text = tok.apply_chat_template(CHAT_SAMPLE, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
        else:
            ids = tok(prompt, return_tensors="pt").input_ids.to(device)
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.8,
                             top_k=0, top_p=1.0, max_new_tokens=80)
        out.append({
            "prompt": prompt if prompt is not None else CHAT_SAMPLE,
            "sampling": "temperature 0.8, no top-k/top-p, seed %d" % (seed + i),
            "text": tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=False),
        })
        print(json.dumps(out[-1], ensure_ascii=False), flush=True)
    return out


def main():
    args = parse_args()
    device = args.device
    torch.backends.cuda.matmul.allow_tf32 = False  # the fixture's float32 must be float32
    chapters = read_chapters(args.corpus)
    assert sum(map(len, chapters)) == 31102, "unexpected corpus; use tools/corpus_kjv.sh"
    t0 = time.time()
    tok = kjv_tokenizer.byte_level(kjv_tokenizer.read_corpus(args.corpus), args.vocab, BOS, EOS, [IM_START, IM_END])
    print(f"tokenizer: {tok.get_vocab_size()} tokens in {time.time() - t0:.1f}s", flush=True)

    rng = np.random.default_rng(args.seed)
    splits = {"train": [c for i, c in enumerate(chapters) if i % 50], "val": chapters[::50]}
    streams = {}
    for name, chs in splits.items():
        docs = [BOS + "\n".join(c) + EOS for c in chs] + chat_documents(chs, rng)
        docs = [docs[i] for i in rng.permutation(len(docs))]
        streams[name] = encode_stream(tok, docs)
        print(f"{name}: {len(chs)} chapters, {len(docs)} documents, {len(streams[name][0]):,} tokens", flush=True)

    model, params, log, best, stopped_early = train(args, tok, *streams["train"], streams["val"][0], device)

    folder = os.path.join(args.out, "kjv-tiny")
    os.makedirs(folder, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=[tok.token_to_id(EOS), tok.token_to_id(IM_END)],
        do_sample=True, temperature=0.8, max_new_tokens=256,
    )
    model.to(torch.bfloat16).save_pretrained(folder)
    kjv_tokenizer.save(tok, folder, BOS, EOS, CHAT_TEMPLATE, model_max_length=args.context)

    fixture = greedy_fixture(folder, device)
    print(json.dumps(fixture, ensure_ascii=False), flush=True)
    with open(os.path.join(args.out, "kjv-tiny-greedy.json"), "w") as f:
        json.dump(fixture, f, indent=1, ensure_ascii=False)
        f.write("\n")
    summary = {
        "args": vars(args),
        "parameters": params,
        "best_val_loss": best,
        "stopped_early": stopped_early,
        "log": log,
        "samples": samples(folder, device, args.seed),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
