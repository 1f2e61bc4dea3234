"""Train one model: a RAVDESS cross-validation fold, a held-out corpus, or the final model.

    python3 train.py --fold 3          # all corpora but RAVDESS actors 09-12, evaluated on those actors
    python3 train.py --corpus savee    # all corpora but SAVEE, evaluated on SAVEE (leave one corpus out)
    python3 train.py --final           # every clip of every corpus: the model Models/ ships
    python3 train.py --fold 3 --speaker-norm   # with speaker normalisation (runs/sn-fold3.*)

Writes runs/<name>.safetensors (weights), runs/<name>.json (held-out predictions per clip) and a
resumable checkpoint runs/<name>.ckpt every 5 epochs.
"""
import argparse
import copy
import json
import math
import os
import pathlib
import time

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

import augment
import corpora
import frontend as fe
import pitch
import safetensors_io
import speaker
from model import EMOTIONS, EmotionCNN

FOLDS = [range(1, 5), range(5, 9), range(9, 13), range(13, 17), range(17, 21)]
# Weights (seconds of speech) of the population mean in the online running mean: each is scored.
ONLINE_PRIORS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
SPEEDS = [(0.9, 10, 9), (1.0, 1, 1), (1.1, 10, 11)]  # factor, resample up, down
TRIAL_STEPS = 20  # timed to fit --deadline


def load_clips(root, names):
    clips = corpora.clips(root, names)
    for c in clips:
        x, sr = soundfile.read(c["path"], dtype="float32")
        assert sr == fe.SAMPLE_RATE and x.ndim == 1, c["path"]
        c["wave"] = x
    return clips


def sampling_weights(clips):
    """Per-clip draw probabilities: each corpus gets a share growing with the square root of its
    speakers x clips (many speakers count, 2800 clips of two women do not drown the rest), split
    equally over the classes it has."""
    by_corpus = {}
    for i, c in enumerate(clips):
        by_corpus.setdefault(c["corpus"], []).append(i)
    share = {k: math.sqrt(len({clips[i]["speaker"] for i in idx}) * len(idx)) for k, idx in by_corpus.items()}
    weights = np.zeros(len(clips))
    for k, idx in by_corpus.items():
        classes = {}
        for i in idx:
            classes.setdefault(clips[i]["emotion"], []).append(i)
        for members in classes.values():
            weights[members] = share[k] / len(classes) / len(members)
    return weights / weights.sum(), {k: round(v / sum(share.values()), 3) for k, v in share.items()}


def add_speed_versions(clips):
    for c in clips:
        c["speeds"] = []
        for _, up, down in SPEEDS:
            w = c["wave"] if up == down else resample_poly(c["wave"], up, down).astype(np.float32)
            c["speeds"].append((w, fe.speech_region(w) or (0, len(w))))


def random_crop(wave, region, rng, w):
    start, end = region
    if end - start >= w:
        s = rng.integers(start, end - w + 1)
    else:  # window longer than the speech: place the speech anywhere inside it
        s = rng.integers(end - w, start + 1)
    return fe.cut(wave, int(s), w)


def make_batch(clips, idx, rng, speed, robust, device):
    """(waves, EQ gains or None) on `device`: crops with gain and Gaussian noise; with `robust`, also
    reverb, coloured noise and a random channel (augment.py)."""
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    waves = torch.from_numpy(np.stack([random_crop(*clips[i]["speeds"][speed], rng, w) for i in idx])).to(device)
    gen = augment.generator(rng, device)
    eq = augment.apply(waves, rng, gen) if robust else None
    waves *= 10.0 ** (torch.from_numpy(rng.uniform(-6, 6, size=(len(idx), 1))).to(waves) / 20.0)
    noisy = torch.from_numpy(rng.random(len(idx)) < 0.5).to(waves)[:, None]
    snr = torch.from_numpy(rng.uniform(15, 40, size=(len(idx), 1))).to(waves)
    power = (waves ** 2).mean(dim=1, keepdim=True)
    waves += torch.randn(waves.shape, generator=gen, device=device) * (power / 10 ** (snr / 10)).sqrt() * noisy
    return waves, eq


