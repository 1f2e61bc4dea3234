"""The log-mel front end and speech-region logic, mirrored exactly by Sources/Features.

Two implementations live here on purpose: `logmel_torch` (batched, used in training) and
`logmel_numpy` (float64 reference, used to write the Swift parity fixture). `make_fixtures.py`
asserts that they agree, and the Swift tests assert that Sources/Features agrees with the fixture,
so training and serving compute the same features.
"""
import math

import numpy as np
import torch

SAMPLE_RATE = 16000
WIN = 400          # 25 ms Hann window
HOP = 320          # 20 ms: 3.2x cheaper CNN than 10 ms/64 bands (see README, "Model")
N_FFT = 512
N_MELS = 40
FMIN, FMAX = 50.0, 8000.0
LOG_FLOOR = 1e-6
WINDOW_SECONDS = 3.0
WINDOW_HOP_SECONDS = 0.5
# Speech region: 10 ms frames within SPEECH_DB of the loudest frame, widened by SPEECH_PAD seconds.
SPEECH_DB = 35.0
SPEECH_FRAME = 160
SPEECH_PAD = 0.1


def hann(n=WIN):
    """Periodic Hann window (torch.hann_window's default)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(warp=1.0):
    """(N_MELS, N_FFT//2+1) triangular HTK-mel filters, unnormalised (peak 1).

    `warp` != 1 is vocal-tract-length perturbation for training: each FFT bin is read as if it
    lay at warp x its frequency (piecewise linear, so the band edges up to FMAX stay covered)."""
    bins = vtlp(np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT, warp)
    edges = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2))
    fb = np.zeros((N_MELS, len(bins)))
    for m in range(N_MELS):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (bins - lo) / (centre - lo)
        down = (hi - bins) / (hi - centre)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb


def vtlp(freqs, alpha, f_hi=4800.0):
    """Jaitly & Hinton's warp: f -> alpha f below a boundary, then linear so that FMAX maps to FMAX."""
    if alpha == 1.0:
        return freqs
    boundary = f_hi * min(alpha, 1.0) / alpha
    upper = FMAX - (FMAX - f_hi * min(alpha, 1.0)) / (FMAX - boundary) * (FMAX - freqs)
    return np.where(freqs <= boundary, freqs * alpha, upper)


def frame_count(n_samples):
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def logmel_numpy(x):
    """float64 reference: (frames, N_MELS) log-mel of a mono 16 kHz signal, not normalised."""
    x = np.asarray(x, dtype=np.float64)
    n = frame_count(len(x))
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    spec = np.fft.rfft(x[idx] * hann(), n=N_FFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    return np.log(power @ mel_filterbank().T + LOG_FLOOR)


class LogMel(torch.nn.Module):
    """Batched torch version of `logmel_numpy` plus the per-window z-normalisation."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.tensor(hann(), dtype=torch.float32))
        self.register_buffer("fb", torch.tensor(mel_filterbank().T, dtype=torch.float32))

    def logmel(self, wave, fb=None, eq=None):  # (B, samples) -> (B, frames, N_MELS)
        """`fb` replaces the mel bank (VTLP) and `eq` (B, bins) scales the power spectrum (channel
        augmentation); both only in training."""
        frames = wave.unfold(-1, WIN, HOP) * self.window
        spec = torch.fft.rfft(frames, n=N_FFT)
        power = spec.real ** 2 + spec.imag ** 2
        if eq is not None:
            power = power * eq[:, None, :]
        return torch.log(power @ (self.fb if fb is None else fb) + LOG_FLOOR)

    def forward(self, wave, speaker_mean=None, fb=None, eq=None):  # (B, samples) -> (B, 1, N_MELS, frames), z-normalised
        feats = self.logmel(wave, fb, eq)
        if speaker_mean is not None:  # (B, N_MELS): speaker normalisation, before the window z-norm
            feats = feats - speaker_mean[:, None, :]
        return znorm(feats.transpose(1, 2)).unsqueeze(1)


def znorm(feats):
    """One mean and one std over the whole window (population std, floor 1e-5)."""
    mean = feats.mean(dim=(-2, -1), keepdim=True)
    std = feats.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (feats - mean) / std.clamp_min(1e-5)


def speech_region(x):
    """(start, end) sample indices of the speech region, or None for silence.

    10 ms frames whose energy is within SPEECH_DB of the loudest, first to last, widened by SPEECH_PAD.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x) // SPEECH_FRAME
    if n == 0:
        return None
    energy = (x[: n * SPEECH_FRAME].reshape(n, SPEECH_FRAME) ** 2).mean(axis=1)
    peak = energy.max()
    if peak <= 1e-10:  # digital silence (-100 dBFS): nothing to find
        return None
    loud = np.nonzero(10.0 * np.log10(energy + 1e-20) >= 10.0 * math.log10(peak) - SPEECH_DB)[0]
    pad = int(round(SPEECH_PAD * SAMPLE_RATE))
    return max(0, loud[0] * SPEECH_FRAME - pad), min(len(x), (loud[-1] + 1) * SPEECH_FRAME + pad)


def window_starts(region, n_samples):
    """Start samples of the 3 s windows (0.5 s hop) covering `region`; may be negative or run past
    the end, where the signal is zero-padded. A region shorter than a window gets one centred window."""
    w = int(WINDOW_SECONDS * SAMPLE_RATE)
    h = int(WINDOW_HOP_SECONDS * SAMPLE_RATE)
    start, end = region
    if end - start <= w:
        centred = (start + end) // 2 - w // 2
        return [min(max(centred, min(0, n_samples - w)), max(0, n_samples - w))]
    count = 1 + math.ceil((end - start - w) / h)
    return [min(start + i * h, end - w) for i in range(count)]


def cut(x, start, length):
    """x[start:start+length] with zeros where that runs outside x."""
    out = np.zeros(length, dtype=np.float32)
    lo, hi = max(start, 0), min(start + length, len(x))
    if hi > lo:
        out[lo - start: hi - start] = x[lo:hi]
    return out
