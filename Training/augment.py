"""Speaker and channel augmentation: new voices and new rooms from a few acted corpora.

Measured in ../shared/research/robustness.md: these add 5-16 points over an unseen corpus's own
classes at little cost on RAVDESS. Waveform parts (reverb, coloured noise) act on the crops; the
spectral parts (EQ, VTLP) are handed to frontend.LogMel as a power-spectrum gain and a warped mel bank.
"""
import numpy as np
import torch
from scipy.signal import fftconvolve

import frontend as fe

VTLP_FACTORS = np.linspace(0.88, 1.12, 9)
BINS = fe.N_FFT // 2 + 1
FREQS = np.arange(BINS) * fe.SAMPLE_RATE / fe.N_FFT


def vtlp_banks():
    """(9, bins, mels) warped mel banks, the factor-1.0 one in the middle."""
    return torch.tensor(np.stack([fe.mel_filterbank(a).T for a in VTLP_FACTORS]), dtype=torch.float32)


def reverb(wave, rng):
    """A synthetic room: Gaussian noise under an exponential decay (RT60 0.15-0.9 s) after a direct
    path 0-12 dB stronger than the tail, convolved, level restored."""
    rt60 = rng.uniform(0.15, 0.9)
    t = np.arange(int(rt60 * fe.SAMPLE_RATE)) / fe.SAMPLE_RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60)
    tail *= 10 ** (-rng.uniform(0, 12) / 20) / np.linalg.norm(tail)
    tail[0] += 1.0
    wet = fftconvolve(wave, tail)[: len(wave)]
    return (wet * np.sqrt((wave ** 2).mean() / max((wet ** 2).mean(), 1e-20))).astype(np.float32)


def coloured_noise(n, beta, rng):
    """White (beta 0), pink (1) or brown (2) noise: power falling as 1/f^beta, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fe.SAMPLE_RATE)
    spectrum *= np.where(f > 20, np.maximum(f, 20.0), 20.0) ** (-beta / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / max(np.sqrt((noise ** 2).mean()), 1e-20)


def equaliser(rng):
    """(bins,) power gain of a random channel: a tilt of +-6 dB across 0-8 kHz, a low-pass edge at
    3.4-8 kHz and a high-pass edge at 0-300 Hz, 40 dB per kHz / per 100 Hz beyond the edges
    (telephone, laptop and far-field microphones)."""
    db = rng.uniform(-6, 6) * (FREQS / FREQS[-1] - 0.5)
    low_pass = rng.uniform(3400, 8000)
    high_pass = rng.uniform(0, 300)
    db -= 40 * np.maximum(FREQS - low_pass, 0) / 1000
    db -= 40 * np.maximum(high_pass - FREQS, 0) / 100
    return 10 ** (db / 10)


def apply(waves, rng, reverb_p=0.4, noise_p=0.4, eq_p=0.5):
    """Augment a (B, samples) float32 batch in place; returns the (B, bins) EQ gains for LogMel."""
    for i in range(len(waves)):
        if rng.random() < reverb_p:
            waves[i] = reverb(waves[i], rng)
        if rng.random() < noise_p:
            power = (waves[i] ** 2).mean()
            snr = rng.uniform(5, 30)
            waves[i] += (coloured_noise(waves.shape[1], rng.integers(0, 3), rng) * np.sqrt(power / 10 ** (snr / 10))).astype(np.float32)
    eq = np.ones((len(waves), BINS), dtype=np.float32)
    for i in np.nonzero(rng.random(len(waves)) < eq_p)[0]:
        eq[i] = equaliser(rng)
    return torch.from_numpy(eq)