def spec_augment(x, rng):
    """Two frequency masks of up to 8 bands and two time masks of up to 25 frames per window."""
    b, _, mels, frames = x.shape

    def keep(size, widest):
        width = rng.integers(0, widest + 1, (b, 2))
        start = rng.integers(0, size - width + 1)
        at = torch.arange(size, device=x.device)
        lo, hi = (torch.from_numpy(v).to(x.device)[..., None] for v in (start, start + width))
        return ~((at >= lo) & (at < hi)).any(dim=1)  # (b, size)

    return x * keep(mels, 8)[:, None, :, None] * keep(frames, 25)[:, None, None, :]


def speaker_means(clips, logmel, speeds):
    """{speaker: [mean log-mel over the speech frames of the speaker's neutral clips, per speed version]}:
    the speaker-normalisation targets. Neutral only, because that is what a user's calibration gives
    (normal voice); a mean over all emotions would differ from it systematically (measured: neutral
    profiles on a model trained with all-clip means lost 4 points to the population mean)."""
    sums = {}
    for c in (c for c in clips if c["emotion"] == 0):
        versions = speeds(c)
        per_speed = sums.setdefault(c["speaker"], [speaker.SpeechSum() for _ in versions])
        for s, version in enumerate(versions):
            per_speed[s].add_clip(speaker.clip_logmel(logmel, version), version)
    return {a: [s.mean().astype(np.float32) for s in per_speed] for a, per_speed in sums.items()}


def clip_windows(wave):
    """The product's windows for a whole clip (see Sources/Streaming's clip analysis)."""
    w = int(fe.WINDOW_SECONDS * fe.SAMPLE_RATE)
    region = fe.speech_region(wave) or (0, len(wave))
    return np.stack([fe.cut(wave, s, w) for s in fe.window_starts(region, len(wave))])


