"""Converts a SentencePiece BPE tokenizer.model (LLaMA style) into a Hugging Face tokenizer.json.

Writes what Hugging Face's LlamaConverter (transformers' convert_slow_tokenizer.py, the
SentencePiece-BPE path used for LLaMA 1/2, Mistral, TinyLlama, ...) writes, without needing
`transformers`, `tokenizers` or `protobuf` (the ModelProto is decoded here):

  - model: {"type": "BPE", "byte_fallback": true, "fuse_unk": true, "unk_token": trainer_spec's
    unk_piece, "dropout": null, no prefix/suffix, "vocab": piece -> id in ModelProto order (the first
    three pieces keep their names and get score 0, as LlamaConverter's vocab() does), "merges"};
  - merges, as transformers' `generate_merges(vocab, vocab_scores)`: for every piece (in id order),
    every split into a left and a right part that are both pieces, those of one piece ordered by
    (id of left, id of right); then all of them sorted by (score of the merged piece, length of
    left, length of right), highest first (a stable sort). So merges are ranked by the merged
    piece's score: the rank order BPE applies is SentencePiece's score order. Written as "a b"
    strings (as in Meta's Llama-2 tokenizer.json), or as ["a", "b"] pairs with --pairs (as
    tokenizers >= 0.20 writes them);
  - added_tokens: the unknown piece and every control piece (special: true) and every user-defined
    piece (special: false), by id, all with normalized: false (SpmConverter adds control and
    user-defined pieces; LlamaTokenizerFast adds <unk>, <s>, </s> as special tokens);
  - normalizer: Sequence[Prepend("▁") (when add_dummy_prefix), Replace(" " -> "▁")] (the
    "legacy" LLaMA layout; pre_tokenizer null);
  - post_processor: TemplateProcessing "<s> $A" (LlamaTokenizerFast's add_bos_token=True,
    add_eos_token=False);
  - decoder: Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)] (the Strip only
    when add_dummy_prefix).

Refuses (exit status 1) a model that is not BPE, as LlamaConverter does.

Facts from (read, no code copied): transformers src/transformers/convert_slow_tokenizer.py
(LlamaConverter, SpmConverter, generate_merges, SentencePieceExtractor), and the field numbers
of sentencepiece's src/sentencepiece_model.proto (as in Debian's python3-sentencepiece 0.1.97,
sentencepiece_model_pb2.py).

Usage (from the repository root):
    /usr/bin/python3 tools/spm_to_hf_json.py tests/fixtures/spm/tokenizer.model tests/fixtures/spm/tokenizer.json
"""

import json
import struct
import sys

# ModelProto field numbers (sentencepiece_model.proto)
MODEL_PIECES, MODEL_TRAINER, MODEL_NORMALIZER = 1, 2, 3
PIECE_PIECE, PIECE_SCORE, PIECE_TYPE = 1, 2, 3
TRAINER_MODEL_TYPE, TRAINER_BYTE_FALLBACK = 3, 35
TRAINER_UNK_ID, TRAINER_BOS_ID, TRAINER_EOS_ID = 40, 41, 42
TRAINER_UNK_PIECE, TRAINER_BOS_PIECE, TRAINER_EOS_PIECE = 45, 46, 47
NORMALIZER_ADD_DUMMY_PREFIX = 3
# ModelProto.SentencePiece.Type and TrainerSpec.ModelType
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2
META = "\u2581"


def read_varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(b):
            raise ValueError("the file ends inside a varint")
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def fields(b: bytes):
    """Yields (field number, wire type, value): an int for varints, bytes otherwise."""
    i = 0
    while i < len(b):
        key, i = read_varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(b, i)
        elif wire == 1:
            value, i = b[i : i + 8], i + 8
        elif wire == 2:
            n, i = read_varint(b, i)
            value, i = b[i : i + n], i + n
        elif wire == 5:
            value, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire} (field {number})")
        if i > len(b):
            raise ValueError("the file ends inside a field")
        yield number, wire, value


