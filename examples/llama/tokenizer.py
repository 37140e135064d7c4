"""Text <-> token ids, with what is available offline.

In order of preference:

- ``HFTokenizer``: the model directory's ``tokenizer.json`` through the ``tokenizers``
  package, when it is installed (exact).
- ``VocabTokenizer``: a vocabulary without its merge rules (``tokenizer.json`` when
  ``tokenizers`` is missing, or a GGUF file's ``tokenizer.ggml.tokens``). Decoding is
  exact; encoding takes the longest vocabulary entry at each position, which is close to
  but not always the model's own tokenization.
- ``CharTokenizer``: no vocabulary at all (random models): UTF-8 bytes as ids, or for a
  vocabulary smaller than 256 one id per printable ASCII character.

Every tokenizer has ``encode(text) -> list[int]``, ``decode(ids) -> str``,
``eos_ids`` (a set) and ``description``.
"""

import json
from pathlib import Path

# The character set of CharTokenizer's small-vocabulary mode (and of the vocabulary the
# random GGUF models carry): newline and the 95 printable ASCII characters.
CHARSET = "\n" + "".join(chr(c) for c in range(32, 127))
SPACE_MARK = "\u2581"  # SentencePiece's "▁": a space in Llama 1/2 vocabularies


def _byte_alphabet():
    """GPT-2's reversible byte -> printable-character map, used by byte-level BPE
    vocabularies (Llama 3): printable Latin-1 bytes stand for themselves, the others
    for characters from U+0100 on ("Ġ" is a space, "Ċ" a newline)."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class CharTokenizer:
    def __init__(self, vocab_size):
        self.vocab_size = vocab_size
        self.eos_ids = set()
        self.bytes = vocab_size >= 256
        if self.bytes:
            self.description = "no tokenizer with the model: byte-level fallback (token id = UTF-8 byte)"
        else:
            self.description = f"no tokenizer with the model: character-level fallback ({len(CHARSET)} characters)"

    def encode(self, text):
        if self.bytes:
            return list(text.encode("utf-8"))
        unknown = CHARSET.index("?")
        return [min(CHARSET.find(c) if c in CHARSET else unknown, self.vocab_size - 1) for c in text]

    def decode(self, ids):
        if self.bytes:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return "".join(CHARSET[i] if i < len(CHARSET) else "" for i in ids)


class VocabTokenizer:
    """Greedy longest-match encoding over a list of token strings.

    ``style`` is ``"sentencepiece"`` (spaces are "▁", unknown characters fall back to
    ``<0xHH>`` byte tokens) or ``"byte-level"`` (GPT-2's byte alphabet).
    """

    MAX_TOKEN_CHARS = 48  # longer entries (runs of spaces, ...) are not tried

    def __init__(self, tokens, style, *, special=(), bos_id=None, eos_ids=(), unk_id=None, description=""):
        self.tokens = list(tokens)
        self.style = style
        self.special = set(special)
        self.bos_id, self.eos_ids, self.unk_id = bos_id, set(eos_ids), unk_id
        self.description = description
        self.ids = {}
        for i, t in enumerate(self.tokens):
            if i not in self.special and t not in self.ids:
                self.ids[t] = i
        self.longest = min(self.MAX_TOKEN_CHARS, max(map(len, self.ids), default=1))
        self._alphabet = _byte_alphabet()
        self._from_alphabet = {c: b for b, c in self._alphabet.items()}

    # --- encoding
    def _fallback(self, char):
        if self.style == "sentencepiece":
            pieces = [self.ids.get(f"<0x{b:02X}>") for b in char.encode("utf-8")]
            if all(p is not None for p in pieces):
                return pieces
        return [] if self.unk_id is None else [self.unk_id]

    def encode(self, text):
        if self.style == "sentencepiece":
            text = SPACE_MARK + text.replace(" ", SPACE_MARK)
        else:
            text = "".join(self._alphabet[b] for b in text.encode("utf-8"))
        ids = [] if self.bos_id is None else [self.bos_id]
        i = 0
        while i < len(text):
            for j in range(min(len(text), i + self.longest), i, -1):
                found = self.ids.get(text[i:j])
                if found is not None:
                    ids.append(found)
                    i = j
                    break
            else:
                ids.extend(self._fallback(text[i]))
                i += 1
        return ids

    # --- decoding
    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in self.special or not 0 <= i < len(self.tokens):
                continue
            token = self.tokens[i]
            if self.style == "byte-level":
                out += bytes(self._from_alphabet.get(c, ord("?")) for c in token)
            elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                out.append(int(token[3:5], 16))
            else:
                out += token.replace(SPACE_MARK, " ").encode("utf-8")
        return out.decode("utf-8", errors="replace")

    # --- constructors
    @classmethod
    def from_gguf(cls, metadata):
        tokens = metadata["tokenizer.ggml.tokens"]
        style = "byte-level" if metadata.get("tokenizer.ggml.model") == "gpt2" else "sentencepiece"
        types = metadata.get("tokenizer.ggml.token_type")
        types = [] if types is None else types.tolist()
        special = {i for i, t in enumerate(types) if t == 3}  # 3: control tokens

        def number(key):
            value = metadata.get(key)
            return None if value is None else int(value.item() if hasattr(value, "item") else value)

        add_bos = metadata.get("tokenizer.ggml.add_bos_token")
        add_bos = True if add_bos is None else bool(add_bos.item() if hasattr(add_bos, "item") else add_bos)
        eos = number("tokenizer.ggml.eos_token_id")
        return cls(
            tokens,
            style,
            special=special,
            bos_id=number("tokenizer.ggml.bos_token_id") if add_bos else None,
            eos_ids=() if eos is None else (eos,),
            unk_id=number("tokenizer.ggml.unknown_token_id"),
            description=f"the GGUF file's vocabulary ({len(tokens):,} tokens, {style}), greedy longest-match "
            "encoding (approximate; decoding is exact)",
        )

    @classmethod
    def from_tokenizer_json(cls, path, config):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        vocab = data["model"]["vocab"]
        pairs = [(piece, i) for i, (piece, _score) in enumerate(vocab)] if isinstance(vocab, list) else vocab.items()
        added = data.get("added_tokens") or []
        size = max([i for _, i in pairs] + [t["id"] for t in added] + [-1]) + 1
        tokens = [""] * size
        for piece, i in pairs:
            tokens[i] = piece
        for t in added:
            tokens[t["id"]] = t["content"]
        special = {t["id"] for t in added if t.get("special")}
        byte_level = "ByteLevel" in json.dumps([data.get("pre_tokenizer"), data.get("decoder")])
        style = "byte-level" if byte_level else "sentencepiece"
        bos = config.get("bos_token_id")
        # Add BOS when the tokenizer's post-processor puts it in front of every text.
        if bos is not None and not (0 <= bos < size and tokens[bos] in json.dumps(data.get("post_processor"))):
            bos = None
        eos = config.get("eos_token_id")
        eos = [] if eos is None else eos if isinstance(eos, list) else [eos]
        return cls(
            tokens,
            style,
            special=special,
            bos_id=bos,
            eos_ids=eos,
            unk_id=None,
            description=f"{path}'s vocabulary without the `tokenizers` package ({size:,} tokens, {style}): "
            "greedy longest-match encoding (approximate; `pip install tokenizers` for the exact one)",
        )


class HFTokenizer:
    def __init__(self, path, config):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        eos = config.get("eos_token_id")
        self.eos_ids = set() if eos is None else set(eos if isinstance(eos, list) else [eos])
        self.description = f"{path} (tokenizers package)"

    def encode(self, text):
        return self._tokenizer.encode(text).ids

    def decode(self, ids):
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)


def tokenizer_for(path, gguf_metadata, vocab_size):
    """The best tokenizer available for the model at ``path``."""
    path = Path(path) if path is not None else None
    if gguf_metadata.get("tokenizer.ggml.tokens"):
        return VocabTokenizer.from_gguf(gguf_metadata)
    if path is not None and path.is_dir() and (path / "tokenizer.json").exists():
        config = json.loads((path / "config.json").read_text())
        try:
            return HFTokenizer(path / "tokenizer.json", config)
        except ImportError:
            return VocabTokenizer.from_tokenizer_json(path / "tokenizer.json", config)
    return CharTokenizer(vocab_size)
