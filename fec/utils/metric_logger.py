"""Smoothed training statistics (window median and global average)."""
from collections import defaultdict, deque

import numpy as np


class SmoothedValue:
    def __init__(self, window_size=20):
        self.window = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value):
        self.window.append(float(value))
        self.total += float(value)
        self.count += 1

    @property
    def median(self):
        return float(np.median(self.window))

    @property
    def avg(self):
        return float(np.mean(self.window))

    @property
    def global_avg(self):
        return self.total / max(self.count, 1)

    @property
    def latest(self):
        return self.window[-1]


class MetricLogger:
    def __init__(self, window_size=20):
        self.meters = defaultdict(lambda: SmoothedValue(window_size))

    def update(self, **values):
        for k, v in values.items():
            self.meters[k].update(v.item() if hasattr(v, "item") else v)

    def __getitem__(self, name):
        return self.meters[name]

    def __str__(self):
        return "  ".join(f"{k}: {m.median:.4f} ({m.global_avg:.4f})" for k, m in self.meters.items())
