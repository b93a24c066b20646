"""Build the shipped demo corpus (``src/neuronscope/data/demo.conllu``) from a small grammar.

Run from the repository root after changing the grammar::

    python scripts/build_demo_corpus.py            # rewrites src/neuronscope/data/demo.conllu
    python scripts/build_demo_corpus.py OUT.conllu # writes elsewhere

The package ships only the generated file and its loader
(:func:`neuronscope.corpus.demo.load_demo_corpus`); the grammar lives here because nothing at
run time needs it. ``tests/corpus/test_demo.py`` checks that the shipped file equals this
script's output.

Every word carries gold labels by construction:

* ``upos`` (Universal POS) and ``xpos`` (Penn Treebank tags), ``lemma``;
* features ``Number`` (Sing/Plur on nouns, proper nouns, pronouns, demonstratives and on
  finite verbs that agree with their subject: present tense and ``was``/``were``),
  ``Tense`` (Past/Pres, on finite verbs and auxiliaries only; modals by form: ``can``/``must``
  Pres, ``could`` Past), ``VerbForm`` (Fin; Inf after ``to``, modals and ``do``; Part for
  participles, including the progressive ``-ing``; Ger for ``-ing`` forms used as nouns, e.g.
  after ``enjoy``) and ``Degree`` (Pos/Cmp/Sup on adjectives). Words without a value get
  :data:`~neuronscope.corpus.corpus.NO_LABEL`.

Sentence-level labels: ``tense`` (``past``/``present``: every finite verb of a sentence shares
it) and ``type`` (``statement``/``question``).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from neuronscope.corpus.corpus import NO_LABEL, Corpus
from neuronscope.corpus.demo import DEMO_FEATURES
from neuronscope.corpus.writers import write_conllu

#: Where the package reads the demo corpus from (relative to this script).
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "neuronscope" / "data" / "demo.conllu"

_T = TypeVar("_T")


# ============================================================================ tokens
@dataclass
class _Tok:
    form: str
    upos: str
    xpos: str
    lemma: str
    feats: dict[str, str] = field(default_factory=dict)


def _t(form: str, upos: str, xpos: str, lemma: str | None = None, **feats: str | None) -> _Tok:
    return _Tok(form, upos, xpos, form.lower() if lemma is None else lemma,
                {k: v for k, v in feats.items() if v})


@dataclass(frozen=True)
class _Agr:
    """Subject agreement: number (None for "you") and person."""

    number: str | None
    person: int

    @property
    def third_sing(self) -> bool:
        return self.number == "Sing" and self.person == 3


_SING3 = _Agr("Sing", 3)
_PLUR3 = _Agr("Plur", 3)


# ============================================================================ lexicon
def _takes_an(word: str) -> bool:
    """Whether the indefinite article before ``word`` is "an" (by sound, for this lexicon)."""
    return word in ("honest",) or (word[0] in "aeiou" and not word.startswith("use"))


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _nouns(spec: str) -> list[tuple[str, str | None]]:
    """``"dog mouse/mice silence/-"`` -> [(dog, dogs), (mouse, mice), (silence, None)]."""
    out: list[tuple[str, str | None]] = []
    for item in spec.split():
        sing, _, plur = item.partition("/")
        out.append((sing, None if plur == "-" else plur or _plural(sing)))
    return out


_NOUNS: dict[str, list[tuple[str, str | None]]] = {
    "human": _nouns(
        "man/men woman/women child/children person/people teacher farmer doctor student "
        "driver singer player writer baker friend neighbor girl boy king queen nurse worker "
        "artist soldier stranger"
    ),
    "animal": _nouns("dog cat horse bird mouse/mice fox rabbit cow sheep/sheep fish/fish "
                     "wolf/wolves duck"),
    "thing": _nouns("box key chair table door window bag ball cup phone lamp watch "
                    "knife/knives bottle picture gift basket"),
    "food": _nouns("apple cake cookie orange potato/potatoes egg pie sandwich"),
    "place": _nouns("house garden park city school river village kitchen library station "
                    "market forest beach hospital street office"),
    "text": _nouns("book letter story song poem message newspaper report invitation"),
    "vehicle": _nouns("car bus train boat bicycle truck"),
    "event": _nouns("party storm game meeting dinner lesson concert holiday celebration"),
    "abstract": _nouns("idea question answer decision mistake plan"),
    "mass": _nouns("darkness/- kindness/- happiness/- silence/- music/- information/-"),
}

_NAMES = ("Mary", "John", "Anna", "David", "Sarah", "Peter", "Emma", "Omar", "Lucy", "James",
          "Maria", "Tom")
_PLACES = ("Paris", "London", "Berlin", "Tokyo", "Cairo", "Lima", "Canada", "Spain")

_ANIM = ("human", "animal")
_CONCRETE = ("human", "animal", "thing", "food", "place", "vehicle")


@dataclass(frozen=True)
class _Verb:
    base: str
    s3: str
    past: str
    part: str
    ing: str
    subj: tuple[str, ...]
    obj: tuple[str, ...]
    flags: frozenset[str]

    @property
    def intr(self) -> bool:
        return "intr" in self.flags or not self.obj


def _verb(forms: str, subj: Sequence[str], obj: str = "", flags: str = "") -> _Verb:
    base, s3, past, part, ing = forms.split()
    return _Verb(base, s3, past, part, ing, tuple(subj), tuple(obj.split()),
                 frozenset(flags.split()))


_VERBS: list[_Verb] = [
    # intransitive
    _verb("sleep sleeps slept slept sleeping", _ANIM),
    _verb("laugh laughs laughed laughed laughing", ("human",)),
    _verb("run runs ran run running", _ANIM),
    _verb("arrive arrives arrived arrived arriving", ("human", "animal", "vehicle")),
    _verb("smile smiles smiled smiled smiling", ("human",)),
    _verb("wait waits waited waited waiting", _ANIM + ("vehicle",)),
    _verb("dance dances danced danced dancing", ("human",)),
    _verb("cry cries cried cried crying", _ANIM),
    _verb("swim swims swam swum swimming", _ANIM),
    _verb("walk walks walked walked walking", _ANIM),
    _verb("work works worked worked working", ("human",)),
    _verb("travel travels traveled traveled traveling", ("human",)),
    _verb("bark barks barked barked barking", ("animal",)),
    _verb("jump jumps jumped jumped jumping", _ANIM),
    _verb("rest rests rested rested resting", _ANIM),
    _verb("shout shouts shouted shouted shouting", ("human",)),
    _verb("begin begins began begun beginning", ("event",)),
    # transitive
    _verb("see sees saw seen seeing", _ANIM, "human animal thing vehicle place", "intr stat"),
    _verb("watch watches watched watched watching", _ANIM, "human animal vehicle event"),
    _verb("like likes liked liked liking", _ANIM, "human animal food text event", "inf ger stat"),
    _verb("love loves loved loved loving", _ANIM, "human animal food place", "inf ger stat"),
    _verb("find finds found found finding", _ANIM, "thing food text animal"),
    _verb("buy buys bought bought buying", ("human",), "thing food text vehicle"),
    _verb("eat eats ate eaten eating", _ANIM, "food", "intr"),
    _verb("cook cooks cooked cooked cooking", ("human",), "food", "intr"),
    _verb("read reads read read reading", ("human",), "text", "intr"),
    _verb("write writes wrote written writing", ("human",), "text", "intr"),
    _verb("open opens opened opened opening", ("human",), "thing text"),
    _verb("clean cleans cleaned cleaned cleaning", ("human",), "thing place vehicle"),
    _verb("carry carries carried carried carrying", _ANIM, "thing food text"),
    _verb("paint paints painted painted painting", ("human",), "thing place vehicle", "intr"),
    _verb("build builds built built building", ("human",), "place thing"),
    _verb("follow follows followed followed following", _ANIM, "human animal vehicle"),
    _verb("call calls called called calling", ("human",), "human animal"),
    _verb("visit visits visited visited visiting", ("human",), "human place"),
    _verb("help helps helped helped helping", _ANIM, "human animal"),
    _verb("fix fixes fixed fixed fixing", ("human",), "thing vehicle"),
    _verb("wash washes washed washed washing", ("human",), "thing vehicle animal food"),
    _verb("catch catches caught caught catching", _ANIM, "animal thing vehicle"),
    _verb("push pushes pushed pushed pushing", _ANIM, "thing vehicle"),
    _verb("drive drives drove driven driving", ("human",), "vehicle", "intr"),
    _verb("sell sells sold sold selling", ("human",), "thing food text vehicle"),
    _verb("bring brings brought brought bringing", _ANIM, "thing food text"),
    _verb("take takes took taken taking", _ANIM, "thing food text vehicle"),
    _verb("make makes made made making", ("human",), "food thing abstract"),
    _verb("lose loses lost lost losing", ("human",), "thing text event"),
    _verb("hold holds held held holding", _ANIM, "thing food text animal"),
    _verb("remember remembers remembered remembered remembering", ("human",),
          "human place text event abstract", "stat"),
    _verb("forget forgets forgot forgotten forgetting", ("human",),
          "human place text event abstract", "stat"),
    _verb("enjoy enjoys enjoyed enjoyed enjoying", ("human",), "event food text mass", "ger"),
    _verb("hear hears heard heard hearing", _ANIM, "human animal text mass", "intr stat"),
    _verb("sing sings sang sung singing", ("human", "animal"), "text", "intr"),
    _verb("play plays played played playing", _ANIM, "event", "intr"),
    _verb("need needs needed needed needing", _ANIM, "thing food vehicle information", "inf stat"),
    _verb("want wants wanted wanted wanting", _ANIM, "thing food text vehicle", "inf stat"),
    # catenative and clause-taking verbs
    _verb("try tries tried tried trying", _ANIM, "", "inf"),
    _verb("hope hopes hoped hoped hoping", ("human",), "", "inf that"),
    _verb("decide decides decided decided deciding", ("human",), "", "inf that"),
    _verb("plan plans planned planned planning", ("human",), "", "inf"),
    _verb("start starts started started starting", ("human", "animal"), "", "inf ger"),
    _verb("stop stops stopped stopped stopping", _ANIM + ("vehicle",), "", "ger"),
    _verb("say says said said saying", ("human",), "", "that"),
    _verb("think thinks thought thought thinking", ("human",), "", "that"),
    _verb("know knows knew known knowing", ("human",), "human place", "that stat"),
    _verb("believe believes believed believed believing", ("human",), "human", "that stat"),
    _verb("notice notices noticed noticed noticing", ("human",), "human animal thing", "that"),
]
# "need information": a mass noun class used as an object; map it to the class name.
_VERBS = [
    v if "information" not in v.obj else _Verb(
        v.base, v.s3, v.past, v.part, v.ing, v.subj,
        tuple("mass" if o == "information" else o for o in v.obj), v.flags)
    for v in _VERBS
]


@dataclass(frozen=True)
class _Adj:
    pos: str
    cmp: str | None
    sup: str | None
    classes: tuple[str, ...]


def _adj(forms: str, classes: str) -> _Adj:
    parts = forms.split()
    cmp, sup = (parts[1], parts[2]) if len(parts) == 3 else (None, None)
    return _Adj(parts[0], cmp, sup, tuple(classes.split()))


_ADJS: list[_Adj] = [
    _adj("big bigger biggest", "human animal thing food place vehicle"),
    _adj("small smaller smallest", "human animal thing food place vehicle"),
    _adj("old older oldest", "human animal thing place vehicle text"),
    _adj("new newer newest", "thing place vehicle text abstract"),
    _adj("young younger youngest", "human animal"),
    _adj("tall taller tallest", "human"),
    _adj("happy happier happiest", "human animal"),
    _adj("hungry hungrier hungriest", "human animal"),
    _adj("tired", "human animal"),
    _adj("brave braver bravest", "human"),
    _adj("clever cleverer cleverest", "human animal abstract"),
    _adj("lazy lazier laziest", "human animal"),
    _adj("kind kinder kindest", "human"),
    _adj("friendly", "human animal"),
    _adj("angry angrier angriest", "human animal"),
    _adj("quiet quieter quietest", "human animal place"),
    _adj("noisy noisier noisiest", "human animal place vehicle event"),
    _adj("gentle", "human animal"),
    _adj("curious", "human animal"),
    _adj("honest", "human"),
    _adj("heavy heavier heaviest", "thing food vehicle"),
    _adj("empty", "thing place vehicle"),
    _adj("broken", "thing vehicle"),
    _adj("wooden", "thing"),
    _adj("red", "thing vehicle"),
    _adj("blue", "thing vehicle"),
    _adj("green", "thing vehicle"),
    _adj("yellow", "thing vehicle"),
    _adj("clean cleaner cleanest", "thing place vehicle"),
    _adj("dirty dirtier dirtiest", "thing place vehicle animal"),
    _adj("cheap cheaper cheapest", "thing food vehicle text"),
    _adj("expensive", "thing food vehicle"),
    _adj("dark darker darkest", "place thing"),
    _adj("busy busier busiest", "human place"),
    _adj("beautiful", "human animal place thing text mass"),
    _adj("famous", "human place text"),
    _adj("ancient", "place thing text"),
    _adj("modern", "place thing vehicle"),
    _adj("cold colder coldest", "food place"),
    _adj("warm warmer warmest", "food place"),
    _adj("fresh fresher freshest", "food"),
    _adj("sweet sweeter sweetest", "food mass"),
    _adj("long longer longest", "text event"),
    _adj("short shorter shortest", "text event human"),
    _adj("interesting", "text event human abstract"),
    _adj("strange stranger strangest", "human animal thing text event abstract mass"),
    _adj("good better best", "human animal thing food place vehicle text event abstract"),
    _adj("fast faster fastest", "animal vehicle"),
    _adj("slow slower slowest", "animal vehicle"),
    _adj("careful", "human"),
    _adj("useful", "thing abstract text"),
]

_ADJ_SCALES = {a: scale for scale, words in {
    "size": "big small tall short long",
    "age": "old new young ancient modern",
    "colour": "red blue green yellow",
    "speed": "fast slow",
    "temperature": "cold warm",
    "cleanness": "clean dirty",
    "price": "cheap expensive",
    "noise": "quiet noisy",
}.items() for a in words.split()}
_ADVERBS = ("quickly", "slowly", "quietly", "loudly", "happily", "carefully", "suddenly",
            "gently", "easily", "badly", "politely", "proudly", "sadly", "softly", "patiently",
            "again", "together", "here", "there")
_FREQ_ADVERBS = ("often", "always", "never", "usually", "sometimes", "rarely")
_NUMBERS = ("two", "three", "four", "five", "six", "ten", "twenty", "2", "3", "7", "12", "100")
_POSSESSIVES = {  # form -> (lemma, Number of the possessor)
    "my": ("I", "Sing"), "your": ("you", None), "his": ("he", "Sing"), "her": ("she", "Sing"),
    "its": ("it", "Sing"), "our": ("we", "Plur"), "their": ("they", "Plur"),
}
# (subject form, object form, lemma, agreement)
_PRONOUNS_HUMAN = [
    ("I", "me", "I", _Agr("Sing", 1)), ("you", "you", "you", _Agr(None, 2)),
    ("he", "him", "he", _SING3), ("she", "her", "she", _SING3),
    ("we", "us", "we", _Agr("Plur", 1)), ("they", "them", "they", _PLUR3),
]
_PRONOUNS_OTHER = [("it", "it", "it", _SING3), ("they", "them", "they", _PLUR3)]

# preposition -> classes of its object
_PREPS: dict[str, tuple[str, ...]] = {
    "in": ("place", "vehicle", "city"), "on": ("thing", "vehicle"), "at": ("place", "event"),
    "near": ("place", "thing", "vehicle"), "behind": ("place", "thing", "vehicle"),
    "under": ("thing",), "with": ("human", "animal", "thing"), "from": ("place", "city", "human"),
    "to": ("place", "city", "human"), "into": ("place", "vehicle"), "across": ("place",),
    "after": ("event",), "before": ("event",), "during": ("event",),
}
# prepositions that read well after a noun ("the cat under the table")
_NOUN_PREPS = ("in", "on", "near", "behind", "under", "with", "from")
_PAST_TIMES = (("yesterday",), ("last", "night"), ("last", "week"), ("last", "summer"),
               ("NUM", "days", "ago"), ("NUM", "years", "ago"))
_PRES_TIMES = (("every", "day"), ("every", "morning"), ("every", "week"), ("on", "Sundays"),
               ("today",))
_SCONJ = ("because", "when", "while", "although", "if")
_TIME_FORMS = {
    "yesterday": ("NOUN", "NN", {"Number": "Sing"}), "last": ("ADJ", "JJ", {"Degree": "Pos"}),
    "night": ("NOUN", "NN", {"Number": "Sing"}), "week": ("NOUN", "NN", {"Number": "Sing"}),
    "summer": ("NOUN", "NN", {"Number": "Sing"}), "days": ("NOUN", "NNS", {"Number": "Plur"}),
    "years": ("NOUN", "NNS", {"Number": "Plur"}), "ago": ("ADV", "RB", {}),
    "every": ("DET", "DT", {}), "day": ("NOUN", "NN", {"Number": "Sing"}),
    "morning": ("NOUN", "NN", {"Number": "Sing"}), "on": ("ADP", "IN", {}),
    "Sundays": ("PROPN", "NNPS", {"Number": "Plur"}), "today": ("NOUN", "NN", {"Number": "Sing"}),
}
_TIME_LEMMAS = {"days": "day", "years": "year", "Sundays": "Sunday"}


# ============================================================================ grammar
class _Grammar:
    """Builds sentences as lists of :class:`_Tok`; all randomness comes from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rich = False  # long sentences: more modifiers everywhere

    # ---------------------------------------------------------------- small helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.rng.randrange(len(options))]

    def weighted(self, options: Sequence[tuple[str, float]]) -> str:
        total = sum(w for _, w in options)
        r = self.rng.random() * total
        for value, w in options:
            r -= w
            if r < 0:
                return value
        return options[-1][0]

    # ---------------------------------------------------------------- verbs and auxiliaries
    @staticmethod
    def finite(verb: _Verb, tense: str, agr: _Agr) -> _Tok:
        if tense == "Past":
            return _t(verb.past, "VERB", "VBD", verb.base, Tense="Past", VerbForm="Fin")
        if agr.third_sing:
            return _t(verb.s3, "VERB", "VBZ", verb.base, Number="Sing", Tense="Pres",
                      VerbForm="Fin")
        return _t(verb.base, "VERB", "VBP", verb.base, Number=agr.number, Tense="Pres",
                  VerbForm="Fin")

    @staticmethod
    def be(tense: str, agr: _Agr) -> _Tok:
        if tense == "Past":
            if agr.number == "Sing" and agr.person in (1, 3):
                return _t("was", "AUX", "VBD", "be", Number="Sing", Tense="Past",
                          VerbForm="Fin")
            return _t("were", "AUX", "VBD", "be", Number=agr.number, Tense="Past",
                      VerbForm="Fin")
        if agr.number == "Sing" and agr.person == 1:
            return _t("am", "AUX", "VBP", "be", Number="Sing", Tense="Pres", VerbForm="Fin")
        if agr.third_sing:
            return _t("is", "AUX", "VBZ", "be", Number="Sing", Tense="Pres", VerbForm="Fin")
        return _t("are", "AUX", "VBP", "be", Number=agr.number, Tense="Pres", VerbForm="Fin")

    @staticmethod
    def aux(lemma: str, tense: str, agr: _Agr) -> _Tok:
        """``have`` or ``do`` as a finite auxiliary."""
        s3, past = {"have": ("has", "had"), "do": ("does", "did")}[lemma]
        if tense == "Past":
            return _t(past, "AUX", "VBD", lemma, Tense="Past", VerbForm="Fin")
        if agr.third_sing:
            return _t(s3, "AUX", "VBZ", lemma, Number="Sing", Tense="Pres", VerbForm="Fin")
        return _t(lemma, "AUX", "VBP", lemma, Number=agr.number, Tense="Pres", VerbForm="Fin")

    def modal(self, tense: str) -> _Tok:
        form = "could" if tense == "Past" else self.pick(("can", "must"))
        return _t(form, "AUX", "MD", form, Tense=tense, VerbForm="Fin")

    @staticmethod
    def infinitive(verb: _Verb) -> _Tok:
        return _t(verb.base, "VERB", "VB", verb.base, VerbForm="Inf")

    @staticmethod
    def participle(verb: _Verb) -> _Tok:
        return _t(verb.part, "VERB", "VBN", verb.base, VerbForm="Part")

    @staticmethod
    def ing(verb: _Verb, gerund: bool = False) -> _Tok:
        return _t(verb.ing, "VERB", "VBG", verb.base, VerbForm="Ger" if gerund else "Part")

    @staticmethod
    def negation() -> _Tok:
        return _t("not", "PART", "RB", "not")

    def verbs(self, subj_cls: str, need: str) -> list[_Verb]:
        """Verbs whose subject may be of class ``subj_cls`` and that fit ``need``."""
        ok = {
            "any": lambda v: True,
            "intr": lambda v: v.intr and not ({"inf", "that"} & v.flags and not v.obj),
            "trans": lambda v: bool(v.obj),
            "inf": lambda v: "inf" in v.flags,
            "ger": lambda v: "ger" in v.flags,
            "that": lambda v: "that" in v.flags,
            "content": lambda v: bool(v.obj) or (v.intr and not v.flags - {"intr"}),
            # no progressive or gerund of stative verbs ("is wanting")
            "dynamic": lambda v: (bool(v.obj) or (v.intr and not v.flags - {"intr"}))
            and "stat" not in v.flags,
        }[need]
        return [v for v in _VERBS if subj_cls in v.subj and ok(v)]

    # ---------------------------------------------------------------- noun phrases
    def pronoun(self, classes: Sequence[str], role: str) -> tuple[list[_Tok], _Agr, str]:
        if "human" in classes:
            subj, obj, lemma, agr = self.pick(_PRONOUNS_HUMAN)
            cls = "human"
        else:
            subj, obj, lemma, agr = self.pick(_PRONOUNS_OTHER)
            cls = self.pick([c for c in classes if c in _NOUNS] or ["thing"])
        form = subj if role == "subj" else obj
        return [_t(form, "PRON", "PRP", lemma, Number=agr.number)], agr, cls

    def adjectives(self, cls: str, n: int) -> list[_Adj]:
        options = [a for a in _ADJS if cls in a.classes]
        chosen: list[_Adj] = []
        for _ in range(20):
            if len(chosen) >= min(n, len(options)):
                break
            a = self.pick(options)
            # no "big small dog" or "red blue car": at most one adjective per scale
            if all(_ADJ_SCALES.get(a.pos, a.pos) != _ADJ_SCALES.get(c.pos, c.pos)
                   for c in chosen):
                chosen.append(a)
        return chosen

    def determiner(self, number: str, mass: bool) -> list[_Tok]:
        if mass:
            kind = self.weighted([("the", 5), ("none", 3), ("poss", 1.5), ("dem", 1)])
        elif number == "Sing":
            kind = self.weighted([("the", 4), ("a", 3.5), ("dem", 1), ("poss", 1.2),
                                  ("every", 0.4)])
        else:
            kind = self.weighted([("the", 3.5), ("none", 2), ("dem", 0.8), ("poss", 1.2),
                                  ("num", 1.5), ("some", 0.6), ("many", 0.4)])
        if kind == "the":
            return [_t("the", "DET", "DT")]
        if kind == "a":
            return [_t("a", "DET", "DT")]  # becomes "an" before a vowel, see noun_phrase
        if kind == "every":
            return [_t("every", "DET", "DT")]
        if kind == "some":
            return [_t("some", "DET", "DT")]
        if kind == "many":
            return [_t("many", "ADJ", "JJ", Degree="Pos")]
        if kind == "dem":
            near = self.chance(0.5)
            if number == "Plur":
                form, lemma = ("these", "this") if near else ("those", "that")
            else:
                form = lemma = "this" if near else "that"
            return [_t(form, "DET", "DT", lemma, Number=number)]
        if kind == "poss":
            form = self.pick(list(_POSSESSIVES))
            lemma, num = _POSSESSIVES[form]
            return [_t(form, "PRON", "PRP$", lemma, Number=num)]
        if kind == "num":
            return [_t(self.pick(_NUMBERS), "NUM", "CD")]
        return []

    def common_np(
        self, classes: Sequence[str], role: str, tense: str, post: bool, number: str | None
    ) -> tuple[list[_Tok], _Agr, str]:
        cls = self.pick([c for c in classes if c in _NOUNS])
        sing, plur = self.pick(_NOUNS[cls])
        mass = plur is None
        if mass:
            number = "Sing"
        elif number is None:
            number = "Plur" if self.chance(0.4) else "Sing"
        det = self.determiner(number, mass)
        n_adj = int(self.weighted([("0", 5.5), ("1", 3.5), ("2", 1.0)]))
        if self.rich:
            n_adj = max(n_adj, 1)
        adjs = self.adjectives(cls, n_adj)
        adj_toks = [_t(a.pos, "ADJ", "JJ", a.pos, Degree="Pos") for a in adjs]
        if adjs and det and det[0].form == "the" and adjs[0].sup and self.chance(0.15):
            adj_toks = [_t(adjs[0].sup, "ADJ", "JJS", adjs[0].pos, Degree="Sup")]
        if len(adj_toks) == 2 and self.chance(0.3):
            adj_toks.insert(1, _t(",", "PUNCT", ","))
        if number == "Sing":
            noun = _t(sing, "NOUN", "NN", sing, Number="Sing")
        else:
            noun = _t(plur or sing, "NOUN", "NNS", sing, Number="Plur")
        toks = det + adj_toks + [noun]
        if det and det[0].form == "a" and _takes_an(toks[1].form):
            det[0].form = "an"
        agr = _Agr(number, 3)
        if post and role != "pobj":
            r = self.rng.random()
            p_pp, p_rel = (0.3, 0.3) if self.rich else (0.12, 0.1)
            if r < p_pp:
                toks += self.prep_phrase(("place", "thing", "vehicle"), tense, _NOUN_PREPS)
            elif r < p_pp + p_rel:
                toks += self.relative(cls, agr, tense)
        return toks, agr, cls

    def noun_phrase(
        self,
        classes: Sequence[str],
        role: str,
        tense: str,
        *,
        pron: bool = True,
        coord: bool = False,
        post: bool = True,
        number: str | None = None,
    ) -> tuple[list[_Tok], _Agr, str]:
        """A noun phrase of one of ``classes`` for ``role`` (subj, obj or pobj)."""
        options = [("common", 6.0)]
        if pron and number is None and not self.rich:
            options.append(("pron", 2.0))
        if "human" in classes and number in (None, "Sing"):
            options.append(("name", 1.6))
        if coord and number is None:
            options.append(("coord", 0.5))
        kind = self.weighted(options)
        if kind == "pron":
            return self.pronoun(classes, role)
        if kind == "name":
            name = self.pick(_NAMES)
            return [_t(name, "PROPN", "NNP", name, Number="Sing")], _SING3, "human"
        if kind == "coord":
            a, _, cls = self.noun_phrase(classes, role, tense, pron=False, post=False)
            b, _, _ = self.noun_phrase([cls], role, tense, pron=False, post=False)
            return a + [_t("and", "CCONJ", "CC")] + b, _PLUR3, cls
        return self.common_np(classes, role, tense, post, number)

    def prep_phrase(
        self, classes: Sequence[str], tense: str, preps: Sequence[str] = tuple(_PREPS)
    ) -> list[_Tok]:
        """A prepositional phrase headed by one of ``preps`` whose object is of one of
        ``classes`` (when some preposition allows it)."""
        preps = [p for p in preps if set(_PREPS[p]) & set(classes)] or list(preps)
        prep = self.pick(preps)
        obj_classes = [c for c in _PREPS[prep] if c in classes] or list(_PREPS[prep])
        xpos = "TO" if prep == "to" else "IN"
        head = _t(prep, "ADP", xpos)
        if "city" in obj_classes and self.chance(0.35):
            place = self.pick(_PLACES)
            return [head, _t(place, "PROPN", "NNP", place, Number="Sing")]
        obj_classes = [c for c in obj_classes if c != "city"] or ["place"]
        np_toks, _, _ = self.noun_phrase(obj_classes, "pobj", tense, pron="human" in obj_classes)
        return [head] + np_toks

    def relative(self, head_cls: str, agr: _Agr, tense: str) -> list[_Tok]:
        """A subject relative clause: ``who/that/which`` + verb phrase agreeing with the head."""
        if head_cls == "human":
            rel = _t("who", "PRON", "WP") if self.chance(0.7) else _t("that", "PRON", "WDT")
        else:
            rel = _t("which", "PRON", "WDT") if self.chance(0.4) else _t("that", "PRON", "WDT")
        kind = self.pick(("intr", "trans", "prog", "cop_adj"))
        return [rel] + self.verb_phrase(kind, tense, agr, head_cls, adjuncts=False, nested=True)

    # ---------------------------------------------------------------- verb phrases
    def complement(self, verb: _Verb, tense: str, nested: bool, force: bool = False) -> list:
        """The object of ``verb`` (possibly none when it may be intransitive)."""
        if not verb.obj or (verb.intr and not force and self.chance(0.4)):
            return []
        toks, _, _ = self.noun_phrase(verb.obj, "obj", tense, post=not nested)
        return toks

    def adjective_predicate(self, subj_cls: str) -> list[_Tok]:
        adjs = self.adjectives(subj_cls, 2 if self.chance(0.2) else 1)
        toks: list[_Tok] = []
        if self.chance(0.2):
            toks.append(_t(self.pick(("very", "really", "quite")), "ADV", "RB"))
        toks.append(_t(adjs[0].pos, "ADJ", "JJ", adjs[0].pos, Degree="Pos"))
        if len(adjs) > 1:
            toks += [_t("and", "CCONJ", "CC"), _t(adjs[1].pos, "ADJ", "JJ", Degree="Pos")]
        return toks

    def verb_phrase(
        self,
        kind: str,
        tense: str,
        agr: _Agr,
        subj_cls: str,
        verb: _Verb | None = None,
        adjuncts: bool = True,
        nested: bool = False,
    ) -> list[_Tok]:
        """The predicate of a clause whose subject has agreement ``agr`` and class ``subj_cls``.

        Falls back to an adjective predicate when no verb fits the subject class.
        """
        need = {"intr": "intr", "trans": "trans", "prog": "dynamic", "perf": "content",
                "neg": "content", "modal": "content", "inf": "inf", "ger": "ger",
                "that": "that"}.get(kind)
        if need is not None and verb is None:
            options = self.verbs(subj_cls, need)
            if not options:
                kind, need = "cop_adj", None
            else:
                verb = self.pick(options)
        # Every branch below that uses ``verb`` has a ``need``, so it was picked just above.
        verb = cast(_Verb, verb)
        toks: list[_Tok] = []
        if kind in ("intr", "trans"):
            if not nested and self.chance(0.1):
                toks.append(_t(self.pick(_FREQ_ADVERBS), "ADV", "RB"))
            toks.append(self.finite(verb, tense, agr))
            if kind == "trans":
                toks += self.complement(verb, tense, nested, force=True)
        elif kind == "prog":
            toks.append(self.be(tense, agr))
            if self.chance(0.12):
                toks.append(self.negation())
            toks += [self.ing(verb)] + self.complement(verb, tense, nested)
        elif kind == "perf":
            toks += [self.aux("have", tense, agr), self.participle(verb)]
            toks += self.complement(verb, tense, nested)
        elif kind == "neg":
            toks += [self.aux("do", tense, agr), self.negation(), self.infinitive(verb)]
            toks += self.complement(verb, tense, nested)
        elif kind == "modal":
            toks.append(self.modal(tense))
            if self.chance(0.2):
                toks.append(self.negation())
            toks += [self.infinitive(verb)] + self.complement(verb, tense, nested)
        elif kind in ("inf", "ger"):
            inner = self.verbs(subj_cls, "dynamic" if kind == "ger" else "content")
            second = self.pick(inner)
            toks.append(self.finite(verb, tense, agr))
            if kind == "inf":
                toks += [_t("to", "PART", "TO"), self.infinitive(second)]
            else:
                toks.append(self.ing(second, gerund=True))
            toks += self.complement(second, tense, nested)
        elif kind == "that":
            toks.append(self.finite(verb, tense, agr))
            if self.chance(0.85):
                toks.append(_t("that", "SCONJ", "IN"))
            toks += self.clause(tense, embedded=True)
            adjuncts = False
        elif kind == "cop_noun" and subj_cls in ("human", "animal"):  # else an adjective
            toks.append(self.be(tense, agr))
            number = "Sing" if agr.number in ("Sing", None) else "Plur"
            pred, _, _ = self.common_np([subj_cls], "pobj", tense, post=False, number=number)
            if pred[0].upos in ("PRON", "NUM") or pred[0].form in ("every", "many", "some"):
                pred = pred[1:]  # "He is his teacher" reads oddly in bulk; keep it simple
                if number == "Sing":
                    det = "an" if _takes_an(pred[0].form) else "a"
                    pred.insert(0, _t(det, "DET", "DT", "a"))
            toks += pred
        elif kind in ("cop_adj", "cop_noun"):
            toks.append(self.be(tense, agr))
            if self.chance(0.12):
                toks.append(self.negation())
            toks += self.adjective_predicate(subj_cls)
        elif kind == "comp":
            toks.append(self.be(tense, agr))
            adjs = [(a, a.cmp) for a in _ADJS if subj_cls in a.classes and a.cmp]
            if not adjs:
                return toks + self.adjective_predicate(subj_cls)
            adj, cmp = self.pick(adjs)
            other, _, _ = self.noun_phrase([subj_cls], "pobj", tense, post=False)
            toks += [_t(cmp, "ADJ", "JJR", adj.pos, Degree="Cmp"), _t("than", "ADP", "IN")]
            toks += other
        else:  # pragma: no cover - kinds are fixed above
            raise ValueError(kind)
        if adjuncts:
            toks += self.adjuncts(tense, kind)
        return toks

    def time_adverbial(self, tense: str, kind: str) -> list[_Tok]:
        if tense == "Pres" and kind == "prog" and self.chance(0.6):
            return [_t("now", "ADV", "RB")]
        phrase = self.pick(_PAST_TIMES if tense == "Past" else _PRES_TIMES)
        toks = []
        for w in phrase:
            if w == "NUM":
                toks.append(_t(self.pick(("two", "three", "five", "ten")), "NUM", "CD"))
                continue
            upos, xpos, feats = _TIME_FORMS[w]
            toks.append(_t(w, upos, xpos, _TIME_LEMMAS.get(w, w.lower()), **feats))
        return toks

    def adjuncts(self, tense: str, kind: str) -> list[_Tok]:
        toks: list[_Tok] = []
        verbal = kind not in ("cop_adj", "cop_noun", "comp")
        p_adv, p_pp, p_time = (0.4, 0.7, 0.3) if self.rich else (0.2, 0.3, 0.12)
        if verbal and self.chance(p_adv):
            toks.append(_t(self.pick(_ADVERBS), "ADV", "RB"))
        if verbal and self.chance(p_pp):
            toks += self.prep_phrase(("place", "human", "thing", "vehicle", "event", "city"),
                                     tense)
        if self.chance(p_time):
            toks += self.time_adverbial(tense, kind)
        return toks

    # ---------------------------------------------------------------- clauses and sentences
    _KINDS = (("intr", 12), ("trans", 22), ("prog", 10), ("perf", 5), ("cop_adj", 10),
              ("cop_noun", 4), ("comp", 5), ("inf", 6), ("ger", 7), ("neg", 8), ("modal", 6),
              ("that", 5))

    def clause(self, tense: str, embedded: bool = False) -> list[_Tok]:
        """Subject + predicate, all finite verbs in ``tense``."""
        kinds = [(k, w) for k, w in self._KINDS if not (embedded and k == "that")]
        kind = self.weighted(kinds)
        verb = None
        if kind == "cop_noun":
            subj_cls = self.pick(("human", "human", "animal"))
        elif kind in ("cop_adj", "comp"):
            subj_cls = self.pick(("human", "human", "animal", "thing", "place", "food",
                                  "vehicle", "text", "event"))
        else:
            need = {"prog": "dynamic", "perf": "content", "neg": "content",
                    "modal": "content"}.get(kind, kind)
            verb = self.pick([v for v in _VERBS if self.verbs_fit(v, need)])
            subj_cls = self.pick(verb.subj)
        subj, agr, subj_cls = self.noun_phrase([subj_cls], "subj", tense, coord=not embedded,
                                               post=not embedded)
        if verb is not None and subj_cls not in verb.subj:
            verb = None
        return subj + self.verb_phrase(kind, tense, agr, subj_cls, verb, nested=embedded)

    def verbs_fit(self, verb: _Verb, need: str) -> bool:
        return any(verb in self.verbs(c, need) for c in verb.subj)

    def question(self, tense: str) -> list[_Tok]:
        kind = self.weighted([("do", 6), ("be", 4), ("modal", 2), ("wh_obj", 4),
                              ("wh_adv", 3), ("wh_subj", 3)])
        if kind == "be":
            subj_cls = self.pick(("human", "animal", "human"))
            subj, agr, subj_cls = self.noun_phrase([subj_cls], "subj", tense, post=False)
            if self.chance(0.5):
                verb = self.pick(self.verbs(subj_cls, "dynamic"))
                rest = [self.ing(verb)] + self.complement(verb, tense, nested=True)
            else:
                rest = self.adjective_predicate(subj_cls)
            return [self.be(tense, agr)] + subj + rest
        if kind == "wh_subj":
            verb = self.pick(self.verbs("human", "content"))
            wh = _t("who", "PRON", "WP")
            if self.chance(0.3) and "stat" not in verb.flags:
                return [wh, self.be(tense, _SING3), self.ing(verb)] + self.complement(
                    verb, tense, nested=True)
            return [wh, self.finite(verb, tense, _SING3)] + self.complement(
                verb, tense, nested=True, force=True)
        need = "trans" if kind == "wh_obj" else "content"
        verb = self.pick([v for v in _VERBS if self.verbs_fit(v, need)])
        subj_cls = self.pick(verb.subj)
        subj, agr, subj_cls = self.noun_phrase([subj_cls], "subj", tense, post=False)
        if subj_cls not in verb.subj:
            verb = self.pick(self.verbs(subj_cls, need))
        front: list[_Tok] = []
        if kind == "wh_obj":
            if "human" in verb.obj and self.chance(0.5):
                front = [_t("who", "PRON", "WP")]
            elif self.chance(0.3):
                cls = self.pick([c for c in verb.obj if c in _NOUNS])
                sing, plur = self.pick(_NOUNS[cls])
                noun = (_t(sing, "NOUN", "NN", sing, Number="Sing") if plur is None
                        or self.chance(0.6) else _t(plur, "NOUN", "NNS", sing, Number="Plur"))
                front = [_t("which", "DET", "WDT"), noun]
            else:
                front = [_t("what", "PRON", "WP")]
            rest = []
        else:
            rest = self.complement(verb, tense, nested=True)
            if kind == "wh_adv":
                front = [_t(self.pick(("where", "when", "why", "how")), "ADV", "WRB")]
        if kind == "modal":
            aux = [self.modal(tense)]
        else:
            aux = [self.aux("do", tense, agr)]
        toks = front + aux + subj + [self.infinitive(verb)] + rest
        if kind in ("do", "modal", "wh_obj") and self.chance(0.3):
            toks += self.prep_phrase(("place", "thing", "event", "city"), tense)
        return toks

    def statement(self, tense: str) -> list[_Tok]:
        shape = self.weighted([("simple", 62), ("coord", 14), ("sub", 10), ("pre_sub", 5),
                               ("front_time", 5)])
        if shape == "coord":
            comma = [_t(",", "PUNCT", ",")] if self.chance(0.6) else []
            cc = _t(self.pick(("and", "but", "and")), "CCONJ", "CC")
            return self.clause(tense) + comma + [cc] + self.clause(tense)
        if shape == "sub":
            sc = _t(self.pick(_SCONJ), "SCONJ", "IN")
            return self.clause(tense) + [sc] + self.clause(tense, embedded=True)
        if shape == "pre_sub":
            sc = _t(self.pick(_SCONJ), "SCONJ", "IN")
            return [sc] + self.clause(tense, embedded=True) + [_t(",", "PUNCT", ",")] + \
                self.clause(tense)
        if shape == "front_time":
            time = self.time_adverbial(tense, "intr")
            return time + [_t(",", "PUNCT", ",")] + self.clause(tense)
        return self.clause(tense)

    def long_statement(self, tense: str, target: int) -> list[_Tok]:
        """Coordinated and subordinated clauses until at least ``target`` words."""
        self.rich = True
        try:
            toks = self.clause(tense)
            while len(toks) < target:
                link = self.pick(((",", "and"), (",", "but"), (",", "while"), (",", "because"),
                                  (",", "and", "then"), (",", "although")))
                for w in link:
                    if w == ",":
                        toks.append(_t(",", "PUNCT", ","))
                    elif w in ("and", "but"):
                        toks.append(_t(w, "CCONJ", "CC"))
                    elif w == "then":
                        toks.append(_t("then", "ADV", "RB"))
                    else:
                        toks.append(_t(w, "SCONJ", "IN"))
                toks += self.clause(tense)
            return toks
        finally:
            self.rich = False

    def sentence(self, long: bool = False) -> tuple[list[_Tok], str, str]:
        """One sentence with its tense and type labels."""
        tense = self.pick(("Past", "Pres"))
        if long:
            toks, stype = self.long_statement(tense, self.rng.randint(50, 62)), "statement"
            end = "."
        elif self.chance(0.2):
            toks, stype, end = self.question(tense), "question", "?"
        else:
            toks, stype = self.statement(tense), "statement"
            end = "!" if self.chance(0.03) else "."
        toks.append(_t(end, "PUNCT", "."))
        first = toks[0]
        if first.upos != "PROPN" and first.form != "I" and first.form[0].isalpha():
            first.form = first.form[0].upper() + first.form[1:]
        return toks, "past" if tense == "Past" else "present", stype



