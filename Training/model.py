"""The CNN, mirrored by Sources/Model: [conv3x3 (no bias) -> BN -> ReLU] -> maxpool 2x2 per block,
mean over frequency, [mean ; max] over time, dropout, two linear heads: emotion, and speaker sex,
which also sees the window's pitch statistics (pitch.py)."""
import numpy as np
import torch
from torch import nn

import safetensors_io

EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
SEXES = ["male", "female"]
PITCH_STATS = 2


class EmotionCNN(nn.Module):
    def __init__(self, channels=(24, 48, 96, 192), dropout=0.3, pitch_inputs=PITCH_STATS):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.emotion = nn.Linear(2 * c_in, len(EMOTIONS))
        self.sex = nn.Linear(2 * c_in + pitch_inputs, len(SEXES))

    def forward(self, x, pitch):  # (B, 1, mels, frames), (B, PITCH_STATS) -> (emotion logits, sex logits)
        h = self.features(x).mean(dim=2)                           # (B, C, T)
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)       # (B, 2C)
        h = self.dropout(h)
        return self.emotion(h), self.sex(torch.cat([h, pitch.to(h.dtype)], dim=1))


def load(weights, channels, pitch_inputs=PITCH_STATS):
    """A trained model from its safetensors file, in eval mode (`pitch_inputs` 0: a sex head without pitch)."""
    model = EmotionCNN(tuple(channels), pitch_inputs=pitch_inputs)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in safetensors_io.load(weights).items()})
    return model.eval()
