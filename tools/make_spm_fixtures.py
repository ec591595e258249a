"""Fixtures for the SentencePiece tokenizer (src/engine/io/spm.ts): tests/fixtures/spm/.

Trains a small SentencePiece BPE model with the options of LLaMA's tokenizer.model (Meta's
trainer_spec and normalizer_spec as printed in llama2.c's doc/train_llama_tokenizer.md):
model_type bpe, byte_fallback, split_digits, allow_whitespace_only_pieces, normalization_rule_name
identity (no NFKC), add_dummy_prefix true, remove_extra_whitespaces false, unk/bos/eos = 0/1/2, no
pad piece, unk_surface " ⁇ "; plus one user-defined piece "<sep>". The vocabulary is small (500
pieces, 256 of them byte pieces) and the training text is generated here (arithmetic word problems
in the style of the synthetic world, plus a few accented, Greek and CJK words), so the script
needs nothing but sentencepiece.

Writes tests/fixtures/spm/tokenizer.model (the trained model's bytes, a SentencePiece ModelProto as
in Meta's LLaMA folders; tools/spm_to_hf_json.py turns it into tokenizer.json),
tests/fixtures/spm/vocab.json (pieces, scores, GGUF token types, special ids and the options used) and
tests/fixtures/spm/cases.json:
  - "encode": {text, ids, decoded}: ids = sentencepiece's encode(text) (no BOS/EOS), decoded =
    sentencepiece's decode(ids);
  - "decode": {ids, decoded}: sentencepiece's decode of id lists that encode never produces
    (BOS/EOS/unk inside, split or invalid UTF-8 byte pieces, a lone "▁", ...);
  - "unused": the same model with a few pieces marked UNUSED (merges may make them, the output
    never has them): their ids, and {text, ids, decoded} for the encode texts (the last entry
    decodes the unused ids themselves).

Run from the repository root with Debian's sentencepiece (python3-sentencepiece 0.1.97):
    /usr/bin/python3 tools/make_spm_fixtures.py
Deterministic: one training thread, no input shuffling, a fixed random seed for the text.
"""

import json
import os
import random
import sys
import tempfile

import sentencepiece as spm

OUT_DIR = os.path.join("tests", "fixtures", "spm")
VOCAB_SIZE = 500
USER_DEFINED = ["<sep>"]

# GGUF token types (llama.cpp's gguf-py TokenType; the same numbers as sentencepiece's
# ModelProto.SentencePiece.Type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED_TYPE, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

NAMES = ["Ana", "Bo", "Chen", "Dana", "Eli", "Femi", "Gus", "Hana", "José", "Zoë", "Renée", "Søren"]
ITEMS = ["apples", "marbles", "coins", "books", "pencils", "stamps", "shells", "cookies", "cards"]
VERBS = ["has", "buys", "finds", "gives away", "loses", "sells", "collects", "eats"]
EXTRA = [
    "The café on the corner sells crème brûlée for 4 euros.",
    "A naïve façade: the résumé of the señor from Zürich.",
    "Über 12 Äpfel, 3 Öfen und 7 Füße.",
    "数学 问题 很 有趣。",
    "日本語 の 文章 です。",
    "Ελληνικά γράμματα: α β γ δ.",
    "Tabs\tand  double  spaces  stay.",
    "Mmm, the cookies are sooo good! Zzz... Booo! Hmmm, llll and oooo.",
    "Q: what is 17 + 25? A: 42.",
    "<sep> marks the end of a question <sep>",
]


