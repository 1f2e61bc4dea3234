"""Export the trained model to Models/ and regenerate the test fixtures that pin Swift to PyTorch.

    python3 export.py          # after train.py --final (and, for the card's CV figures, the 5 folds)
    python3 export.py --speaker-norm   # the speaker-normalised runs (runs/sn-*) as Models/emotion-cnn-sn.*

Writes Models/emotion-cnn.safetensors, Models/emotion-cnn.json (the model card, with the
cross-validation results aggregated from runs/fold*.json) and the fixtures under Tests/.
"""
import argparse
import datetime
import json
import pathlib
import shutil

import numpy as np
import soundfile
import torch

import frontend as fe
import safetensors_io
import speaker
from model import EMOTIONS, SEXES, EmotionCNN

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = ROOT / "Training" / "runs"
MODELS = ROOT / "Models"
DATA = ROOT.parent / "shared" / "data" / "ravdess"


def cross_validation(prefix=""):
    """Mean and std over the 5 actor folds, and the pooled confusion matrix, from runs/fold*.json;
    for speaker-normalised runs (runs/sn-fold*.json), the same for each normalisation mode."""
    folds = [json.loads(p.read_text()) for p in sorted(RUNS.glob(f"{prefix}fold*.json"))]
    if not folds:
        return None
    if "modes" not in folds[0]:
        return summarise(folds, [f["predictions"] for f in folds])
    modes = {m: summarise(folds, [f["modes"][m] for f in folds]) for m in folds[0]["modes"]}
    online = {m: v for m, v in modes.items() if m.startswith("online:")}
    best = max(online, key=lambda m: online[m]["accuracy"]["mean"])
    return {"protocol": modes["none"]["protocol"] + "; speaker-normalised model, each actor's 56 non-neutral clips "
                        "scored under three ways of getting the speaker mean: none (population mean of the training "
                        "actors' neutral means), online (running mean over the clip's own speech, starting from the population mean "
                        "weighted as N seconds of speech), neutral (mean over the actor's 4 neutral clips)",
            "onlinePriorSeconds": float(best.split(":")[1]),
            "none": modes["none"], "online": modes[best], "neutral": modes["neutral"],
            "online_priors": {m.split(":")[1]: v["accuracy"]["mean"] for m, v in online.items()},
            "folds": len(folds), "epochs": folds[0]["epochs"]}


def summarise(folds, predictions):
    confusion = np.zeros((8, 8), dtype=int)
    accs, uars, sexes = [], [], []
    for preds in predictions:
        c = np.zeros((8, 8), dtype=int)
        for r in preds:
            c[r["emotion"], int(np.argmax(r["probs"]))] += 1
        confusion += c
        accs.append(np.trace(c) / c.sum())
        present = c.sum(axis=1) > 0
        uars.append(np.mean(np.diag(c)[present] / c.sum(axis=1)[present]))
        sexes.append(np.mean([np.argmax(r["sex_probs"]) == r["sex"] for r in preds]))
    pct = lambda xs: round(100 * float(np.mean(xs)), 1)
    return {
        "protocol": "5-fold cross-validation by actor on RAVDESS actors 01-20 (folds 01-04, 05-08, 09-12, 13-16, "
                    "17-20); each fold model trained on the other 16 actors; clip label = mean softmax over the 3 s "
                    "windows (0.5 s hop) covering the speech region",
        "folds": len(folds),
        "accuracy": {"mean": pct(accs), "std": round(100 * float(np.std(accs)), 1), "per_fold": [round(100 * a, 1) for a in accs]},
        "uar": {"mean": pct(uars), "std": round(100 * float(np.std(uars)), 1)},
        "sex_accuracy": {"mean": pct(sexes), "std": round(100 * float(np.std(sexes)), 1)},
        "recall": {e: round(100 * float(confusion[i, i] / confusion[i].sum()), 1) if confusion[i].sum() else None
                   for i, e in enumerate(EMOTIONS)},
        "confusion": {"rows": "truth", "columns": "predicted", "labels": EMOTIONS, "matrix": confusion.tolist()},
        "epochs": folds[0]["epochs"],
    }


