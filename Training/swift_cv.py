"""Every held-out figure of the card, measured again through the product: each RAVDESS fold model
(runs/foldK) scored by `emotion-monitor evaluate` on the 4 actors it never heard, and each
leave-one-corpus-out model (runs/loco-NAME) on the corpus it never heard.

    python3 swift_cv.py [--prefix sn-] [-- EXTRA EVALUATE FLAGS]

Prints per model and the RAVDESS mean +- std: the Swift decoder, front end and CNN instead of PyTorch,
and keeps them in runs/<prefix>swift_cv.json, which export.py puts in the card as the product's figures.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import export

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/data"
FOLDS = ["1-4", "5-8", "9-12", "13-16", "17-20"]


def evaluate(binary, tmp, prefix, run, data, extra):
    """The Swift program's report (one JSON object) for runs/<prefix><run> on `data`, or None if not trained."""
    weights = ROOT / "Training/runs" / f"{prefix}{run}.safetensors"
    if not weights.exists():
        print(f"{run}: {weights.name} missing, skipped")
        return None
    # The card export.py would write for this run (its own training speakers' mean, when speaker-normalised).
    card = export.card(json.loads(weights.with_suffix(".json").read_text()),
                       {"ravdessCrossValidation": {}, "leaveOneCorpusOut": {}}, f"{prefix}{run}")
    shutil.copyfile(weights, pathlib.Path(tmp) / weights.name)
    (pathlib.Path(tmp) / f"{run}.json").write_text(json.dumps(card))
    out = subprocess.run([binary, "evaluate", *data, "--format", "json", "--model", str(pathlib.Path(tmp) / f"{run}.json")] + extra,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


def main():
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    prefix = args[args.index("--prefix") + 1] if "--prefix" in args else ""
    binary = ROOT / ".build/release/emotion-monitor"
    kept = {"command": " ".join(["python3 Training/swift_cv.py", *sys.argv[1:]]), "folds": [], "leaveOneCorpusOut": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for k, actors in enumerate(FOLDS, 1):
            r = evaluate(binary, tmp, prefix, f"fold{k}", [str(DATA / "ravdess"), "--actors", actors], extra)
            if r is None:
                continue
            kept["folds"].append(r)
            print(f"fold {k} (actors {actors}): accuracy {100 * r['accuracy']:.1f} %, UAR {100 * r['uar']:.1f} %, "
                  f"sex {100 * r['sex_accuracy']:.1f} %")
        if kept["folds"]:
            accs, uars, sexes = ([f[key] for f in kept["folds"]] for key in ("accuracy", "uar", "sex_accuracy"))
            kept["ravdess"] = {name: {"mean": round(100 * float(np.mean(v)), 1), "std": round(100 * float(np.std(v)), 1)}
                               for name, v in (("accuracy", accs), ("uar", uars), ("sex_accuracy", sexes))}
            print(f"RAVDESS mean: accuracy {100 * np.mean(accs):.1f} +- {100 * np.std(accs):.1f} %, "
                  f"UAR {100 * np.mean(uars):.1f} +- {100 * np.std(uars):.1f} %, sex {100 * np.mean(sexes):.1f} %")
        for corpus in ["tess", "savee", "urdu"]:
            r = evaluate(binary, tmp, prefix, f"loco-{corpus}", [str(DATA / corpus), "--corpus", corpus], extra)
            if r is None:
                continue
            own = r["own_classes"]
            kept["leaveOneCorpusOut"][corpus] = r
            print(f"{corpus} held out: 8 classes {100 * r['accuracy']:.1f} %, own {len(own['labels'])} classes "
                  f"{100 * own['accuracy']:.1f} % (UAR {100 * own['uar']:.1f} %), sex {100 * r['sex_accuracy']:.1f} %")
    if not extra:  # the product's default settings: what the card reports
        (ROOT / "Training/runs" / f"{prefix}swift_cv.json").write_text(json.dumps(kept))


if __name__ == "__main__":
    main()