def make_text(rng: random.Random, n: int) -> list[str]:
    lines = []
    for _ in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        name, other = rng.sample(NAMES, 2)
        item = rng.choice(ITEMS)
        kind = rng.randrange(5)
        if kind == 0:
            lines.append(f"{name} has {a} {item}. {other} gives {name} {b} more. How many {item} does {name} have now?")
        elif kind == 1:
            lines.append(f"{name} {rng.choice(VERBS)} {a} {item} and then {rng.choice(VERBS)} {b} {item}.")
        elif kind == 2:
            lines.append(f"Answer: {a} + {b} = {a + b}. The answer is {a + b}.")
        elif kind == 3:
            lines.append(f"{name} shouts {'o' * rng.randint(2, 6)}h and {other} says {'z' * rng.randint(2, 6)}.")
        else:
            lines.append(f"If each box holds {a} {item}, then {b} boxes hold {a} * {b} = {a * b} {item}.")
    for _ in range(20):
        lines.extend(EXTRA)
    return lines


# Strings that encode() is checked on: every kind of input the brief lists.
HAND_CASES = [
    "",
    " ",
    "  ",
    "   ",
    "a",
    " a",
    "  a",
    "a ",
    "a  ",
    " a ",
    "Hello",
    "Hello world",
    "Hello  world",
    "Hello   world",
    " Hello world",
    "Hello world ",
    "  leading and trailing  ",
    "\n",
    "\n\n",
    "line one\nline two",
    "line one\n\nline three\n",
    "\nstarts with a newline",
    " \n ",
    "\t",
    "tab\tseparated\tvalues",
    "\r\n windows line end",
    "0",
    "7",
    "42",
    "2024",
    "3.14159",
    "1,000,000",
    "-17",
    "12 + 30 = 42",
    "What is 17 + 25?",
    "Ana has 12 apples. Bo gives Ana 30 more. How many apples does Ana have now?",
    "The answer is 42.",
    "Answer: 99 + 1 = 100. The answer is 100.",
    "!",
    "?!",
    "...",
    "(a + b) * c",
    "x = [1, 2, 3]; y = {'k': \"v\"}",
    "#include <stdio.h>",
    "e-mail: ana@example.com",
    "50% off — today only!",
    "\"quoted\" and 'single'",
    "back\\slash and /slash",
    "under_score and ~tilde~ and `tick`",
    "café",
    "crème brûlée",
    "naïve résumé",
    "Zürich",
    "Søren and Zoë",
    "Ångström",
    "ñandú",
    "Ελληνικά",
    "αβγδ",
    "数学",
    "数学 问题",
    "日本語",
    "中文字符",
    "한국어",
    "Привет мир",
    "مرحبا",
    "😀",
    "I ❤ tokens 🎉",
    "👍🏽",
    "🇫🇷",
    "a😀b",
    "x\u200by",
    "\u00a0non-breaking space",
    "ﬁ ligature",
    "Ｆｕｌｌｗｉｄｔｈ",
    "①②③",
    "½ + ¼ = ¾",
    "€ £ ¥ ₹",
    "\u0301combining accent first",
    "e\u0301 vs é",
    "▁",
    "▁▁ literal metaspace",
    "a▁b",
    "<s>",
    "</s>",
    "<unk>",
    "<0x41>",
    "<sep>",
    "a<sep>b",
    "question <sep> answer",
    "<sep><sep>",
    " <sep>",
    "<se",
    "~" * 30,
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "oo",
    "ooo",
    "oooo",
    "ooooo",
    "sooo good",
    "mmm",
    "Hmmmm",
    "lllll",
    "zzzzzz",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX",
    "mixedCASE camelCase snake_case",
    "\x00nul",
    "\x7f",
]