@torch.no_grad()
def predict(model, logmel, clips, device, means=None, chunk=64):
    """Clip-level predictions; `means[i]` is clip i's speaker mean when the model is speaker-normalised.
    The windows of `chunk` clips go through the model together (batch norm is frozen in eval mode)."""
    model.eval()
    out = []
    for first in range(0, len(clips), chunk):
        part = clips[first:first + chunk]
        windows = [clip_windows(c["wave"]) for c in part]
        counts = [len(w) for w in windows]
        waves = torch.from_numpy(np.concatenate(windows)).to(device)
        mean = None if means is None else torch.from_numpy(np.repeat(
            np.asarray(means[first:first + chunk], dtype=np.float32), counts, axis=0)).to(device)
        emo, sex = model(logmel(waves, mean), pitch.window_stats(waves))
        for c, e, s in zip(part, emo.softmax(-1).split(counts), sex.softmax(-1).split(counts)):
            out.append({"path": c["path"], "corpus": c["corpus"], "speaker": c["speaker"], "emotion": c["emotion"],
                        "sex": c["sex"], "probs": e.mean(0).tolist(), "sex_probs": s.mean(0).tolist()})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--fold", type=int, choices=range(1, 6))
    which.add_argument("--corpus", choices=corpora.CORPORA[1:], help="hold this corpus out")
    which.add_argument("--final", action="store_true")
    p.add_argument("--data", default=str(pathlib.Path(__file__).resolve().parents[2] / "shared/data"))
    p.add_argument("--corpora", default=",".join(corpora.CORPORA), help="corpora to load (training and held out)")
    p.add_argument("--epoch-clips", type=int, default=2048, help="clips drawn per epoch (balanced by corpus and class)")
    p.add_argument("--no-robust", dest="robust", action="store_false", help="without reverb, coloured noise, EQ and VTLP")
    p.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "runs"))
    p.add_argument("--channels", default="24,48,96,192")
    p.add_argument("--epochs", type=int, default=45)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--bf16", action="store_true", help="bf16 autocast: ~3x faster on CPUs with AVX-512 BF16, slower without")
    p.add_argument("--deadline", type=float, help="unix time by which training and the held-out predictions should be "
                   "done: the epochs are cut to fit (never above --epochs), from the speed of a few trial steps")
    p.add_argument("--peers", type=int, default=1, help="runs started together with the same --deadline and --out: "
                   "each times its trial steps once all have loaded their data")
    p.add_argument("--speaker-norm", action="store_true", help="subtract each speaker's mean log-mel before the window z-norm")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    name = args.name = ("sn-" if args.speaker_norm else "") + (
        "final" if args.final else f"loco-{args.corpus}" if args.corpus else f"fold{args.fold}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions once

    clips = load_clips(args.data, args.corpora.split(","))
    if args.fold:
        held_out = sorted(f"ravdess-{a:02d}" for a in FOLDS[args.fold - 1])
        is_held_out = lambda c: c["speaker"] in held_out
    else:
        held_out = [args.corpus] if args.corpus else []
        is_held_out = lambda c: c["corpus"] in held_out
    train = [c for c in clips if not is_held_out(c)]
    test = [c for c in clips if is_held_out(c)]
    add_speed_versions(train)
    draw, shares = sampling_weights(train)
    logmel = fe.LogMel().to(device)
    banks = augment.vtlp_banks().to(device)
    means = speaker_means(train, logmel, lambda c: [w for w, _ in c["speeds"]]) if args.speaker_norm else None
    population = None if means is None else [np.mean([m[s] for m in means.values()], axis=0) for s in range(len(SPEEDS))]
    print(f"{name}: {len(train)} training clips (shares {shares}), {len(test)} held out ({', '.join(held_out)})", flush=True)

    channels = tuple(int(c) for c in args.channels.split(","))
    model = EmotionCNN(channels).to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(args.epoch_clips / args.batch)
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    emo_y = torch.tensor([c["emotion"] for c in train])
    sex_y = torch.tensor([c["sex"] for c in train])

    def step(model, opt, idx, rng):
        """One optimiser step on training clips `idx`; returns the loss."""
        with torch.no_grad():
            speed = rng.integers(0, len(SPEEDS))
            batch_means = None if means is None else torch.from_numpy(
                np.stack([means.get(train[i]["speaker"], population)[speed] for i in idx])).to(device)
            waves, eq = make_batch(train, idx, rng, speed, args.robust, device)
            fb = banks[rng.integers(0, len(banks))] if args.robust and rng.random() < 0.7 else None
            x = logmel(waves, batch_means, fb, eq)
            x = spec_augment(x, rng).contiguous(memory_format=torch.channels_last)
            # Pitch moved apart from the spectrum (which VTLP and speed move): the sex head must not
            # trust either cue alone.
            p = pitch.window_stats(waves)
            p[:, 0] += torch.from_numpy(np.log2(rng.uniform(0.87, 1.15, len(idx))) * (rng.random(len(idx)) < 0.5)).to(p)
        ye, ys = emo_y[idx].to(device), sex_y[idx].to(device)
        lam, perm = 1.0, None
        if rng.random() < 0.5:
            lam, perm = float(rng.beta(0.4, 0.4)), torch.from_numpy(rng.permutation(len(idx))).to(device)
            x = lam * x + (1 - lam) * x[perm]
            p = lam * p + (1 - lam) * p[perm]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            pe, ps = model(x, p)
        pe, ps = pe.float(), ps.float()
        loss = lam * (ce(pe, ye) + 0.3 * ce(ps, ys))
        if perm is not None:
            loss = loss + (1 - lam) * (ce(pe, ye[perm]) + 0.3 * ce(ps, ys[perm]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    first_epoch, state = 0, None
    ckpt = out / f"{name}.ckpt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        args.epochs = state.get("epochs", args.epochs)  # the schedule it started with
    elif args.deadline:
        args.epochs = epochs_before(args, lambda m, o, r: step(m, o, r.choice(len(train), args.batch, p=draw), r),
                                    model, steps_per_epoch, len(test))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15)
    if state is not None:
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        rng.bit_generator.state, first_epoch = state["rng"], state["epoch"]
        torch.set_rng_state(state["torch_rng"].cpu())
        print(f"resumed at epoch {first_epoch} of {args.epochs}", flush=True)

    t0 = time.time()
    for epoch in range(first_epoch, args.epochs):
        model.train()
        order = rng.choice(len(train), size=steps_per_epoch * args.batch, p=draw)
        total = 0.0
        for b in range(steps_per_epoch):
            total += step(model, opt, order[b * args.batch:(b + 1) * args.batch], rng)
            sched.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == args.epochs:
            print(f"{name} epoch {epoch + 1}/{args.epochs} loss {total / steps_per_epoch:.3f} "
                  f"{(time.time() - t0) / 60:.1f} min", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                        "epochs": args.epochs}, ckpt)

    model = model.to(memory_format=torch.contiguous_format)
    tensors = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    safetensors_io.save(out / f"{name}.safetensors", tensors, {"channels": args.channels, "epochs": args.epochs})
    result = {"name": name, "held_out": held_out, "epochs": args.epochs, "epoch_clips": args.epoch_clips, "bf16": args.bf16,
              "channels": list(channels), "seed": args.seed, "robust": args.robust, "corpora": args.corpora.split(","),
              "shares": shares, "minutes": (time.time() - t0) / 60, "torch": torch.__version__,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "audio": "Ogg/Opus copies (opus.py)" if any(c["path"].endswith(".ogg") for c in clips) else "FLAC"}
    if args.speaker_norm:
        result["population_mean"] = population[1].tolist()  # speed 1.0
        result["modes"] = evaluate_speaker_modes(model, logmel, test, device, population[1]) if test else {}
        test = []
    else:
        result["predictions"] = predict(model, logmel, test, device)
    if test:
        acc = np.mean([np.argmax(r["probs"]) == r["emotion"] for r in result["predictions"]])
        sex = np.mean([np.argmax(r["sex_probs"]) == r["sex"] for r in result["predictions"]])
        print(f"{name}: held-out accuracy {acc:.3f}, sex {sex:.3f}", flush=True)
    (out / f"{name}.json").write_text(json.dumps(result))


def epochs_before(args, step, model, steps_per_epoch, held_out):
    """How many epochs fit before `args.deadline`, timed on a throwaway copy of the model (with its own
    generator, so the run itself draws what it would have drawn) while any runs beside it do the same;
    the held-out predictions are given a reserve by their count."""
    if args.peers > 1:  # time the steps under the contention the run will see: once every peer has loaded
        (pathlib.Path(args.out) / f".{args.name}.loaded").touch()
        waited = time.time()
        while len(list(pathlib.Path(args.out).glob(".*.loaded"))) < args.peers and time.time() - waited < 300:
            time.sleep(1)
    probe = copy.deepcopy(model)
    opt = torch.optim.AdamW(probe.parameters(), lr=args.lr / 10)
    rng = np.random.default_rng(args.seed + 1)
    step(probe, opt, rng)  # warm-up: cuDNN's choice of kernels, allocator growth
    start = time.time()
    for _ in range(TRIAL_STEPS):
        step(probe, opt, rng)
    per_epoch = (time.time() - start) / TRIAL_STEPS * steps_per_epoch
    passes = 2 + len(ONLINE_PRIORS) if args.speaker_norm else 1  # evaluate_speaker_modes predicts once per mode
    left = args.deadline - time.time() - 30 - 0.005 * held_out * passes
    epochs = max(1, min(args.epochs, int(0.9 * left / per_epoch)))  # 10 % spare: the timing is a sample
    print(f"{per_epoch:.2f} s per epoch: {epochs} epochs fit before the deadline", flush=True)
    return epochs


def evaluate_speaker_modes(model, logmel, test, device, population):
    """Held-out predictions under each way of getting the speaker mean, all on the same clips (each
    speaker's non-neutral ones, for speakers with neutral clips): none (population mean), online (each
    clip's own speech frames, starting from the population mean with a prior weight), neutral (the
    speaker's neutral clips)."""
    sums = [speaker.SpeechSum().add_clip(speaker.clip_logmel(logmel, c["wave"]), c["wave"]) for c in test]
    neutral = {}
    for c, s in zip(test, sums):
        if c["emotion"] == 0:
            n = neutral.setdefault(c["speaker"], speaker.SpeechSum())
            n.total += s.total
            n.count += s.count
    scored = [i for i, c in enumerate(test) if c["emotion"] != 0 and c["speaker"] in neutral]
    clips = [test[i] for i in scored]
    modes = {"none": predict(model, logmel, clips, device, [population] * len(clips)),
             "neutral": predict(model, logmel, clips, device, [neutral[c["speaker"]].mean() for c in clips])}
    for prior in ONLINE_PRIORS:
        frames = prior * fe.SAMPLE_RATE / fe.HOP
        modes[f"online:{prior:g}"] = predict(model, logmel, clips, device,
                                             [sums[i].mean(population, frames) for i in scored])
    for mode, preds in modes.items():
        acc = np.mean([np.argmax(r["probs"]) == r["emotion"] for r in preds])
        print(f"  {mode}: accuracy {acc:.3f}", flush=True)
    return modes


if __name__ == "__main__":
    main()
