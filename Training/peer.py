"""The peer that `analyze` is measured against: the shipped card's front end and weights run the way
most speech-emotion projects run them (librosa for decoding, resampling and the log-mel, PyTorch for
the CNN, or Whisper's log-mel, encoder and head for an encoder card), on one core, clip for clip as `analyze` does (speech region, 3 s windows 0.5 s apart, mean
of their softmax; `analyze` runs with `--hop 0.5` so that both take the same windows: its own default
hop is 1 s; with --batch N the windows of N files at a time go through the encoder together, as
`analyze` batches a group of short files'). In the same run it times `emotion-monitor analyze --jobs 1` on the same core, and
checks that both give every file the same label.

    python3 Training/peer.py [--model Models/emotion-cnn.json] [--limit N] [--vad] [--batch N] [DIR]   # DIR: RAVDESS by default

Without --vad both sides gate on energy alone (`analyze --vad energy`): the same model and the same
windows, so the labels must agree. With --vad, `analyze` runs its Silero VAD and the peer runs the
same model the way Python projects do (silero-vad's get_speech_timestamps), a file without speech
getting no label. Prints each side's seconds and peak memory, and the labels that differ.
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")})
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, inherited by `analyze`

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOP = 0.5  # seconds between windows: Training/frontend.py's WINDOW_HOP_SECONDS (checked once it is imported)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", nargs="?", default=str(ROOT.parent / "shared/data/ravdess"))
    p.add_argument("--model", default=str(ROOT / "Models/emotion-cnn.json"))
    p.add_argument("--limit", type=int, default=240)
    p.add_argument("--binary", default=str(ROOT / ".build/release/emotion-monitor"))
    p.add_argument("--batch", type=int, default=1, help="encoder cards: run the windows of this many files through "
                   "PyTorch at once (analyze batches up to 16 short files' windows)")
    p.add_argument("--vad", action="store_true", help="both sides run Silero VAD (pip install silero-vad for the peer)")
    args = p.parse_args()
    files = sorted(str(f) for f in pathlib.Path(args.directory).rglob("*") if f.suffix.lower() in (".wav", ".flac"))[: args.limit]
    if not files:
        sys.exit(f"{args.directory}: no audio files")
    card = json.loads(pathlib.Path(args.model).read_text())
    if "speakerNormalisation" in card:
        sys.exit(f"{args.model}: the peer runs models without speaker normalisation")

    # The product, first, so that the peer's imports do not count in its memory.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([args.binary, "analyze", "--jobs", "1", "--format", "jsonl", "--model", args.model,
                          "--vad", "silero" if args.vad else "energy", "--hop", str(HOP), *files], capture_output=True, text=True).stdout
    product_wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    product_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    product_labels = {r["file"]: r.get("label") for r in map(json.loads, out.splitlines())}

    t_start = time.perf_counter()
    import librosa
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "Training"))
    import frontend as fe
    import model as cnn
    assert fe.WINDOW_HOP_SECONDS == HOP, "peer.py's HOP must be frontend.py's WINDOW_HOP_SECONDS"

    torch.set_num_threads(1)
    f = card["features"]
    if "encoder" in card:
        import safetensors_io
        import whisper
        states = card["encoder"]["states"]
        encoder = whisper.Encoder(whisper.read_ct2(card["encoder"]["file"]), layers=states - 1)
        head = {k: torch.from_numpy(v) for k, v in safetensors_io.load(pathlib.Path(args.model).parent / card["weights"]).items()}
    else:
        channels = tuple(card["architecture"]["channels"])
        pitch_inputs = card["architecture"].get("sexPitchInputs", 0)
        model = cnn.load(pathlib.Path(args.model).parent / card["weights"], channels, pitch_inputs)
    if args.vad:
        import silero_vad
        vad = silero_vad.load_silero_vad()
    window = int(card["windowSeconds"] * f["sampleRate"])
    frames = 1 + (window - f["windowLength"]) // f["hopLength"]
    imported = time.perf_counter() - t_start

    floor = np.float32(np.log(f["logFloor"]))

    def speech(path):
        """The file's samples and speech region, or None where the peer hears no speech."""
        wave, _ = librosa.load(path, sr=f["sampleRate"], mono=True, res_type="soxr_hq")
        region = fe.speech_region(wave)
        if region is None or args.vad and not silero_vad.get_speech_timestamps(wave, vad, threshold=0.3, min_speech_duration_ms=50):
            return None
        return wave, region

    @torch.no_grad()
    def encoder_labels(paths):
        """Whisper's log-mel per window, the encoder, the head of train_head.py: every window of the
        files `paths` through the encoder at once."""
        heard = {path: speech(path) for path in paths}
        cuts = {path: [fe.cut(h[0], s, window) for s in fe.window_starts(h[1], len(h[0]))] for path, h in heard.items() if h}
        out = {path: None for path in paths}
        if cuts:
            waves = torch.from_numpy(np.stack([w for ws in cuts.values() for w in ws]))
            pooled = whisper.pooled(encoder.hidden_states(whisper.log_mel(waves)))[:, :states]
            probabilities = (pooled.reshape(len(pooled), -1) @ head["emotion.weight"].T + head["emotion.bias"]).softmax(-1)
            first = 0
            for path, ws in cuts.items():
                out[path] = card["labels"][int(probabilities[first:first + len(ws)].mean(0).argmax())]
                first += len(ws)
        return out

    @torch.no_grad()
    def cnn_label(path):
        heard = speech(path)
        if heard is None:
            return None
        wave, region = heard
        # The whole file's log-mel, then each window's frames from the frame its start falls in, as
        # `analyze` does (log-floor frames outside the file). librosa centres the 400-sample window in
        # each 512-sample frame; the card's frames start with it, so shift by the difference.
        shifted = np.pad(wave, ((f["fftSize"] - f["windowLength"]) // 2, 0))
        mel = librosa.feature.melspectrogram(y=shifted, sr=f["sampleRate"], n_fft=f["fftSize"], hop_length=f["hopLength"],
                                             win_length=f["windowLength"], window="hann", center=False, power=2.0,
                                             n_mels=f["melBands"], fmin=f["fmin"], fmax=f["fmax"], htk=True, norm=None)
        logmel = np.log(mel.T + f["logFloor"]).astype(np.float32)
        starts = [s // f["hopLength"] for s in fe.window_starts(region, len(wave))]
        windows = np.full((len(starts), frames, f["melBands"]), floor, dtype=np.float32)
        for i, first in enumerate(starts):
            lo, hi = max(first, 0), min(first + frames, len(logmel))
            if hi > lo:
                windows[i, lo - first: hi - first] = logmel[lo:hi]
        # The sex head's pitch inputs do not touch the emotion logits.
        emotion, _ = model(fe.znorm(torch.from_numpy(windows).transpose(1, 2)).unsqueeze(1), torch.zeros(len(starts), pitch_inputs))
        return card["labels"][int(emotion.softmax(-1).mean(0).argmax())]

    def labels_of(paths):
        return encoder_labels(paths) if "encoder" in card else {path: cnn_label(path) for path in paths}

    group = args.batch if "encoder" in card else 1
    labels_of(files[:1])  # numba compiles librosa's kernels on first use: not part of the timed work
    t0 = time.perf_counter()
    labels = {}
    for first in range(0, len(files), group):
        labels.update(labels_of(files[first:first + group]))
    peer_timed = time.perf_counter() - t0
    peer_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    product_peak = after.ru_maxrss / 1024

    differ = [p for p in files if labels[p] != product_labels.get(p)]
    print(f"{len(files)} files from {args.directory}, model {card['name']}, one core (cpu {min(os.sched_getaffinity(0))})")
    print(f"peer (librosa {librosa.__version__} + torch {torch.__version__}, {group} file(s) at a time): timed part {peer_timed:.2f} s, "
          f"with imports and model {peer_timed + imported:.2f} s, peak {peer_peak:.0f} MB resident")
    print(f"emotion-monitor analyze --jobs 1: whole process {product_wall:.2f} s wall, {product_cpu:.2f} s CPU, "
          f"peak {product_peak:.0f} MB resident")
    print(f"analyze is {peer_timed / product_wall:.2f}x faster than the peer's timed part, "
          f"{(peer_timed + imported) / product_wall:.2f}x counting its start-up")
    print(f"labels: {len(files) - len(differ)} of {len(files)} identical" + "".join(f"\n  {p}: peer {labels[p]}, analyze {product_labels.get(p)}" for p in differ))


if __name__ == "__main__":
    main()