# Id lists for decode() only (BOS 1, EOS 2, unk 0); byte pieces are looked up by name.
def decode_id_lists(sp: spm.SentencePieceProcessor) -> list[list[int]]:
    def p(piece: str) -> int:
        i = sp.piece_to_id(piece)
        assert i != sp.unk_id() or piece == "<unk>", piece
        return i

    hello = sp.encode("Hello world")
    lists = [
        [],
        [1],
        [2],
        [1, 2],
        [0],
        [1] + hello,
        hello + [2],
        [1] + hello + [2],
        hello + [1] + hello,
        [0] + hello,
        hello + [0] + hello,
        [p("▁")] + hello,
        [p("▁"), p("▁")] + hello,
        [1, p("▁")] + hello,
        [p("<0x0A>")] + hello,
        [p("<0x41>"), p("<0x42>")],
        [p("<0xE6>"), p("<0x95>"), p("<0xB0>")],  # 数 as bytes
        [p("<0xE6>"), p("<0x95>")],  # a character cut short
        [p("<0xE6>"), p("<0x95>")] + hello,
        [p("<0xFF>")],
        [p("<0x80>"), p("<0x41>")],
        [p("<0xF0>"), p("<0x9F>"), p("<0x98>"), p("<0x80>")],  # 😀
        [p("<0xC3>")] + hello,
        [p("<0x20>")] + hello,
        [p("<sep>")] + hello,
        hello + [p("<sep>")] + hello,
        [p("<0x0A>"), p("▁")] + hello,
        [2, p("▁")] + hello,
        [1, 1] + hello,
        [1, 0, p("▁")] + hello,
        [p("<0xE6>"), 2, p("<0x95>"), p("<0xB0>")],  # a control piece inside a byte run
        [p("<0xE6>"), hello[0], p("<0x95>"), p("<0xB0>")],  # a normal piece inside a byte run
        [p("<0xE6>"), p("<0x95>"), p("<0x41>")],
        [p("<0xC0>"), p("<0x80>")],  # overlong
        [p("<0xED>"), p("<0xA0>"), p("<0x80>")],  # surrogate
        [p("<0xF4>"), p("<0x90>"), p("<0x80>"), p("<0x80>")],  # beyond U+10FFFF
        [p("<0xF0>"), p("<0x9F>"), p("<0x98>")],  # 4-byte character cut short
        [p("<0xC3>"), p("<0xA9>")],  # é
        [p("<0xE2>"), p("<0x96>"), p("<0x81>")] + hello,  # "▁" as bytes
        hello + [p("<0xC3>")],
    ]
    return lists


# --- a variant with some pieces marked UNUSED, made by editing the serialized ModelProto (the
# protobuf module is not needed: ModelProto.pieces is field 1, SentencePiece.type is field 3).
UNUSED_PIECES = ["es", "an", "oo", "houts", "▁h", "he", "ow", "ar", "▁t"]


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def _fields(b: bytes):
    """(field number, raw bytes of the whole field, payload of a length-delimited field)."""
    i = 0
    while i < len(b):
        key, j = _varint(b, i)
        f, wt = key >> 3, key & 7
        payload = None
        if wt == 0:
            _, k = _varint(b, j)
        elif wt == 1:
            k = j + 8
        elif wt == 5:
            k = j + 4
        elif wt == 2:
            n, j2 = _varint(b, j)
            k = j2 + n
            payload = b[j2:k]
        else:
            raise ValueError(f"wire type {wt}")
        yield f, b[i:k], payload
        i = k


def with_unused(proto: bytes, unused: list[str]) -> bytes:
    out = bytearray()
    for f, raw, payload in _fields(proto):
        if f == 1:
            sub = list(_fields(payload))
            piece = next(p for g, _, p in sub if g == 1).decode("utf-8")
            if piece in unused:
                body = b"".join(r for g, r, _ in sub if g != 3) + bytes([3 << 3]) + _enc_varint(UNUSED)
                out += bytes([1 << 3 | 2]) + _enc_varint(len(body)) + body
                continue
        out += raw
    return bytes(out)