# ============================================================================ generation
def generate_demo_corpus(n_sentences: int = 400, seed: int = 0) -> Corpus:
    """Generate the demo corpus deterministically from ``seed``.

    About 2.5% of the sentences are long (50 to ~70 words of coordinated clauses); the others
    have 4 to 25 words, and about 20% are questions. Sentences are distinct.

    Returns:
        A corpus with word layers ``upos``, ``xpos``, ``lemma`` and :data:`DEMO_FEATURES`, and
        sentence layers ``tense`` and ``type``.
    """
    rng = random.Random(seed)
    grammar = _Grammar(rng)
    n_long = max(1, round(n_sentences * 0.025)) if n_sentences >= 20 else 0
    long_at = set(rng.sample(range(n_sentences), n_long)) if n_long else set()
    seen: set[str] = set()
    sentences: list[list[_Tok]] = []
    tenses: list[str] = []
    types: list[str] = []
    for i in range(n_sentences):
        for _attempt in range(200):
            toks, tense, stype = grammar.sentence(long=i in long_at)
            text = " ".join(t.form for t in toks)
            ok_len = len(toks) >= 45 if i in long_at else 4 <= len(toks) <= 25
            if ok_len and text not in seen:
                break
        seen.add(text)
        sentences.append(toks)
        tenses.append(tense)
        types.append(stype)
    labels: dict[str, list[list[str]]] = {
        "upos": [[t.upos for t in s] for s in sentences],
        "xpos": [[t.xpos for t in s] for s in sentences],
        "lemma": [[t.lemma for t in s] for s in sentences],
    }
    for feat in DEMO_FEATURES:
        labels[feat] = [[t.feats.get(feat, NO_LABEL) for t in s] for s in sentences]
    return Corpus(
        [[t.form for t in s] for s in sentences],
        labels,
        {"tense": tenses, "type": types},
        "demo",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Write the demo corpus as CoNLL-U (to the given path, or into the package data)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else DEFAULT_OUT
    corpus = generate_demo_corpus()
    write_conllu(corpus, out)
    print(f"wrote {out}: {corpus.n_sentences} sentences, {corpus.n_words} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
