"""Derive a CLIP BPE tokenizer folder (vocab.json, merges.txt) from open_clip's MIT-licensed vocabulary.

Run once; the output is committed under models/assets/clip_tokenizer/. The source file is read out of
the open-clip-torch wheel (``pip download --no-deps open-clip-torch``) so the package itself, which
would replace the CPU torch with a CUDA one, is never installed.

Usage: python scripts/derive_clip_vocab.py path/to/open_clip_torch-*.whl models/assets/clip_tokenizer
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # the vocabulary CLIP was trained with: 49,408 ids in all


def byte_alphabet() -> list[str]:
    """GPT-2's reversible byte -> printable-unicode table, in byte order of its construction."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def derive(bpe_text: str, out: Path) -> None:
    merges = [tuple(line.split()) for line in bpe_text.split("\n")[1 : N_MERGES + 1]]
    alphabet = byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == 49408, len(vocab)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [" ".join(m) for m in merges]
    (out / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(wheel: str, out: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
    derive(gzip.decompress(raw).decode("utf-8"), Path(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