def main() -> None:
    rng = random.Random(20240515)
    lines = make_text(rng, 3000)
    out_dir = os.path.abspath(OUT_DIR)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        # Train inside the temporary folder with relative names: the trainer_spec stored in the
        # model (written to tokenizer.model) then says input "corpus.txt" and model_prefix "spm",
        # not a path of this machine, and the model's bytes are the same on every run.
        os.chdir(tmp)
        corpus = "corpus.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        prefix = "spm"
        options = dict(
            model_type="bpe",
            vocab_size=VOCAB_SIZE,
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            normalization_rule_name="identity",
            add_dummy_prefix=True,
            remove_extra_whitespaces=False,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            user_defined_symbols=USER_DEFINED,
            unk_surface=" \u2047 ",
            num_threads=1,
            shuffle_input_sentence=False,
            input_sentence_size=0,
            self_test_sample_size=0,
            max_sentencepiece_length=16,
            minloglevel=2,
        )
        try:
            spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, **options)
            with open(prefix + ".model", "rb") as f:
                model_bytes = f.read()
        finally:
            os.chdir(cwd)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model_bytes)
    assert sp.serialized_model_proto() == model_bytes
    sp_unused = spm.SentencePieceProcessor()
    sp_unused.LoadFromSerializedProto(with_unused(sp.serialized_model_proto(), UNUSED_PIECES))
    unused_ids = [sp_unused.piece_to_id(p) for p in UNUSED_PIECES]
    assert all(sp_unused.is_unused(i) for i in unused_ids)

    n = sp.get_piece_size()
    pieces, scores, types = [], [], []
    for i in range(n):
        piece = sp.id_to_piece(i)
        if sp.is_unknown(i):
            t = UNKNOWN
        elif sp.is_control(i):
            t = CONTROL
        elif sp.is_unused(i):
            t = UNUSED
        elif sp.is_byte(i):
            t = BYTE
        elif piece in USER_DEFINED:
            t = USER_DEFINED_TYPE
        else:
            t = NORMAL
        pieces.append(piece)
        scores.append(sp.get_score(i))
        types.append(t)
    assert len(set(pieces)) == n, "duplicate pieces"
    assert types.count(BYTE) == 256

    cases = []
    for text in HAND_CASES:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    # More ordinary sentences drawn from the same generator with another seed (unseen numbers
    # and name/item combinations).
    for text in make_text(random.Random(7), 40)[:40]:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    # A few strings joined into a longer text with newlines.
    long_text = "\n".join(c["text"] for c in cases[30:60])
    ids = sp.encode(long_text)
    cases.append({"text": long_text, "ids": ids, "decoded": sp.decode(ids)})

    decodes = [{"ids": ids, "decoded": sp.decode(ids)} for ids in decode_id_lists(sp)]

    unused_cases = []
    for c in cases[:-1]:
        ids = sp_unused.encode(c["text"])
        unused_cases.append({"text": c["text"], "ids": ids, "decoded": sp_unused.decode(ids)})
    unused_cases.append({"text": "", "ids": unused_ids, "decoded": sp_unused.decode(unused_ids)})
    changed = sum(u["ids"] != c["ids"] for u, c in zip(unused_cases[:-1], cases))
    assert changed >= 10, changed

    opts = {k: v for k, v in options.items() if k not in ("minloglevel",)}
    vocab = {
        "generator": "tools/make_spm_fixtures.py",
        "sentencepiece": spm.__version__,
        "trainer_options": opts,
        "normalizer": {
            "name": "identity",
            "add_dummy_prefix": True,
            "remove_extra_whitespaces": False,
            "escape_whitespaces": True,
        },
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "unk_id": sp.unk_id(),
        "pad_id": sp.pad_id(),
        "pieces": pieces,
        "scores": scores,
        "types": types,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(model_bytes)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"encode":[\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write('\n],"decode":[\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in decodes))
        f.write('\n],"unused":{"ids":' + json.dumps(unused_ids) + ',"cases":[\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in unused_cases))
        f.write("\n]}}\n")
    print(
        f"{n} pieces, {len(cases)} encode cases, {len(decodes)} decode cases, "
        f"{len(unused_cases)} unused-piece cases ({changed} differ) -> {OUT_DIR}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