def card(final, evaluation, name):
    result = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "weights": f"{name}.safetensors",
        "labels": EMOTIONS,
        "sexLabels": SEXES,
        "features": {"sampleRate": fe.SAMPLE_RATE, "windowLength": fe.WIN, "hopLength": fe.HOP, "fftSize": fe.N_FFT,
                     "melBands": fe.N_MELS, "fmin": fe.FMIN, "fmax": fe.FMAX, "logFloor": fe.LOG_FLOOR,
                     "description": "periodic Hann window, no centring, power spectrum, triangular HTK-mel filters "
                                    "(peak 1, unnormalised), log(mel + logFloor)"},
        "windowSeconds": fe.WINDOW_SECONDS,
        "normalisation": "per window: subtract the mean and divide by the (population) std of all its log-mel values",
        "architecture": {"channels": final["channels"], "batchNormEpsilon": 1e-5,
                         "description": "per block: conv 3x3 (no bias) -> batch norm -> ReLU -> max-pool 2x2; then "
                                        "mean over frequency, [mean; max] over time, dropout 0.3, linear heads for "
                                        "8 emotions and 2 speaker sexes"},
        "training": {"data": "RAVDESS speech, actors 01-20 (1200 clips, 16 kHz mono)", "epochs": final["epochs"],
                     "seed": final["seed"],
                     "recipe": "random 3 s crops around the speech region; speed 0.9/1.0/1.1 per batch; Gaussian "
                               "noise 15-40 dB SNR on half the crops; gain +-6 dB; SpecAugment (2 freq masks <= 8 "
                               "bands, 2 time masks <= 25 frames); mixup alpha 0.4 on half the batches; label "
                               "smoothing 0.1; loss CE(emotion) + 0.3 CE(sex); AdamW lr 4e-3 wd 1e-3, one-cycle "
                               "15% warm-up, batch 128; fp32 on CPU (torch 2.13.0+cpu)",
                     "command": "Training/run_all.sh"},
        "evaluation": evaluation,
        "dataset": {"name": "RAVDESS (speech)", "licence": "CC BY-NC-SA 4.0",
                    "citation": "Livingstone SR, Russo FA (2018) The Ryerson Audio-Visual Database of Emotional Speech "
                                "and Song (RAVDESS). PLoS ONE 13(5): e0196391. https://doi.org/10.1371/journal.pone.0196391"},
        "limitations": "Acted North-American English speech from 20 young adult actors (RAVDESS actors 01-20), studio quality; accuracy on "
                       "spontaneous speech, other languages, far microphones or noisy rooms is lower and unmeasured.",
    }
    if "population_mean" in final:
        result["speakerNormalisation"] = {
            "populationMean": final["population_mean"],
            "onlinePriorSeconds": evaluation["onlinePriorSeconds"] if evaluation else 2.0,
            "speechThresholdDbfs": speaker.VOICE_DBFS,
            "description": "before the window z-norm, every log-mel frame minus the speaker's mean log-mel over speech "
                           "frames (frames whose first two 10 ms energies average above -60 dBFS); training used each "
                           "actor's mean over their 4 neutral clips, what a calibration in a normal voice gives; "
                           "populationMean is the mean of those over the training actors",
        }
        result["normalisation"] = "speaker mean subtracted per frame, then " + result["normalisation"]
        if evaluation:
            result["limitations"] += (
                f" Without a speaker profile (online or none) this model scores {evaluation['online']['accuracy']['mean']} % "
                f"against {evaluation['neutral']['accuracy']['mean']} % with one, and its speaker-sex estimate drops from "
                f"{evaluation['neutral']['sex_accuracy']['mean']} % to {evaluation['online']['sex_accuracy']['mean']} %.")
    return result


