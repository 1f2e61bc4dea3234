"""Export the trained model to Models/ and regenerate the test fixtures that pin Swift to PyTorch.

    python3 export.py          # after run_all.sh: runs/final plus runs/fold1..5 and runs/loco-*
    python3 export.py --speaker-norm   # the speaker-normalised runs (runs/sn-*) as Models/emotion-cnn-sn.*

Writes Models/emotion-cnn.safetensors, Models/emotion-cnn.json (the model card, with the RAVDESS
cross-validation aggregated from runs/fold*.json and the leave-one-corpus-out results from
runs/loco-*.json) and the fixtures under Tests/.
"""
import argparse
import datetime
import json
import pathlib
import shutil

import numpy as np
import soundfile
import torch

import corpora
import frontend as fe
import pitch
import safetensors_io
import speaker
import model as cnn
from model import EMOTIONS, SEXES

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNS = ROOT / "Training" / "runs"
MODELS = ROOT / "Models"
DATA = ROOT.parent / "shared" / "data" / "ravdess"
DATASETS = [
    {"name": "RAVDESS (speech)", "clips": 1200, "speakers": "20 actors (actors 01-20), 10 male, 10 female",
     "language": "North-American English, 2 sentences", "licence": "CC BY-NC-SA 4.0",
     "citation": "Livingstone SR, Russo FA (2018) The Ryerson Audio-Visual Database of Emotional Speech and Song "
                 "(RAVDESS). PLoS ONE 13(5): e0196391. https://doi.org/10.1371/journal.pone.0196391"},
    {"name": "TESS", "clips": 2800, "speakers": "2 women (26 and 64 years)", "language": "Canadian English, 200 words",
     "licence": "CC BY-NC-ND 4.0",
     "citation": "Dupuis K, Pichora-Fuller MK (2010) Toronto Emotional Speech Set, University of Toronto, "
                 "doi:10.5683/SP2/E8H2MF"},
    {"name": "SAVEE", "clips": 480, "speakers": "4 men", "language": "British English, TIMIT sentences",
     "licence": "free for research use",
     "citation": "Haq S, Jackson PJB (2009) Speaker-dependent audio-visual emotion recognition, AVSP"},
    {"name": "URDU", "clips": 400, "speakers": "29 speakers (18 male, 11 female)", "language": "Urdu, unscripted talk shows",
     "licence": "for research purposes",
     "citation": "Latif S, Qayyum A, Usman M, Qadir J (2018) Cross lingual speech emotion recognition: Urdu vs. "
                 "Western languages, FIT"},
]


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


def leave_one_corpus_out():
    """{corpus: figures} from runs/loco-*.json: each corpus scored by the model trained on all the others."""
    out = {}
    for corpus in corpora.CORPORA[1:]:
        path = RUNS / f"loco-{corpus}.json"
        if not path.exists():
            continue
        run = json.loads(path.read_text())
        preds = run["predictions"]
        own = [EMOTIONS.index(e) for e in corpora.CLASSES[corpus]]
        confusion = np.zeros((8, 8), dtype=int)
        own_confusion = np.zeros((len(own), len(own)), dtype=int)
        for r in preds:
            confusion[r["emotion"], int(np.argmax(r["probs"]))] += 1
            own_confusion[own.index(r["emotion"]), int(np.argmax([r["probs"][i] for i in own]))] += 1
        recall = np.diag(own_confusion) / own_confusion.sum(axis=1)
        out[corpus] = {
            "clips": len(preds),
            "accuracy8": round(100 * float(np.trace(confusion) / confusion.sum()), 1),
            "accuracyOwn": round(100 * float(np.trace(own_confusion) / own_confusion.sum()), 1),
            "uarOwn": round(100 * float(recall.mean()), 1),
            "sex_accuracy": round(100 * float(np.mean([np.argmax(r["sex_probs"]) == r["sex"] for r in preds])), 1),
            "recallOwn": {corpora.CLASSES[corpus][i]: round(100 * float(x), 1) for i, x in enumerate(recall)},
            "confusion": {"rows": "truth", "columns": "predicted", "labels": EMOTIONS, "matrix": confusion.tolist()},
            "trainedOn": [c for c in run["corpora"] if c != corpus], "epochs": run["epochs"],
        }
    return out


