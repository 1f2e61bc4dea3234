"""Cross-validation through the product: each fold model (runs/foldK.safetensors) scored by the Swift
`emotion-monitor evaluate` on the 4 actors it never heard.

    python3 swift_cv.py [--prefix sn-] [-- EXTRA EVALUATE FLAGS]

Prints accuracy and UAR per fold and their mean +- std: the figures of the card, measured again
through the Swift decoder, front end and CNN instead of PyTorch.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDS = ["1-4", "5-8", "9-12", "13-16", "17-20"]


def main():
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    prefix = args[args.index("--prefix") + 1] if "--prefix" in args else ""
    card_name = "emotion-cnn-sn" if prefix == "sn-" else "emotion-cnn"
    binary = ROOT / ".build/release/emotion-monitor"
    accs, uars = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, actors in enumerate(FOLDS, 1):
            weights = ROOT / "Training/runs" / f"{prefix}fold{k}.safetensors"
            if not weights.exists():
                print(f"fold {k}: {weights.name} missing, skipped")
                continue
            card = json.loads((ROOT / "Models" / f"{card_name}.json").read_text())
            card["weights"] = f"fold{k}.safetensors"
            if "speakerNormalisation" in card:  # the fold's own training actors stand in for the population
                fold = json.loads(weights.with_suffix(".json").read_text())
                card["speakerNormalisation"]["populationMean"] = fold["population_mean"]
            shutil.copyfile(weights, pathlib.Path(tmp) / f"fold{k}.safetensors")
            (pathlib.Path(tmp) / f"fold{k}.json").write_text(json.dumps(card))
            out = subprocess.run([binary, "evaluate", str(ROOT.parent / "shared/data/ravdess"), "--actors", actors,
                                  "--format", "json", "--model", str(pathlib.Path(tmp) / f"fold{k}.json")] + extra,
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            accs.append(r["accuracy"])
            uars.append(r["uar"])
            print(f"fold {k} (actors {actors}): accuracy {100 * r['accuracy']:.1f} %, UAR {100 * r['uar']:.1f} %")
    if accs:
        print(f"mean: accuracy {100 * np.mean(accs):.1f} +- {100 * np.std(accs):.1f} %, "
              f"UAR {100 * np.mean(uars):.1f} +- {100 * np.std(uars):.1f} %")


if __name__ == "__main__":
    main()