def fixtures(model, name, population=None):
    """Front-end reference (numpy, float64) and golden CNN logits (PyTorch) for the Swift tests."""
    clip = DATA / "Actor_01" / "03-01-05-02-01-01-01.flac"
    wave, _ = soundfile.read(clip, dtype="float32")
    reference = fe.logmel_numpy(wave)
    torch_feats = fe.LogMel().logmel(torch.from_numpy(wave)[None])[0].numpy()
    gap = np.abs(torch_feats - reference).max()
    assert gap < 1e-3, f"torch front end differs from the numpy reference by {gap}"
    region = fe.speech_region(wave)
    speaker_mean = speaker.SpeechSum().add_clip(reference, wave)
    safetensors_io.save(ROOT / "Tests/FeaturesTests/Fixtures/frontend.safetensors",
                        {"audio": wave, "logmel": reference.astype(np.float32),
                         "region": np.array(region, dtype=np.float32),
                         "speaker_mean": speaker_mean.mean().astype(np.float32),
                         "speaker_frames": np.array([speaker_mean.count], dtype=np.float32)},
                        {"clip": clip.name, "generator": "Training/export.py (numpy float64 reference)"})

    logmel = fe.LogMel()
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    windows = []
    for clip_name in ["Actor_02/03-01-03-02-01-01-02.flac", "Actor_07/03-01-04-01-02-02-07.flac"]:
        x, _ = soundfile.read(DATA / clip_name, dtype="float32")
        start = fe.window_starts(fe.speech_region(x), len(x))[0]
        windows.append(logmel.logmel(torch.from_numpy(fe.cut(x, start, w))[None])[0])
    rng = np.random.default_rng(1)
    windows.append(logmel.logmel(torch.from_numpy(rng.standard_normal(w).astype(np.float32) * 0.01)[None])[0])
    windows = torch.stack(windows)  # (3, frames, mels): frame-major, as Swift's MelSpectrogram produces
    tensors = {"windows": windows.numpy()}
    feats = windows
    if population is not None:  # one speaker mean per window: the population mean, shifted ones
        means = torch.tensor(np.stack([population, population + 0.5, population - 1.0]), dtype=torch.float32)
        feats = windows - means[:, None, :]
        tensors["speaker_means"] = means.numpy()
    model.eval()
    with torch.no_grad():
        emotion, sex = model(fe.znorm(feats.transpose(1, 2)).unsqueeze(1))
    tensors.update({"emotion_logits": emotion.numpy(), "sex_logits": sex.numpy()})
    safetensors_io.save(ROOT / f"Tests/ModelTests/Fixtures/{name}.golden.safetensors", tensors,
                        {"generator": "Training/export.py (PyTorch eval mode, fp32)"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speaker-norm", action="store_true", help="export the speaker-normalised runs (runs/sn-*)")
    prefix, name = ("sn-", "emotion-cnn-sn") if p.parse_args().speaker_norm else ("", "emotion-cnn")
    final = json.loads((RUNS / f"{prefix}final.json").read_text())
    evaluation = cross_validation(prefix)
    MODELS.mkdir(exist_ok=True)
    shutil.copyfile(RUNS / f"{prefix}final.safetensors", MODELS / f"{name}.safetensors")
    (MODELS / f"{name}.json").write_text(json.dumps(card(final, evaluation, name), indent=2) + "\n")
    model = EmotionCNN(tuple(final["channels"]))
    state = {k: torch.from_numpy(v.copy()) for k, v in safetensors_io.load(MODELS / f"{name}.safetensors").items()}
    model.load_state_dict(state, strict=False)
    population = np.array(final["population_mean"], dtype=np.float32) if "population_mean" in final else None
    fixtures(model, name, population)
    print(json.dumps(evaluation, indent=1))


if __name__ == "__main__":
    main()