def product_figures(prefix=""):
    """The same models scored by `emotion-monitor evaluate` (runs/<prefix>swift_cv.json, from swift_cv.py):
    the program's decoder, speech detector and CNN on the FLAC originals. These are what a user gets;
    the PyTorch figures beside them were scored on the audio the runs trained on."""
    path = RUNS / f"{prefix}swift_cv.json"
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    pct = lambda x: round(100 * x, 1)
    return {"command": kept["command"],
            "protocol": "emotion-monitor evaluate with its defaults (Silero VAD), on the FLAC originals; a clip in "
                        "which no speech is heard counts as wrong",
            "ravdess": kept.get("ravdess"),
            "ravdessFolds": [pct(f["accuracy"]) for f in kept["folds"]],
            "leaveOneCorpusOut": {c: {"accuracy8": pct(r["accuracy"]), "accuracyOwn": pct(r["own_classes"]["accuracy"]),
                                      "uarOwn": pct(r["own_classes"]["uar"]), "sex_accuracy": pct(r["sex_accuracy"])}
                                  for c, r in kept["leaveOneCorpusOut"].items()}}


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
                    "17-20); each fold model trained on the other 16 actors and every clip of TESS, SAVEE and URDU; "
                    "clip label = mean softmax over the 3 s windows (0.5 s hop) covering the speech region",
        "folds": len(folds),
        "accuracy": {"mean": pct(accs), "std": round(100 * float(np.std(accs)), 1), "per_fold": [round(100 * a, 1) for a in accs]},
        "uar": {"mean": pct(uars), "std": round(100 * float(np.std(uars)), 1)},
        "sex_accuracy": {"mean": pct(sexes), "std": round(100 * float(np.std(sexes)), 1)},
        "recall": {e: round(100 * float(confusion[i, i] / confusion[i].sum()), 1) if confusion[i].sum() else None
                   for i, e in enumerate(EMOTIONS)},
        "confusion": {"rows": "truth", "columns": "predicted", "labels": EMOTIONS, "matrix": confusion.tolist()},
        "epochs": [f["epochs"] for f in folds],
    }