def int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def read_model(data: bytes) -> dict:
    pieces = []
    trainer = {
        "model_type": UNIGRAM,
        "byte_fallback": False,
        "unk_id": 0,
        "bos_id": 1,
        "eos_id": 2,
        "unk_piece": "<unk>",
        "bos_piece": "<s>",
        "eos_piece": "</s>",
    }
    normalizer = {"add_dummy_prefix": True}
    for number, wire, value in fields(data):
        if number == MODEL_PIECES and wire == 2:
            p = {"piece": "", "score": 0.0, "type": NORMAL}
            for f, w, v in fields(value):
                if f == PIECE_PIECE and w == 2:
                    p["piece"] = v.decode("utf-8")
                elif f == PIECE_SCORE and w == 5:
                    p["score"] = struct.unpack("<f", v)[0]
                elif f == PIECE_TYPE and w == 0:
                    p["type"] = v
            pieces.append(p)
        elif number == MODEL_TRAINER and wire == 2:
            for f, w, v in fields(value):
                if f == TRAINER_MODEL_TYPE and w == 0:
                    trainer["model_type"] = v
                elif f == TRAINER_BYTE_FALLBACK and w == 0:
                    trainer["byte_fallback"] = v != 0
                elif f in (TRAINER_UNK_ID, TRAINER_BOS_ID, TRAINER_EOS_ID) and w == 0:
                    trainer[{40: "unk_id", 41: "bos_id", 42: "eos_id"}[f]] = int32(v)
                elif f in (TRAINER_UNK_PIECE, TRAINER_BOS_PIECE, TRAINER_EOS_PIECE) and w == 2:
                    trainer[{45: "unk_piece", 46: "bos_piece", 47: "eos_piece"}[f]] = v.decode("utf-8")
        elif number == MODEL_NORMALIZER and wire == 2:
            for f, w, v in fields(value):
                if f == NORMALIZER_ADD_DUMMY_PREFIX and w == 0:
                    normalizer["add_dummy_prefix"] = v != 0
    return {"pieces": pieces, "trainer": trainer, "normalizer": normalizer}


def generate_merges(vocab: dict[str, int], vocab_scores: list[tuple[str, float]]) -> list[tuple[str, str]]:
    """transformers' generate_merges with vocab_scores given (merges ranked by the merged piece's score)."""
    scores = dict(vocab_scores)
    merges = []
    for merged, score in scores.items():
        local = []
        for k in range(1, len(merged)):
            left, right = merged[:k], merged[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(left, right) for left, right, _ in merges]


def convert(model: dict, pairs: bool = False) -> dict:
    trainer, pieces = model["trainer"], model["pieces"]
    if trainer["model_type"] != BPE:
        raise ValueError(f"model_type {trainer['model_type']} is not BPE (2): LlamaConverter converts BPE models only")
    add_prefix = model["normalizer"]["add_dummy_prefix"]
    # LlamaConverter.vocab(): the first three pieces with score 0, then the others with theirs
    vocab_scores = [(p["piece"], 0.0 if i < 3 else p["score"]) for i, p in enumerate(pieces)]
    vocab = {piece: i for i, (piece, _) in enumerate(vocab_scores)}
    if len(vocab) != len(pieces):
        raise ValueError("duplicate pieces")
    merges = generate_merges(vocab, vocab_scores)
    if not pairs and any(" " in a + b for a, b in merges):
        raise ValueError("a piece has a space, so its merges cannot be written as 'a b' strings: use --pairs")

    unk_piece = trainer["unk_piece"]
    added = []
    for i, p in enumerate(pieces):
        if p["type"] in (UNKNOWN, CONTROL, USER_DEFINED):
            added.append(
                {
                    "id": i,
                    "content": p["piece"],
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "special": p["type"] != USER_DEFINED,
                }
            )
    bos_piece, bos_id = trainer["bos_piece"], trainer["bos_id"]
    if not (0 <= bos_id < len(pieces)) or pieces[bos_id]["piece"] != bos_piece:
        raise ValueError(f"bos_id {bos_id} is not the piece {bos_piece!r}")

    normalizers = [{"type": "Replace", "pattern": {"String": " "}, "content": META}]
    if add_prefix:
        normalizers.insert(0, {"type": "Prepend", "prepend": META})
    decoders = [
        {"type": "Replace", "pattern": {"String": META}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if add_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})

    def special(type_id: int) -> dict:
        return {"SpecialToken": {"id": bos_piece, "type_id": type_id}}

    def sequence(name: str, type_id: int) -> dict:
        return {"Sequence": {"id": name, "type_id": type_id}}

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(0), sequence("A", 0)],
            "pair": [special(0), sequence("A", 0), special(1), sequence("B", 1)],
            "special_tokens": {bos_piece: {"id": bos_piece, "ids": [bos_id], "tokens": [bos_piece]}},
        },
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": unk_piece,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[a, b] if pairs else f"{a} {b}" for a, b in merges],
        },
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--pairs"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(args[0], "rb") as f:
        model = read_model(f.read())
    try:
        tok = convert(model, pairs="--pairs" in sys.argv[1:])
    except ValueError as e:
        print(f"{args[0]}: {e}", file=sys.stderr)
        sys.exit(1)
    with open(args[1], "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
        f.write("\n")
    print(
        f"{len(tok['model']['vocab'])} pieces, {len(tok['model']['merges'])} merges, "
        f"{len(tok['added_tokens'])} added tokens -> {args[1]}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
