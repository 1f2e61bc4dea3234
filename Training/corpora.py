"""The four training corpora and what their file names say, mirrored by Sources/Output/Corpus.swift.

Every clip becomes {path, corpus, emotion (index into model.EMOTIONS), speaker, sex (0 male, 1 female)}.
A corpus that lacks one of the eight classes simply has no clips of it (see ../shared/data/README.md).
"""
import csv
import pathlib

from model import EMOTIONS

CORPORA = ["ravdess", "tess", "savee", "urdu"]
# Every corpus with a clips.csv manifest (../shared/data/README.md), the four above first.
ALL = CORPORA + ["ased", "baved", "turev", "esd0020", "emospeech"]
AUDIO = (".flac", ".ogg")  # .ogg: the Opus copies that travel to a lent GPU (Training/gpu.sh)
TESS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
        "ps": "surprised", "sad": "sad"}
SAVEE = {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad", "su": "surprised"}
URDU = {"Angry": "angry", "Happy": "happy", "Neutral": "neutral", "Sad": "sad"}
# The classes each corpus has, in model.EMOTIONS order: UAR and "accuracy over its own classes" use these.
CLASSES = {"ravdess": list(EMOTIONS), "tess": [e for e in EMOTIONS if e in TESS.values()],
           "savee": [e for e in EMOTIONS if e in SAVEE.values()], "urdu": [e for e in EMOTIONS if e in URDU.values()]}


def parse(corpus, path):
    """What `path`'s name says in `corpus`, or None when it is not one of that corpus's clips."""
    path = pathlib.Path(path)
    stem = path.stem
    if corpus == "ravdess":  # MM-VV-EE-II-SS-RR-AA, only values RAVDESS uses (as Corpus.ravdessFields)
        f = stem.split("-")
        if len(f) != 7 or not all(len(x) == 2 and x.isascii() and x.isdigit() for x in f):
            return None
        modality, channel, emotion, intensity, statement, repetition, actor = map(int, f)
        if not (1 <= modality <= 3 and channel == 1 and 1 <= emotion <= 8 and 1 <= intensity <= 2
                and (emotion != 1 or intensity == 1) and 1 <= statement <= 2 and 1 <= repetition <= 2 and 1 <= actor <= 24):
            return None
        return {"emotion": emotion - 1, "speaker": f"ravdess-{actor:02d}", "sex": 1 - actor % 2, "actor": actor}
    if corpus == "tess":  # OAF_back_angry (one original is OA_bite_neutral); both speakers are women
        f = stem.split("_")
        if len(f) < 3 or f[-1] not in TESS or f[0] not in ("OAF", "OA", "YAF"):
            return None
        return {"emotion": EMOTIONS.index(TESS[f[-1]]), "speaker": "tess-" + f[0][:2] + "F", "sex": 1}
    if corpus == "savee":  # DC_a01; all four speakers are men
        f = stem.split("_")
        code = f[1].rstrip("0123456789") if len(f) == 2 else ""
        if code not in SAVEE:
            return None
        return {"emotion": EMOTIONS.index(SAVEE[code]), "speaker": "savee-" + f[0], "sex": 0}
    if corpus == "urdu":  # Angry/SM1_F10_A010: folder is the emotion, SM* male, SF* female
        speaker = stem.split("_")[0]
        if path.parent.name not in URDU or not (speaker.startswith("SM") or speaker.startswith("SF")):
            return None
        return {"emotion": EMOTIONS.index(URDU[path.parent.name]), "speaker": "urdu-" + speaker,
                "sex": 0 if speaker.startswith("SM") else 1}
    raise ValueError(corpus)


def clips(root, corpora=CORPORA):
    """Every clip of `corpora` under `root` (../shared/data, or its Opus copy), sorted by path."""
    out = []
    for corpus in corpora:
        for path in sorted(p for p in pathlib.Path(root, corpus).rglob("*") if p.suffix in AUDIO):
            info = parse(corpus, path)
            if info is not None:
                out.append({"path": str(path), "corpus": corpus, **info})
    return out


def manifest(root, corpus):
    """The rows of `corpus`'s clips.csv, in order: {path, corpus, emotion (index or None), speaker,
    sex (0 male, 1 female or None)}; the product's `evaluate` reads the same columns (Manifest.swift)."""
    folder = pathlib.Path(root, corpus)
    with open(folder / "clips.csv", newline="", encoding="utf-8") as f:
        return [{"path": str(folder / r["file"]), "corpus": corpus, "speaker": r["speaker"],
                 "emotion": EMOTIONS.index(r["emotion"]) if r["emotion"] else None,
                 "sex": {"male": 0, "female": 1}.get(r["sex"])} for r in csv.DictReader(f)]