def card(final, evaluation, name):
    """The model card: what inference needs (front end, architecture) and what people need (data,
    licence terms, how it was trained and measured, where it fails)."""
    cv, loco = evaluation["ravdessCrossValidation"], evaluation["leaveOneCorpusOut"]
    product = evaluation.get("product")
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
        "architecture": {"channels": final["channels"], "batchNormEpsilon": 1e-5, "sexPitchInputs": 2,
                         "description": "per block: conv 3x3 (no bias) -> batch norm -> ReLU -> max-pool 2x2; then "
                                        "mean over frequency, [mean; max] over time, dropout 0.3, linear heads for "
                                        "8 emotions and 2 speaker sexes; the sex head also takes the window's pitch "
                                        "statistics (median log2(F0/150 Hz) over loud voiced frames, voiced fraction; "
                                        "Training/pitch.py, Sources/Features/PitchTracker.swift)"},
        "training": {"data": "every clip of RAVDESS actors 01-20, TESS, SAVEE and URDU (4880 clips, 16 kHz mono)",
                     "epochs": final["epochs"], "clipsPerEpoch": final["epoch_clips"], "seed": final["seed"],
                     "sampling": "each corpus drawn with a share proportional to sqrt(speakers x clips) "
                                 f"({final['shares']}), equally over the classes it has",
                     "recipe": "random 3 s crops around the speech region; speed 0.9/1.0/1.1 per batch; reverb (RT60 "
                               "0.15-0.9 s) and coloured noise (white/pink/brown, 5-30 dB SNR) on 40 % of crops each; "
                               "random EQ (tilt +-6 dB, low-pass 3.4-8 kHz, high-pass 0-300 Hz) on half; VTLP (mel bank "
                               "warped 0.88-1.12) on 70 % of batches; gain +-6 dB; Gaussian noise 15-40 dB SNR on "
                               "half; pitch statistic shifted by 0.87-1.15x on half (apart from the spectrum); "
                               "SpecAugment (2 freq masks <= 8 bands, 2 time masks <= 25 frames); mixup alpha 0.4 on "
                               "half the batches; label smoothing 0.1; loss CE(emotion) + 0.3 CE(sex); AdamW lr 4e-3 "
                               f"wd 1e-3, one-cycle 15% warm-up, batch 128; torch {final.get('torch', '2.13.0+cpu')} on "
                               f"{final.get('device', 'cpu')}" + (", bf16 autocast" if final.get("bf16") else ", fp32")
                               + f"; audio: {final.get('audio', 'FLAC')}",
                     "minutes": round(final["minutes"], 1),
                     "command": "Training/gpu.sh on a GPU (each run's epochs fitted to a shared deadline), or "
                                "Training/run_all.sh on a CPU"},
        "evaluation": {
            "ravdessCrossValidation": cv,
            "leaveOneCorpusOut": {
                "protocol": "for each of TESS, SAVEE and URDU, a model trained on every other corpus (RAVDESS actors "
                            "01-20 included) scored on all of that corpus: accuracy over the 8 classes (what a user "
                            "sees), accuracy and UAR over the corpus's own classes (the best-scoring of those), "
                            "speaker-sex accuracy; clip label = mean softmax over the 3 s windows covering the speech",
                "corpora": loco},
            "reproduce": "python3 Training/swift_cv.py (scores every fold and held-out-corpus model through "
                         "emotion-monitor evaluate)",
            "product": product,
        },
        "datasets": DATASETS,
        "terms": "The weights were learned from corpora released for non-commercial research only (above): use them for "
                 "non-commercial research, credit each corpus, and respect the most restrictive of their terms "
                 "(TESS: CC BY-NC-ND 4.0, RAVDESS: CC BY-NC-SA 4.0). The program's code has its own licence (LICENSE).",
        "limitations": "Acted or elicited speech from 55 speakers in English and Urdu; on corpora it never heard it is "
                       + (f"right on {min(c['accuracy8'] for c in loco.values()):.0f}-"
                          f"{max(c['accuracy8'] for c in loco.values()):.0f} % of the clips over the eight classes "
                          "(evaluation.leaveOneCorpusOut), far below the RAVDESS figure. " if loco else "") +
                       "Spontaneous speech, other languages, children, far or noisy microphones are "
                       "unmeasured and likely worse. 'calm' exists only in RAVDESS.",
    }
    if "population_mean" in final:
        result["speakerNormalisation"] = {
            "populationMean": final["population_mean"],
            "onlinePriorSeconds": cv["onlinePriorSeconds"] if cv else 2.0,
            "speechThresholdDbfs": speaker.VOICE_DBFS,
            "description": "before the window z-norm, every log-mel frame minus the speaker's mean log-mel over speech "
                           "frames (frames whose first two 10 ms energies average above -60 dBFS); training used each "
                           "speaker's mean over their neutral clips, what a calibration in a normal voice gives; "
                           "populationMean is the mean of those over the training speakers",
        }
        result["normalisation"] = "speaker mean subtracted per frame, then " + result["normalisation"]
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
    f0, levels = pitch.frames_f0(torch.from_numpy(wave)[None])
    safetensors_io.save(ROOT / "Tests/FeaturesTests/Fixtures/frontend.safetensors",
                        {"audio": wave, "logmel": reference.astype(np.float32),
                         "region": np.array(region, dtype=np.float32),
                         "speaker_mean": speaker_mean.mean().astype(np.float32),
                         "speaker_frames": np.array([speaker_mean.count], dtype=np.float32),
                         "f0": f0[0].numpy(), "levels": levels[0].numpy(),
                         "pitch_stats": pitch.stats(f0, levels)[0].numpy()},
                        {"clip": clip.name, "generator": "Training/export.py (numpy float64 reference)"})

    logmel = fe.LogMel()
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    waves = []
    for clip_name in ["Actor_02/03-01-03-02-01-01-02.flac", "Actor_07/03-01-04-01-02-02-07.flac"]:
        x, _ = soundfile.read(DATA / clip_name, dtype="float32")
        start = fe.window_starts(fe.speech_region(x), len(x))[0]
        waves.append(torch.from_numpy(fe.cut(x, start, w)))
    rng = np.random.default_rng(1)
    waves.append(torch.from_numpy(rng.standard_normal(w).astype(np.float32) * 0.01))
    waves = torch.stack(waves)
    windows = logmel.logmel(waves)  # (3, frames, mels): frame-major, as Swift's MelSpectrogram produces
    pitch_stats = pitch.window_stats(waves)
    tensors = {"windows": windows.numpy(), "pitch": pitch_stats.numpy()}
    feats = windows
    if population is not None:  # one speaker mean per window: the population mean, shifted ones
        means = torch.tensor(np.stack([population, population + 0.5, population - 1.0]), dtype=torch.float32)
        feats = windows - means[:, None, :]
        tensors["speaker_means"] = means.numpy()
    model.eval()
    with torch.no_grad():
        emotion, sex = model(fe.znorm(feats.transpose(1, 2)).unsqueeze(1), pitch_stats)
    tensors.update({"emotion_logits": emotion.numpy(), "sex_logits": sex.numpy()})
    safetensors_io.save(ROOT / f"Tests/ModelTests/Fixtures/{name}.golden.safetensors", tensors,
                        {"generator": "Training/export.py (PyTorch eval mode, fp32)"})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speaker-norm", action="store_true", help="export the speaker-normalised runs (runs/sn-*)")
    prefix, name = ("sn-", "emotion-cnn-sn") if p.parse_args().speaker_norm else ("", "emotion-cnn")
    final = json.loads((RUNS / f"{prefix}final.json").read_text())
    evaluation = {"ravdessCrossValidation": cross_validation(prefix), "leaveOneCorpusOut": leave_one_corpus_out(),
                  "product": product_figures(prefix)}
    MODELS.mkdir(exist_ok=True)
    shutil.copyfile(RUNS / f"{prefix}final.safetensors", MODELS / f"{name}.safetensors")
    (MODELS / f"{name}.json").write_text(json.dumps(card(final, evaluation, name), indent=2) + "\n")
    model = cnn.load(MODELS / f"{name}.safetensors", final["channels"])
    population = np.array(final["population_mean"], dtype=np.float32) if "population_mean" in final else None
    fixtures(model, name, population)
    print(json.dumps(evaluation, indent=1))


if __name__ == "__main__":
    main()
