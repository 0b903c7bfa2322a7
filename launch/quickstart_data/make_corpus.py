#!/usr/bin/env python3
"""Regenerate the quickstart corpus (corpus.jsonl) and its tokenizer (tokenizer.model).

The corpus is English text generated here, deterministically (our own splitmix64, no downloads), written for
this project and public domain. It has long-range structure so that context length matters: every "ledger"
document states a secret word and a number at its start, runs for hundreds to thousands of tokens of
narrative about the same characters, and asks for both at its end; inventory documents add up counts stated
earlier. The tokenizer is a sentencepiece BPE model trained on it with Llama-2's settings (identity
normalizer, dummy prefix, no whitespace collapsing, byte fallback, digits split, <unk>=0 <s>=1 </s>=2).

Usage: .venv/bin/python launch/quickstart_data/make_corpus.py [--out DIR] [--docs N] [--vocab V]
"""
import argparse
import json
import os

MASK = (1 << 64) - 1


class Rng:
    def __init__(self, seed):
        self.s = seed & MASK

    def u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.u64() * n) >> 64

    def pick(self, xs):
        return xs[self.below(len(xs))]

    def chance(self, p):
        return self.u64() < p * 2.0 ** 64


TOWNS = "Alvermoor Brackenridge Caldwater Dunmere Eastwick Fallowdene Greyhaven Harrowgate Ironbridge Juniper Kestrel " \
        "Larkspur Millbrook Northfold Oakhollow Pennywhistle Quarry Rookwood Saltmarsh Thistledown Underhill Vale " \
        "Westmarch Yarrow".split()
NAMES = "Ada Bram Cora Dell Edwin Flora Gideon Hana Ivo Juno Kit Lena Milo Nora Otto Pia Quin Rosa Silas Tessa " \
        "Ulric Vera Wren Yusuf Zelda".split()
ROLES = "miller baker smith weaver fisher clerk ferryman shepherd potter carpenter herbalist lamplighter".split()
WORDS = "amber birch cobalt dawn ember falcon garnet harbor indigo jasper kettle lantern meadow nectar orchard " \
        "pepper quartz raven saffron timber umber velvet willow yonder zephyr copper marble thistle".split()
PLACES = "the mill|the old bridge|the harbor|the market square|the chapel|the north road|the orchard|the lighthouse|" \
         "the riverbank|the inn|the granary|the forge|the ferry landing|the hill above the town".split("|")
TIMES = "At dawn|In the morning|By noon|In the afternoon|At dusk|That evening|Late at night|On the next day|" \
        "A week later|Before the rain|After the storm|During the fair".split("|")
VERBS = "carried|mended|counted|painted|sold|bought|repaired|cleaned|measured|guarded|found|lost|hid|weighed|sorted".split("|")
THINGS = "a basket of apples|three lanterns|the fishing nets|a sack of flour|the iron gate|a bundle of letters|" \
         "the broken wheel|two barrels of cider|a map of the coast|the copper kettle|a crate of candles|" \
         "the blue boat|a coil of rope|the bell rope|a jar of honey".split("|")
FEELINGS = "tired|cheerful|worried|proud|quiet|curious|restless|patient|careful|hopeful".split("|")
WEATHER = "The wind turned cold.|Rain fell on the roofs.|The sky was clear and pale.|Fog rolled in from the sea.|" \
          "The river ran high.|Snow dusted the hills.|The sun was warm on the stones.".split("|")
DEADLINES = "dawn|noon|dusk|the rain|the fair|the storm|the market opens|the ferry leaves".split("|")
ITEMS = "apples pears candles nails ropes lanterns barrels jars sacks bells keys coins boots hats".split()


def sentence(r, cast, town):
    who = r.pick(cast)
    k = r.below(9)
    if k == 0:
        return f"{r.pick(TIMES)}, {who[0]} the {who[1]} {r.pick(VERBS)} {r.pick(THINGS)} near {r.pick(PLACES)}."
    if k == 1:
        other = r.pick(cast)
        return f"{who[0]} met {other[0]} at {r.pick(PLACES)}, and they spoke about the {r.pick(ITEMS)} of {town}."
    if k == 2:
        return f"{who[0]} felt {r.pick(FEELINGS)} and walked to {r.pick(PLACES)}."
    if k == 3:
        return r.pick(WEATHER)
    if k == 4:
        n = 2 + r.below(40)
        return f"The {who[1]} counted {n} {r.pick(ITEMS)} and wrote the number in the book."
    if k == 5:
        return f"\"We should finish this before {r.pick(DEADLINES)}\", said {who[0]}."
    if k == 6:
        return f"Nobody in {town} remembered a season like this one."
    if k == 7:
        other = r.pick(cast)
        return f"{who[0]} gave {other[0]} {r.pick(THINGS)}, and {other[0]} thanked the {who[1]}."
    return f"{r.pick(TIMES)}, the bells of {town} rang {1 + r.below(12)} times."


def ledger(r, i):
    town = r.pick(TOWNS)
    cast = [(r.pick(NAMES), r.pick(ROLES)) for _ in range(2 + r.below(4))]
    keeper = cast[0]
    word, number = r.pick(WORDS), 1000 + r.below(9000)
    paras = [f"The Ledger of {town}, book {i}.",
             f"At the start of the season the keeper, {keeper[0]} the {keeper[1]}, wrote down the secret word "
             f"\"{word}\" and the number {number}, and told everyone to remember them."]
    n_par = 1 + r.below(12) if r.chance(0.75) else 15 + r.below(26)
    for _ in range(n_par):
        paras.append(" ".join(sentence(r, cast, town) for _ in range(3 + r.below(6))))
    paras.append(f"At the end of the season {keeper[0]} asked: what was the secret word, and what was the number? "
                 f"The word was \"{word}\" and the number was {number}.")
    return "\n\n".join(paras)


def inventory(r, i):
    town = r.pick(TOWNS)
    lines = [f"Inventory of the {r.pick(ROLES)}'s store in {town}, sheet {i}."]
    total = {}
    for _ in range(4 + r.below(20)):
        item, n = r.pick(ITEMS), 1 + r.below(20)
        total[item] = total.get(item, 0) + n
        lines.append(f"- received {n} {item}")
    lines.append("Totals:")
    lines += [f"- {item}: {n}" for item, n in sorted(total.items())]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--docs", type=int, default=420)
    ap.add_argument("--vocab", type=int, default=1024)
    a = ap.parse_args()
    r = Rng(20261125)
    docs = [ledger(r, i) if r.chance(0.8) else inventory(r, i) for i in range(a.docs)]
    corpus = os.path.join(a.out, "corpus.jsonl")
    with open(corpus, "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "text": d}, ensure_ascii=False) + "\n")
    lines = os.path.join(a.out, ".train_lines.txt")
    with open(lines, "w", encoding="utf-8") as f:
        for d in docs:
            for p in d.split("\n"):
                if p:
                    f.write(p[:4000] + "\n")
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(
        input=lines, model_prefix=os.path.join(a.out, "tokenizer"), model_type="bpe", vocab_size=a.vocab,
        character_coverage=1.0, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, byte_fallback=True, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
    os.remove(lines)
    os.remove(os.path.join(a.out, "tokenizer.vocab"))
    print(f"{corpus}: {len(docs)} documents, {os.path.getsize(corpus)} bytes; tokenizer.model vocab {a.vocab}")


if __name__ == "__main__":
    main()
